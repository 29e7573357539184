"""Experiment assignment: stable hashes, weights, ramps, independent salts, holdouts, bad input."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from penchant.errors import InvalidInput
from penchant.experiments import Allocation, Assignment, Holdout, assign, unit_hash

IDS = [f"user-{i}" for i in range(200_000)]
#: Chi-square and binomial checks fail only below this p-value: one false alarm in 1,000 runs.
P_MIN = 0.001


def allocation(ramp: float = 1.0, salt: str = "exp-1") -> Allocation:
    return Allocation(("control", "small", "large"), (5.0, 3.0, 2.0), ramp, salt)


def test_unit_hash_is_the_documented_blake2b_encoding() -> None:
    # The format is a contract (another service or an SDK may recompute it): a count of parts,
    # then each part's length and UTF-8 bytes, 8-byte big-endian; blake2b-64 personalized; the
    # top 53 bits as a fraction. Changing it would move every unit of every running experiment.
    def by_hand(salt: str, unit: str) -> float:
        message = (2).to_bytes(8, "big")
        for part in (salt.encode(), unit.encode()):
            message += len(part).to_bytes(8, "big") + part
        digest = hashlib.blake2b(message, digest_size=8, person=b"penchant.assign1").digest()
        return (int.from_bytes(digest, "big") >> 11) / 2.0**53

    for salt, unit in [("exp-1", "user-1"), ("", ""), ("épreuve", "ユーザー")]:
        assert unit_hash(salt, unit) == by_hand(salt, unit)
    assert unit_hash("exp-1", "user-1") == 0.8212757475867397
    assert unit_hash("exp-1", "user-2") == 0.361121021812704


def test_salt_and_unit_boundaries_do_not_collide() -> None:
    assert unit_hash("ab", "c") != unit_hash("a", "bc")
    assert unit_hash("", "abc") != unit_hash("abc", "")


@settings(max_examples=200)
@given(st.text(), st.text())
def test_unit_hash_is_in_the_unit_interval_and_repeatable(salt: str, unit: str) -> None:
    u = unit_hash(salt, unit)
    assert 0.0 <= u < 1.0
    assert unit_hash(salt, unit) == u


def test_the_same_unit_gets_the_same_answer_in_a_fresh_process() -> None:
    units = [f"user-{i}" for i in range(50)]
    holdout = Holdout("tenant-a", 0.1)
    here = [assign(allocation(0.6), u, holdout=holdout) for u in units]
    assert here == [assign(allocation(0.6), u, holdout=holdout) for u in units]
    code = (
        "import json, sys\n"
        "from penchant.experiments import Allocation, Holdout, assign, unit_hash\n"
        "a = Allocation(('control', 'small', 'large'), (5.0, 3.0, 2.0), 0.6, 'exp-1')\n"
        "h = Holdout('tenant-a', 0.1)\n"
        "units = [f'user-{i}' for i in range(50)]\n"
        "out = [[assign(a, u, holdout=h).variant, assign(a, u, holdout=h).reason] for u in units]\n"
        "json.dump({'out': out, 'hash': unit_hash('exp-1', 'user-1')}, sys.stdout)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    there = json.loads(done.stdout)
    assert there["out"] == [[a.variant, a.reason] for a in here]
    assert there["hash"] == unit_hash("exp-1", "user-1")
    assert {a.reason for a in here} == {"holdout", "not_ramped", "assigned"}


def test_variant_shares_match_the_weights() -> None:
    counts = Counter(assign(allocation(), u).variant for u in IDS)
    observed = [counts["control"], counts["small"], counts["large"]]
    assert sum(observed) == len(IDS)
    expected = np.array([0.5, 0.3, 0.2]) * len(IDS)
    assert stats.chisquare(observed, expected).pvalue > P_MIN


def test_weights_of_any_scale_are_normalized() -> None:
    a = Allocation(("a", "b"), (1, 3), 1.0, "s")
    assert a.weights == (0.25, 0.75)
    assert a == Allocation(["a", "b"], [10.0, 30.0], 1, "s")  # type: ignore[arg-type]
    assert Allocation(("only",), (7.0,), 1.0, "s").weights == (1.0,)
    numpy = Allocation(("a", "b"), tuple(np.array([1, 3])), np.float64(0.5), "s")
    assert (numpy.weights, numpy.ramp) == ((0.25, 0.75), 0.5)


def test_ramping_up_keeps_every_unit_and_its_variant() -> None:
    units = IDS[:50_000]
    at_10 = [assign(allocation(0.1), u) for u in units]
    at_50 = [assign(allocation(0.5), u) for u in units]
    for before, after in zip(at_10, at_50, strict=True):
        if before.reason == "assigned":
            assert after == before
    n_10 = sum(a.reason == "assigned" for a in at_10)
    n_50 = sum(a.reason == "assigned" for a in at_50)
    assert stats.binomtest(n_10, len(units), 0.1).pvalue > P_MIN
    assert stats.binomtest(n_50, len(units), 0.5).pvalue > P_MIN
    # The units added by the ramp split by the weights too.
    added = Counter(
        after.variant
        for before, after in zip(at_10, at_50, strict=True)
        if before.reason == "not_ramped" and after.reason == "assigned"
    )
    observed = [added["control"], added["small"], added["large"]]
    expected = np.array([0.5, 0.3, 0.2]) * sum(observed)
    assert stats.chisquare(observed, expected).pvalue > P_MIN


@given(
    st.text(min_size=1),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_a_larger_ramp_only_adds_units(unit: str, r1: float, r2: float) -> None:
    low, high = sorted((r1, r2))
    before, after = assign(allocation(low), unit), assign(allocation(high), unit)
    if before.reason == "assigned":
        assert after == before
    if after.reason == "not_ramped":
        assert before.reason == "not_ramped"


def test_ramp_zero_takes_nobody_and_one_takes_everybody() -> None:
    units = IDS[:2_000]
    assert all(assign(allocation(0.0), u) == Assignment(None, "not_ramped") for u in units)
    assert all(assign(allocation(1.0), u).reason == "assigned" for u in units)


def test_experiments_with_different_salts_are_independent() -> None:
    units = IDS[:100_000]
    first = Allocation(("a", "b"), (1.0, 1.0), 1.0, "exp-1")
    second = Allocation(("a", "b", "c"), (1.0, 1.0, 2.0), 0.7, "exp-2")
    pairs = Counter((assign(first, u).variant, assign(second, u).variant) for u in units)
    table = [[pairs[(x, y)] for y in ("a", "b", "c", None)] for x in ("a", "b")]
    assert stats.chi2_contingency(table).pvalue > P_MIN
    # Same variants and weights under another salt: about half of the units change variant.
    third = Allocation(("a", "b"), (1.0, 1.0), 1.0, "exp-3")
    moved = sum(assign(first, u) != assign(third, u) for u in units[:20_000])
    assert stats.binomtest(moved, 20_000, 0.5).pvalue > P_MIN


def test_the_ramp_and_the_variant_are_independent_draws() -> None:
    # With one salt, the ramp's hash and the variant's hash must not be correlated, or a
    # partial ramp would favour some variants.
    units = IDS[:100_000]
    ramped = Counter(assign(allocation(0.3), u).variant for u in units)
    observed = [ramped["control"], ramped["small"], ramped["large"]]
    expected = np.array([0.5, 0.3, 0.2]) * sum(observed)
    assert stats.chisquare(observed, expected).pvalue > P_MIN


def test_a_holdout_excludes_the_same_share_from_every_experiment() -> None:
    units = IDS[:100_000]
    holdout = Holdout("tenant-a/holdout", 0.05)
    experiments = [allocation(1.0, "exp-1"), Allocation(("x", "y"), (1.0, 1.0), 0.5, "exp-2")]
    held = [
        {u for u in units if assign(e, u, holdout=holdout).reason == "holdout"} for e in experiments
    ]
    assert held[0] == held[1] == {u for u in units if holdout.contains(u)}
    assert stats.binomtest(len(held[0]), len(units), 0.05).pvalue > P_MIN
    for e in experiments:
        for u in units[:20_000]:
            with_holdout = assign(e, u, holdout=holdout)
            if u in held[0]:
                assert with_holdout == Assignment(None, "holdout")
            else:  # the holdout only removes units: everyone else is placed as without it
                assert with_holdout == assign(e, u)
    assert not any(Holdout("h", 0.0).contains(u) for u in units[:1_000])
    assert all(Holdout("h", 1.0).contains(u) for u in units[:1_000])


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Allocation((), (), 1.0, "s"), "variants"),
        (lambda: Allocation(("a", "a"), (1.0, 1.0), 1.0, "s"), "variants"),
        (lambda: Allocation(("a", ""), (1.0, 1.0), 1.0, "s"), "variants"),
        (lambda: Allocation(("a", 1), (1.0, 1.0), 1.0, "s"), "variants"),
        (lambda: Allocation(("a", "b"), (1.0,), 1.0, "s"), "weights"),
        (lambda: Allocation(("a", "b"), (1.0, 0.0), 1.0, "s"), "weights"),
        (lambda: Allocation(("a", "b"), (1.0, -2.0), 1.0, "s"), "weights"),
        (lambda: Allocation(("a", "b"), (1.0, float("nan")), 1.0, "s"), "weights"),
        (lambda: Allocation(("a", "b"), (1.0, float("inf")), 1.0, "s"), "weights"),
        (lambda: Allocation(("a", "b"), (1.0, "2"), 1.0, "s"), "weights"),
        (lambda: Allocation(("a",), (1.0,), 1.5, "s"), "ramp"),
        (lambda: Allocation(("a",), (1.0,), -0.1, "s"), "ramp"),
        (lambda: Allocation(("a",), (1.0,), float("nan"), "s"), "ramp"),
        (lambda: Allocation(("a",), (1.0,), True, "s"), "ramp"),
        (lambda: Allocation(("a",), (1.0,), 1.0, ""), "salt"),
        (lambda: Allocation(("a",), (1.0,), 1.0, None), "salt"),
        (lambda: Holdout("", 0.1), "salt"),
        (lambda: Holdout("h", 1.1), "share"),
        (lambda: Holdout("h", float("nan")), "share"),
        (lambda: assign(allocation(), ""), "unit"),
        (lambda: assign(allocation(), 42), "unit"),
        (lambda: assign(allocation(), None), "unit"),
        (lambda: unit_hash("s", b"user"), "unit"),
        (lambda: unit_hash(1, "user"), "salt"),
    ],
)
def test_bad_input_is_refused_with_the_field(make: object, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        make()  # type: ignore[operator]
    assert caught.value.field == field
    assert caught.value.message
