"""Our estimators and log reader against the Open Bandit Pipeline on the Open Bandit Dataset.

obp is a dev dependency installed by the Makefile without its dependencies. Without it
this module skips, or fails when PENCHANT_REQUIRE_SERVICES=1 (CI installs it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from penchant.experiments import cross_fit_rewards, estimate_all
from penchant.experiments.ope_data import LoggedFeedback, read_logs
from shared_data import need_dataset

REQUIRE = os.environ.get("PENCHANT_REQUIRE_SERVICES") == "1"
LOGS = [("random", "all"), ("random", "men"), ("bts", "women")]
POLICIES = ("uniform", "most-clicked", "bernoulli-ts")
RELATIVE = 1e-6


def _obp() -> ModuleType:
    try:
        import obp.ope
    except ImportError as exc:
        message = f"obp (the Open Bandit Pipeline) cannot be imported: {exc}"
        if REQUIRE:
            pytest.fail(f"{message}, and PENCHANT_REQUIRE_SERVICES=1")
        pytest.skip(f"{message}; `make .venv/.installed` installs it")
    return obp


@dataclass
class Case:
    """One log, read by obp and by us, with the obp row order of our rows."""

    obp_data: dict[str, np.ndarray]
    ours: LoggedFeedback
    order: np.ndarray  # ours[order] is obp's row order (obp sorts by timestamp)
    campaign: str
    n_actions: int
    q: np.ndarray  # the one fixed reward model both sides use (ours, cross-fitted, seed 0)


@pytest.fixture(scope="module", params=LOGS, ids=["/".join(p) for p in LOGS])
def case(request: pytest.FixtureRequest) -> Case:
    obp = _obp()
    from obp.dataset import OpenBanditDataset

    root = need_dataset("open-bandit-dataset-small")
    behavior, campaign = request.param

    class RawOpenBanditDataset(OpenBanditDataset):
        """obp's loader, minus its feature step: obp 0.4.1's uses pandas calls pandas 2
        removed, and only the action, position, reward and propensity arrays are compared."""

        def pre_process(self) -> None:
            pass

    assert obp is not None
    dataset = RawOpenBanditDataset(behavior_policy=behavior, campaign=campaign, data_path=root)
    ours = read_logs(root / behavior / campaign / f"{campaign}.csv")
    n_actions = int(dataset.n_actions)
    q = cross_fit_rewards(
        ours.context, ours.action, ours.position, ours.reward,
        n_actions=n_actions, len_list=3, rng=np.random.default_rng(0),
    )  # fmt: skip
    return Case(
        obp_data={
            "action": np.asarray(dataset.action),
            "position": np.asarray(dataset.position),
            "reward": np.asarray(dataset.reward),
            "pscore": np.asarray(dataset.pscore),
        },
        ours=ours,
        order=dataset.data.index.to_numpy(),
        campaign=campaign,
        n_actions=n_actions,
        q=q,
    )


def test_our_reader_gives_obps_arrays(case: Case) -> None:
    assert case.ours.n_rounds == case.obp_data["action"].shape[0] == 10_000
    for name in ("action", "position", "reward"):
        np.testing.assert_array_equal(getattr(case.ours, name)[case.order], case.obp_data[name])
    # pandas' default CSV float parser keeps about 16 digits: for the file's
    # 0.00016999999999999999 (bts/women) obp gets 0.0001699999999999, 6e-13 off. pyarrow
    # reads the nearest double, as pandas does with float_precision="round_trip".
    np.testing.assert_allclose(case.ours.pscore[case.order], case.obp_data["pscore"], rtol=1e-12)
    assert case.ours.position_labels == (1.0, 2.0, 3.0)


def _policy(name: str, case: Case) -> np.ndarray:
    """An evaluation policy's action_dist in our (file) row order."""
    n, n_actions = case.ours.n_rounds, case.n_actions
    if name == "uniform":
        return np.full((n, n_actions, 3), 1.0 / n_actions)
    if name == "most-clicked":
        dist = np.zeros((n, n_actions, 3))
        for k in range(3):
            at = case.ours.position == k
            clicks = np.bincount(case.ours.action[at], case.ours.reward[at], minlength=n_actions)
            dist[:, int(np.argmax(clicks)), k] = 1.0
        return dist
    from obp.policy import BernoulliTS

    policy = BernoulliTS(
        n_actions=n_actions, len_list=3, is_zozotown_prior=True, campaign=case.campaign,
        random_state=12345,
    )  # fmt: skip
    return np.asarray(policy.compute_batch_action_dist(n_rounds=n, n_sim=2000))


def _obp_values(case: Case, dist: np.ndarray, q: np.ndarray, lambda_: float | None) -> dict:
    from obp.ope import (
        DirectMethod,
        DoublyRobust,
        InverseProbabilityWeighting,
        SelfNormalizedInverseProbabilityWeighting,
    )

    data = dict(case.obp_data)
    dist, q = dist[case.order], q[case.order]
    capped: dict[str, Any] = {}
    if lambda_ is not None:
        if "lambda_" in InverseProbabilityWeighting.__dataclass_fields__:
            capped = {"lambda_": lambda_}  # obp >= 0.5 caps weights itself
        else:
            # obp 0.4.1 has no cap: min(w, lambda) is the weight of the propensity
            # max(pscore, pi_e(a) / lambda), so obp computes the capped estimators from it.
            target = dist[np.arange(dist.shape[0]), data["action"], data["position"]]
            data["pscore"] = np.maximum(data["pscore"], target / lambda_)
    return {
        "ips": InverseProbabilityWeighting(**capped).estimate_policy_value(
            action_dist=dist, **data
        ),
        "snips": SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(
            action_dist=dist, **case.obp_data
        ),
        "dm": DirectMethod().estimate_policy_value(
            action_dist=dist, estimated_rewards_by_reg_model=q, position=data["position"]
        ),
        "dr": DoublyRobust(**capped).estimate_policy_value(
            action_dist=dist, estimated_rewards_by_reg_model=q, **data
        ),
    }


@pytest.mark.parametrize("lambda_", [None, 10.0], ids=["uncapped", "capped-at-10"])
def test_estimates_equal_obps(case: Case, lambda_: float | None) -> None:
    logs, q = case.ours, case.q
    for policy in POLICIES:
        dist = _policy(policy, case)
        ours = estimate_all(
            reward=logs.reward, action=logs.action, pscore=logs.pscore, action_dist=dist,
            position=logs.position, estimated_rewards=q, lambda_=lambda_,
        )  # fmt: skip
        theirs = _obp_values(case, dist, q, lambda_)
        for name, value in theirs.items():
            assert ours[name].value == pytest.approx(float(value), rel=RELATIVE, abs=1e-15), (
                policy,
                name,
            )
    if lambda_ is not None:  # the cap did bind somewhere: capped IPS differs from plain IPS
        dist = _policy("most-clicked", case)
        plain = estimate_all(
            reward=logs.reward, action=logs.action, pscore=logs.pscore, action_dist=dist,
            position=logs.position, estimated_rewards=q,
        )  # fmt: skip
        capped = estimate_all(
            reward=logs.reward, action=logs.action, pscore=logs.pscore, action_dist=dist,
            position=logs.position, estimated_rewards=q, lambda_=lambda_,
        )  # fmt: skip
        for name in ("ips", "dr"):
            assert capped[name].value != pytest.approx(plain[name].value, rel=1e-3)
