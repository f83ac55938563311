"""The report's statistics against independent computations: Wilson intervals against scipy's
``binomtest(...).proportion_ci(method="wilson")`` and the textbook formula, McNemar's exact p
against scipy's exact binomial test, the Clopper-Pearson bounds against their defining binomial
tails and closed forms, and the McNemar-based gain interval against the test it inverts and the
normal approximation of a paired difference."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from termnorm_eval.report import intervals


@pytest.mark.parametrize("k, n", [(0, 1), (1, 1), (0, 6), (3, 6), (6, 6), (17, 60), (1, 600), (599, 600),
                                  (301, 600)])
def test_wilson_matches_scipy_and_the_formula(k: int, n: int) -> None:
    lo, hi = intervals.wilson(k, n)  # type: ignore[misc]
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)
    # Wilson (1927): (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z from the normal quantile
    z, p = stats.norm.ppf(0.975), k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert lo == pytest.approx(max(0.0, (centre - half) / (1 + z * z / n)), abs=1e-12)
    assert hi == pytest.approx(min(1.0, (centre + half) / (1 + z * z / n)), abs=1e-12)
    assert 0.0 <= lo <= p <= hi <= 1.0


def test_wilson_of_nothing_is_none() -> None:
    assert intervals.wilson(0, 0) is None


@pytest.mark.parametrize("gained, lost", [(0, 0), (1, 0), (0, 1), (5, 5), (12, 3), (3, 12), (40, 61),
                                          (300, 250), (0, 25)])
def test_mcnemar_exact_matches_scipy_binomtest(gained: int, lost: int) -> None:
    p = intervals.mcnemar_exact_p(gained, lost)
    if gained + lost == 0:
        assert p == 1.0
        return
    expected = stats.binomtest(gained, gained + lost, 0.5, alternative="two-sided").pvalue
    assert p == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert p == intervals.mcnemar_exact_p(lost, gained)  # symmetric in gained and lost


@pytest.mark.parametrize("k, m", [(0, 5), (5, 5), (1, 7), (12, 30), (250, 550)])
def test_clopper_pearson_bounds_are_the_exact_binomial_tails(k: int, m: int) -> None:
    lo, hi = intervals.clopper_pearson(k, m)
    ci = stats.binomtest(k, m).proportion_ci(method="exact")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-9)
    # by definition: at the lower bound P(X >= k) = 2.5 %, at the upper bound P(X <= k) = 2.5 %
    if k > 0:
        assert stats.binom.sf(k - 1, m, lo) == pytest.approx(0.025, abs=1e-9)
    else:
        assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / m), abs=1e-12)  # closed form
    if k < m:
        assert stats.binom.cdf(k, m, hi) == pytest.approx(0.025, abs=1e-9)
    else:
        assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / m), abs=1e-12)


def test_every_document_gained_keeps_a_real_interval() -> None:
    """20 of 20 gained: the gain is 100 points, its lower bound 2 * 0.025**(1/20) - 1, not 100."""
    lo, hi = intervals.mcnemar_interval(20, 0, 20)
    assert hi == 1.0 and lo == pytest.approx(2 * 0.025 ** (1 / 20) - 1, abs=1e-12)
    assert intervals.mcnemar_interval(0, 0, 50) == (0.0, 0.0)
    with pytest.raises(ValueError):
        intervals.mcnemar_interval(30, 30, 50)


def test_interval_excludes_zero_exactly_when_mcnemar_rejects() -> None:
    """The interval inverts the exact test: over every (gained, lost) up to 40 discordant
    documents, 0 lies outside it exactly when McNemar's p < 0.05."""
    for m in range(1, 41):
        for gained in range(m + 1):
            lost = m - gained
            ci = intervals.mcnemar_interval(gained, lost, 100)
            p = stats.binomtest(gained, m).pvalue
            assert ci[0] <= (gained - lost) / 100 <= ci[1]
            assert intervals.includes_zero(ci) == (p >= 0.05), (gained, lost, ci, p)


def test_interval_approaches_the_normal_interval() -> None:
    """For many documents and a small gain the interval approaches d ± z·sd/√n with the paired
    variance of the per-document change, ((b + c)/n − d²)/n."""
    n, b, c = 6000, 700, 600
    d = (b - c) / n
    se = math.sqrt(((b + c) / n - d * d) / n)
    lo, hi = intervals.mcnemar_interval(b, c, n)
    assert lo == pytest.approx(d - intervals.Z95 * se, abs=0.001)
    assert hi == pytest.approx(d + intervals.Z95 * se, abs=0.001)


def test_includes_zero() -> None:
    assert intervals.includes_zero((0.0, 0.0)) and intervals.includes_zero((-0.1, 0.2))
    assert not intervals.includes_zero((0.01, 0.2)) and not intervals.includes_zero(None)


@pytest.mark.parametrize("strict, close, n",
                         [(0, 0, 10), (0, 10, 10), (3, 7, 20), (20, 20, 20), (150, 330, 600)])
def test_credit_interval_is_the_mean_of_two_975_wilson_intervals(strict: int, close: int, n: int) -> None:
    """hierarchy_credit = (strict + right-or-close) / 2: each half's 97.5% interval (scipy), averaged."""
    assert stats.norm.ppf(1 - 0.025 / 2) == pytest.approx(intervals.Z975, abs=1e-12)
    lo, hi = intervals.credit_interval(strict, close, n)  # type: ignore[misc]
    a = stats.binomtest(strict, n).proportion_ci(confidence_level=0.975, method="wilson")
    b = stats.binomtest(close, n).proportion_ci(confidence_level=0.975, method="wilson")
    assert (lo, hi) == pytest.approx(((a.low + b.low) / 2, (a.high + b.high) / 2), abs=1e-12)
    assert lo <= (strict + close) / (2 * n) <= hi
    # wider than the 95% interval of either half alone
    assert hi - lo >= min(x[1] - x[0] for x in (intervals.wilson(strict, n), intervals.wilson(close, n))
                          if x is not None) - 1e-12
    assert intervals.credit_interval(0, 0, 0) is None


def test_credit_gain_interval_keeps_its_width_when_every_change_is_a_parent() -> None:
    """20 documents, each wrong before and the gold's parent after: a gain of 0.5 point each. A
    paired-difference interval (or a bootstrap) has no spread here; this one is informative."""
    lo, hi = intervals.credit_gain_interval((0, 0), (20, 0), 20)
    strict = intervals.mcnemar_interval(0, 0, 20, level=0.975)
    close = intervals.mcnemar_interval(20, 0, 20, level=0.975)
    assert (lo, hi) == pytest.approx(((strict[0] + close[0]) / 2, (strict[1] + close[1]) / 2))
    assert lo < 0.5 <= hi and lo > 0  # clearly a gain, but not known to the point
    cp = stats.binomtest(20, 20).proportion_ci(confidence_level=0.975, method="exact")
    assert close[0] == pytest.approx(2 * cp.low - 1, abs=1e-9)
