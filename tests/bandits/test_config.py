"""Policies from config dicts and back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from penchant.bandits import (
    POLICIES,
    UCB1,
    BetaThompson,
    EpsilonGreedy,
    LinearThompson,
    LinUCB,
    make_policy,
    policy_config,
)
from penchant.errors import InvalidInput


def test_every_name_makes_its_policy_with_defaults_and_given_values() -> None:
    assert set(POLICIES) == {"epsilon-greedy", "ucb1", "thompson", "linucb", "linear-thompson"}
    assert isinstance(make_policy({"name": "epsilon-greedy"}), EpsilonGreedy)
    assert isinstance(make_policy({"name": "ucb1"}), UCB1)
    assert isinstance(make_policy({"name": "thompson"}), BetaThompson)
    linucb = make_policy({"name": "linucb", "alpha": 0.5})
    assert isinstance(linucb, LinUCB)
    assert linucb.get_params() == {"alpha": 0.5, "regularization": 1.0}
    lints = make_policy({"name": "linear-thompson", "v": 0.2, "n_draws": 300})
    assert isinstance(lints, LinearThompson)
    assert lints.get_params() == {"v": 0.2, "regularization": 1.0, "n_draws": 300}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"name": "softmax"}, "policy.name"),
        ({"alpha": 1.0}, "policy.name"),
        ({"name": 3}, "policy.name"),
        ({"name": "epsilon-greedy", "epsilon": 1.5}, "policy.epsilon"),
        ({"name": "epsilon-greedy", "epsilon": -0.1}, "policy.epsilon"),
        ({"name": "epsilon-greedy", "epsilon": "0.1"}, "policy.epsilon"),
        ({"name": "epsilon-greedy", "alpha": 0.1}, "policy.alpha"),
        ({"name": "ucb1", "c": -1.0}, "policy.c"),
        ({"name": "ucb1", "c": float("inf")}, "policy.c"),
        ({"name": "linucb", "alpha": -0.5}, "policy.alpha"),
        ({"name": "linucb", "regularization": 0.0}, "policy.regularization"),
        ({"name": "linucb", "lambda": 1.0}, "policy.lambda"),
        ({"name": "linear-thompson", "v": 0}, "policy.v"),
        ({"name": "linear-thompson", "n_draws": 0}, "policy.n_draws"),
        ({"name": "thompson", "n_draws": 2.5}, "policy.n_draws"),
        ({"name": "thompson", "n_draws": True}, "policy.n_draws"),
        ({"name": "thompson", "n_draws": 10**9}, "policy.n_draws"),
        ({"name": "thompson", "prior_alpha": 0.0}, "policy.prior_alpha"),
        ({"name": "thompson", "prior_beta": None}, "policy.prior_beta"),
    ],
)
def test_bad_configs_name_the_field(config: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        make_policy(config)
    assert info.value.field == field
    assert info.value.message.startswith(field + ":")
    assert "\n" not in info.value.message


def test_a_config_must_be_a_mapping() -> None:
    with pytest.raises(InvalidInput) as info:
        make_policy(["linucb"])  # type: ignore[arg-type]
    assert info.value.field == "policy"


def test_edges_of_the_ranges_are_allowed() -> None:
    assert make_policy({"name": "epsilon-greedy", "epsilon": 0}).get_params() == {"epsilon": 0}
    make_policy({"name": "epsilon-greedy", "epsilon": 1.0})
    make_policy({"name": "ucb1", "c": 0.0})
    make_policy({"name": "linucb", "alpha": 0})
    make_policy({"name": "thompson", "n_draws": 1})


def test_policy_config_is_json_safe_and_round_trips() -> None:
    policies = [
        EpsilonGreedy(epsilon=np.float64(0.2)),
        UCB1(c=2),
        BetaThompson(prior_alpha=0.5, prior_beta=2.0, n_draws=np.int64(64)),  # type: ignore[arg-type]
        LinUCB(alpha=0.25, regularization=3.0),
        LinearThompson(v=0.1, regularization=0.5, n_draws=200),
    ]
    for policy in policies:
        config = policy_config(policy)
        text = json.dumps(config)
        back = make_policy(json.loads(text))
        assert type(back) is type(policy)
        assert back.get_params() == policy.get_params()
    assert policy_config(policies[2]) == {
        "name": "thompson",
        "prior_alpha": 0.5,
        "prior_beta": 2.0,
        "n_draws": 64,
    }
    assert type(policy_config(policies[0])["epsilon"]) is float
    assert type(policy_config(policies[2])["n_draws"]) is int


def test_policy_config_refuses_a_policy_with_bad_hyperparameters() -> None:
    with pytest.raises(InvalidInput) as info:
        policy_config(LinUCB(alpha=-1.0))
    assert info.value.field == "policy.alpha"


def test_hyperparameters_are_stored_unchanged_and_checked_on_use() -> None:
    policy = EpsilonGreedy(epsilon=7)  # no check in __init__ (scikit-learn contract)
    assert policy.epsilon == 7
    with pytest.raises(InvalidInput) as info:
        policy.select(None, ["a"], np.random.default_rng(0))
    assert info.value.field == "policy.epsilon"
