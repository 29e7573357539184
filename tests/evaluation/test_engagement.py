"""Engagement per unit from the event log, and the experiment report built on it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from penchant.evaluation.engagement import HOLDOUT, experiment_units
from penchant.evaluation.experiment_report import (
    experiment_report,
    write_experiment_report,
)
from penchant.experiments.abtest import cuped, ratio_metric, two_proportions, welch
from penchant.schema import Event, EventContext
from penchant.schema.experiments import Arm, Change, Experiment
from penchant.store import Store, open_store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EXPERIMENT = Experiment(
    id="ab",
    surface="home",
    arms=[Arm(name="control", surface="home"), Arm(name="new", surface="new")],
    salt="s",
    status="running",
    history=[Change(at=T0, status="running", ramp=1.0)],
)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = open_store(sqlite_url)
    yield opened
    opened.close()


def impression(n: int, user: str, item: str, at: datetime, arm: str | None, **extra: Any) -> Event:
    attributes: dict[str, Any] = {"experiment": "ab", "arm": arm} if arm else {}
    attributes.update(extra)
    return Event(
        event_id=f"imp{n}",
        user_id=user,
        item_id=item,
        type="impression",
        timestamp=at,
        context=EventContext(
            request_id=f"r-{user}-{at:%d%H}", device="mobile", attributes=attributes
        ),
    )


def outcome(n: int, user: str, kind: str, at: datetime, **fields: Any) -> Event:
    return Event(event_id=f"o{n}", user_id=user, type=kind, timestamp=at, **fields)


def test_each_unit_counts_what_it_did_after_its_first_exposure(store: Store) -> None:
    h = timedelta(hours=1)
    d = timedelta(days=1)
    events = [
        # u1, control: two lists, one click through its request id, one on a shown item
        impression(1, "u1", "i1", T0 + h, "control"),
        impression(2, "u1", "i2", T0 + h, "control"),
        impression(3, "u1", "i3", T0 + 2 * h, "control"),
        outcome(
            4,
            "u1",
            "click",
            T0 + 2 * h,
            item_id="i1",
            context=EventContext(request_id=f"r-u1-{(T0 + h):%d%H}"),
        ),
        outcome(5, "u1", "click", T0 + 3 * h, item_id="i3"),
        outcome(6, "u1", "click", T0 + 3 * h, item_id="i9"),  # never shown: not a list click
        outcome(7, "u1", "purchase", T0 + 4 * h, item_id="i3", value=20.0),
        outcome(8, "u1", "dwell", T0 + 4 * h, item_id="i3", value=30.0),
        outcome(9, "u1", "view", T0 + d + h, item_id="i4", session_id="s2"),  # day 1
        # u2, new: a dismissal, a purchase before its exposure (not counted)
        outcome(10, "u2", "purchase", T0 + h, item_id="i5", value=99.0),
        impression(11, "u2", "i5", T0 + 2 * h, "new"),
        outcome(12, "u2", "dismiss", T0 + 3 * h, item_id="i5"),
        outcome(13, "u2", "view", T0 + 7 * d + 3 * h, item_id="i6", session_id="s9"),  # day 7
        # u3: held out; u4: impressions of no experiment
        impression(14, "u3", "i1", T0 + h, None, experiment="ab", holdout=True),
        impression(15, "u4", "i1", T0 + h, None),
    ]
    store.events.append("t", events)
    table = experiment_units(store.events, "t", EXPERIMENT, until=T0 + 9 * d)
    assert table.units == ["u1", "u3", "u2"]  # by first exposure
    assert table.arms.tolist() == ["control", HOLDOUT, "new"]
    m = {k: v.tolist() for k, v in table.metrics.items()}
    assert m["impressions"] == [3, 1, 1]
    assert m["clicks"] == [2, 0, 0]
    assert m["dismissals"] == [0, 0, 1]
    assert m["converted"] == [1, 0, 0] and m["revenue"] == [20.0, 0, 0]
    assert m["dwell_s"] == [30.0, 0, 0]
    assert m["consumed"] == [5, 0, 1]  # u1: 3 clicks, 1 purchase, 1 view
    assert m["sessions"] == [2, 0, 1]  # u1: its sessionless events, and s2
    assert m["returned_d1"] == [1, 0, 0] and m["returned_d7"] == [0, 0, 1]
    assert table.segments.tolist() == ["mobile"] * 3
    assert table.daily_impressions[:, 0].tolist() == [3, 1, 1]
    assert table.daily_clicks[:, 0].tolist() == [2, 0, 0]
    # data ending before day 7 leaves day-7 return unobserved
    early = experiment_units(store.events, "t", EXPERIMENT, until=T0 + 3 * d)
    assert np.isnan(early.metrics["returned_d7"]).all()
    assert early.metrics["returned_d1"].tolist() == [1, 0, 0]


def simulated(store: Store, n_users: int, ctr: tuple[float, float], seed: int) -> None:
    """Users split evenly, 5 to 15 impressions each, clicks at each arm's rate."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    for u in range(n_users):
        arm = ("control", "new")[u % 2]
        at = T0 + timedelta(minutes=u)
        for k in range(int(rng.integers(5, 16))):
            events.append(impression(len(events), f"u{u}", f"i{k}", at, arm))
            if rng.random() < ctr[u % 2]:
                events.append(
                    outcome(
                        len(events), f"u{u}", "click", at + timedelta(seconds=1), item_id=f"i{k}"
                    )
                )
        if rng.random() < 0.1 + 0.05 * (u % 2):
            events.append(
                outcome(
                    len(events),
                    f"u{u}",
                    "purchase",
                    at + timedelta(seconds=9),
                    item_id="i0",
                    value=float(rng.integers(5, 50)),
                )
            )
    store.events.append("t", events)


def test_the_report_agrees_with_the_statistics_on_the_same_units(
    store: Store, tmp_path: Path
) -> None:
    simulated(store, 600, (0.10, 0.14), seed=3)
    table = experiment_units(store.events, "t", EXPERIMENT, until=T0 + timedelta(days=2))
    report = experiment_report(table, EXPERIMENT)
    a, b = table.arm("control"), table.arm("new")
    m = table.metrics
    assert report["sample_ratio"]["units"] == {"control": 300, "new": 300}
    assert not report["sample_ratio"]["suspected"]
    by_name = {x["metric"]: x for x in report["metrics"]}
    ctr = by_name["ctr"]["comparisons"]["new"]
    want = ratio_metric(m["clicks"][a], m["impressions"][a], m["clicks"][b], m["impressions"][b])
    assert ctr["lift"] == pytest.approx(want.lift, rel=1e-12)
    assert ctr["lift_ci"] == pytest.approx(list(want.lift_ci), rel=1e-12)
    assert by_name["ctr"]["values"]["control"] == pytest.approx(
        m["clicks"][a].sum() / m["impressions"][a].sum()
    )
    conversion = by_name["conversion_rate"]["comparisons"]["new"]
    want_c = two_proportions(int(m["converted"][a].sum()), 300, int(m["converted"][b].sum()), 300)
    assert conversion["p_value"] == pytest.approx(want_c.p_value, rel=1e-12)
    revenue = by_name["revenue_per_user"]["comparisons"]["new"]
    assert revenue["p_value"] == pytest.approx(
        welch(m["revenue"][a], m["revenue"][b]).p_value, rel=1e-12
    )
    # Holm over the metrics that could be compared, and a verdict for each
    ps = [
        x["comparisons"]["new"]["p_value"] for x in report["metrics"] if "new" in x["comparisons"]
    ]
    holms = [
        x["comparisons"]["new"]["p_value_holm"]
        for x in report["metrics"]
        if "new" in x["comparisons"]
    ]
    assert all(h >= p for h, p in zip(holms, ps, strict=True))
    assert ctr["verdict"] in ("better", "no detectable difference")
    assert 0 <= ctr["always_valid_p"] <= 1
    assert set(report["segments"]) == {"mobile"}
    assert report["lift_over_time"]["new"][0]["lift"] == pytest.approx(want.lift, rel=1e-12)
    written = write_experiment_report(report, tmp_path / "out")
    assert [p.name for p in written] == ["report.json", "report.md", "lift.png"]
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| ctr | new |" in written[1].read_text()


def test_a_lopsided_split_is_flagged_as_a_sample_ratio_mismatch(store: Store) -> None:
    simulated(store, 400, (0.1, 0.1), seed=4)
    table = experiment_units(store.events, "t", EXPERIMENT, until=T0 + timedelta(days=1))
    skewed = EXPERIMENT.model_copy(
        update={
            "arms": [
                Arm(name="control", surface="home", weight=3.0),
                Arm(name="new", surface="new"),
            ]
        }
    )
    report = experiment_report(table, skewed)
    assert report["sample_ratio"]["suspected"]
    verdicts = {c["verdict"] for x in report["metrics"] for c in x["comparisons"].values()}
    assert verdicts == {"untrustworthy: sample ratio mismatch"}


def test_cuped_uses_each_units_pre_period_purchases(store: Store) -> None:
    """Spenders keep spending: a unit's revenue before the start predicts its revenue after,
    so CUPED narrows the revenue comparison, with the same numbers as `cuped` itself."""
    rng = np.random.default_rng(5)
    events: list[Event] = []
    for u in range(300):
        arm = ("control", "new")[u % 2]
        at = T0 + timedelta(minutes=u)
        events.append(impression(len(events), f"u{u}", "i0", at, arm))
        habit = float(rng.gamma(2.0, 10.0))  # what this person tends to spend
        before = T0 - timedelta(days=3, minutes=u)
        events.append(outcome(len(events), f"u{u}", "purchase", before, item_id="i1", value=habit))
        spent = habit * float(rng.uniform(0.8, 1.2)) + 2.0 * (u % 2)
        events.append(
            outcome(
                len(events),
                f"u{u}",
                "purchase",
                at + timedelta(seconds=5),
                item_id="i2",
                value=spent,
            )
        )
    # a purchase before the pre-period does not count
    events.append(
        outcome(len(events), "u0", "purchase", T0 - timedelta(days=30), item_id="i3", value=1e6)
    )
    store.events.append("t", events)
    table = experiment_units(store.events, "t", EXPERIMENT, until=T0 + timedelta(days=1))
    m = table.metrics
    assert m["pre_revenue"].max() < 1e5 and (m["pre_revenue"] > 0).all()
    report = experiment_report(table, EXPERIMENT)
    revenue = next(x for x in report["metrics"] if x["metric"] == "revenue_per_user")
    adjusted = revenue["comparisons"]["new"]["cuped"]
    a, b = table.arm("control"), table.arm("new")
    want = cuped(m["revenue"][a], m["pre_revenue"][a], m["revenue"][b], m["pre_revenue"][b])
    assert adjusted["theta"] == pytest.approx(want.theta, rel=1e-12)
    assert adjusted["p_value"] == pytest.approx(want.comparison.p_value, rel=1e-9)
    assert adjusted["variance_reduction"] > 0.8
    plain = revenue["comparisons"]["new"]
    width = plain["diff_ci"][1] - plain["diff_ci"][0]
    assert adjusted["diff_ci"][1] - adjusted["diff_ci"][0] < 0.5 * width
    # a covariate that never varies gives no adjusted comparison
    dwell = next(x for x in report["metrics"] if x["metric"] == "dwell_per_user")
    assert dwell["comparisons"]["new"].get("cuped") is None
