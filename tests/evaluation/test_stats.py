"""Bootstrap intervals, paired tests and Holm's correction against scipy and statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from penchant.errors import InvalidInput
from penchant.evaluation import stats
from penchant.evaluation.stats import bootstrap_ci, holm, paired_comparison


def test_bootstrap_ci_agrees_with_scipy_and_the_normal_interval() -> None:
    true_mean, n = 0.3, 500
    sample = np.random.default_rng(42).normal(true_mean, 1.0, n)
    low, high = bootstrap_ci(sample, n_resamples=10_000, rng=1)
    theirs = sps.bootstrap(
        (sample,), np.mean, confidence_level=0.95, n_resamples=10_000, method="percentile", rng=2
    ).confidence_interval
    # Each end moves by about 0.001 (one sd) between seeds at 10,000 resamples; 0.006 still
    # tells a 95% interval from a 97.5% one (ends 0.013 further out), which 0.02 would not.
    tolerance = 0.006
    assert abs(low - theirs.low) < tolerance
    assert abs(high - theirs.high) < tolerance
    assert low < true_mean < high
    half_width = 1.959964 * sample.std(ddof=1) / math.sqrt(n)
    assert abs(low - (sample.mean() - half_width)) < tolerance
    assert abs(high - (sample.mean() + half_width)) < tolerance


def test_bootstrap_ci_narrows_with_lower_confidence() -> None:
    sample = np.random.default_rng(0).normal(0.0, 1.0, 400)
    wide = bootstrap_ci(sample, confidence=0.99)
    narrow = bootstrap_ci(sample, confidence=0.5)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_bootstrap_ci_is_reproducible_and_takes_a_generator() -> None:
    sample = np.random.default_rng(0).random(300)
    assert bootstrap_ci(sample, rng=5) == bootstrap_ci(sample, rng=5)
    assert bootstrap_ci(sample, rng=np.random.default_rng(5)) == bootstrap_ci(sample, rng=5)
    assert bootstrap_ci(sample, rng=5) != bootstrap_ci(sample, rng=6)


@pytest.mark.parametrize("cells", [1, 1000])
def test_bootstrap_chunks_give_the_same_interval(
    monkeypatch: pytest.MonkeyPatch, cells: int
) -> None:
    sample = np.random.default_rng(0).random(500)
    whole = bootstrap_ci(sample, n_resamples=301, rng=9)
    monkeypatch.setattr(stats, "_CHUNK_CELLS", cells)  # 1 or 2 resamples per chunk
    assert bootstrap_ci(sample, n_resamples=301, rng=9) == whole


@pytest.mark.parametrize("n_resamples", [1, 3, 1000])
def test_a_constant_sample_has_a_point_interval(n_resamples: int) -> None:
    assert bootstrap_ci([0.25] * 10, n_resamples=n_resamples) == (0.25, 0.25)


@pytest.mark.parametrize(
    ("values", "options"),
    [
        ([], {}),
        ([1.0, math.nan], {}),
        ([[1.0, 2.0]], {}),
        (["a"], {}),
        ([1.0, 2.0], {"confidence": 1.0}),
        ([1.0, 2.0], {"n_resamples": 0}),
    ],
)
def test_bootstrap_rejects_bad_input(values: list[float], options: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        bootstrap_ci(values, **options)  # type: ignore[arg-type]


def test_paired_comparison_matches_a_hand_computed_t_test() -> None:
    rng = np.random.default_rng(3)
    a = rng.random(60)
    b = a + rng.normal(0.05, 0.1, 60)
    result = paired_comparison(a, b, metric="ndcg@10", rng=4)

    d = b - a
    t = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    assert result.t_pvalue == pytest.approx(2.0 * sps.t.sf(abs(t), d.size - 1), rel=1e-10)
    assert result.wilcoxon_pvalue == pytest.approx(sps.wilcoxon(b, a).pvalue, rel=1e-12)
    assert (result.metric, result.n_users) == ("ndcg@10", 60)
    assert result.mean_a == pytest.approx(a.mean())
    assert result.mean_b == pytest.approx(b.mean())
    assert result.difference == pytest.approx(d.mean())
    assert result.difference > 0  # B minus A, not A minus B
    assert (result.ci_low, result.ci_high) == bootstrap_ci(d, rng=4)
    assert result.ci_low < result.difference < result.ci_high


def test_wilcoxon_drops_zero_differences_exact_known_answer() -> None:
    # Two ties are dropped, leaving five positive differences of distinct sizes: the exact
    # two-sided p is 2 / 2**5 (Pratt's treatment of zeros would give another value).
    a = np.zeros(7)
    result = paired_comparison(a, a + np.array([0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5]), metric="m")
    assert result.wilcoxon_pvalue == pytest.approx(2 / 32)


def test_wilcoxon_large_sample_matches_the_normal_approximation_without_zeros() -> None:
    # 20 tied users dropped, 60 differences of distinct sizes: the signed-rank statistic is
    # normal with mean n(n+1)/4 and variance n(n+1)(2n+1)/24, n = 60.
    rng = np.random.default_rng(12)
    magnitudes = rng.permutation(np.arange(1, 61)) / 100.0
    signs = np.where(rng.random(60) < 0.65, 1.0, -1.0)
    differences = np.concatenate([np.zeros(20), signs * magnitudes])
    result = paired_comparison(np.zeros(80), differences, metric="m")
    n = 60
    ranks = np.argsort(np.argsort(magnitudes)) + 1.0
    w_plus = ranks[signs > 0].sum()
    z = (w_plus - n * (n + 1) / 4) / math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    assert result.wilcoxon_pvalue == pytest.approx(2.0 * sps.norm.sf(abs(z)), rel=1e-9)


def test_identical_systems_have_p_one() -> None:
    a = np.random.default_rng(0).random(20)
    result = paired_comparison(a, a.copy(), metric="m")
    assert (result.t_pvalue, result.wilcoxon_pvalue) == (1.0, 1.0)
    assert (result.difference, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(("a", "b"), [([1.0, 2.0], [1.0]), ([], []), ([1.0], [math.inf])])
def test_paired_comparison_rejects_bad_input(a: list[float], b: list[float]) -> None:
    with pytest.raises(InvalidInput):
        paired_comparison(a, b, metric="m")


def test_holm_known_answer() -> None:
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, then 0.04*1 lifted to 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_matches_statsmodels() -> None:
    rng = np.random.default_rng(8)
    for size in (1, 2, 7, 40):
        raw = rng.random(size) ** 3
        raw[: size // 3] = raw[0]  # ties
        expected = multipletests(raw, method="holm")[1]
        adjusted = holm(raw.tolist())
        np.testing.assert_allclose(adjusted, expected, rtol=1e-12)
        assert all(1.0 >= p_adj >= p for p_adj, p in zip(adjusted, raw, strict=True))


def test_holm_of_nothing_is_nothing() -> None:
    assert holm([]) == []


@pytest.mark.parametrize("pvalues", [[0.5, 1.5], [-0.1], [math.nan]])
def test_holm_rejects_values_that_are_not_probabilities(pvalues: list[float]) -> None:
    with pytest.raises(InvalidInput):
        holm(pvalues)
