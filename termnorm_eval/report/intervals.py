"""95% intervals and tests for the report's scores.

* An accuracy (k of n documents right) gets a **Wilson score interval**: unlike the normal
  ("Wald") interval it stays inside [0, 1] and keeps its coverage at 0 % or 100 % and for small n.
* A gain (fine-tuned minus base on the same n documents) is (gained - lost) / n, where gained
  and lost are the discordant documents. Its p-value is **McNemar's exact test**: under "no
  change" each of the m = gained + lost discordant documents is a gain with probability 1/2, so
  the two-sided p is the binomial tail of min(gained, lost) out of m, doubled (capped at 1).
* Its interval is the **exact McNemar-based (conditional) interval**: the Clopper-Pearson
  interval [pi_lo, pi_hi] of pi = P(gain | discordant) from gained of m, mapped to the gain as
  m (2 pi - 1) / n. It is the interval that inverts the same exact test, so it excludes 0 exactly
  when p < 0.05 (the mark and the p-value never disagree), it needs no random numbers, and it
  stays informative where a bootstrap collapses to one point (every document gained: 20 of 20 gives
  [+66.3, +100] points, a bootstrap [+100, +100]). It treats m as fixed (conditional on the
  discordant count), the standard exact approach for paired proportions.
* ``hierarchy_credit`` (1 right, 0.5 for the gold's is_a parent or child, else 0) is not a 0/1
  score, but it is the mean of two: a = strict, b = strict or parent/child, credit = (a + b) / 2.
  Its interval is the mean of their intervals, each at 97.5% (Wilson for a credit, the exact
  McNemar-based interval for its gain): both hold together with at least 95% (Bonferroni), and
  then so does their mean. No p-value: no single exact test belongs to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile
HALF_LEVEL = 0.975  # each of the two intervals a credit's interval is the mean of (Bonferroni)
Z975 = 2.241402727604947  # the standard normal's 98.75th percentile: a two-sided 97.5% interval


def whole(k: float) -> float:
    """A count from a mean times n: whole up to float rounding."""
    return float(round(k)) if abs(k - round(k)) < 1e-6 else k


def bounds(k: float, n: int | None) -> tuple[float | None, float | None]:
    """The Wilson interval of ``k`` of ``n`` as ``(lo, hi)``; ``(None, None)`` without documents. ``k``
    may be an accuracy times n (a mean of 0/1 scores): it is made whole where float rounding blurred it."""
    ci = wilson(whole(k), n) if n else None
    return (None, None) if ci is None else ci


def transitions(before: Sequence[bool], after: Sequence[bool]) -> tuple[int, int]:
    """Documents gained (wrong before, right after) and lost (right before, wrong after), paired."""
    gained = sum(1 for x, y in zip(before, after, strict=True) if y and not x)
    lost = sum(1 for x, y in zip(before, after, strict=True) if x and not y)
    return gained, lost


def wilson(k: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of the proportion ``k / n``; None for ``n == 0`` (nothing scored).

    ``k`` may be fractional (an accuracy times n that is not quite whole after rounding in the
    results file); it is used as is.
    """
    if n <= 0:
        return None
    p = min(1.0, max(0.0, k / n))
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # exactly 0 at p = 0 and 1 at p = 1; rounding would leave 1e-17 on the wrong side
    lo = 0.0 if p == 0.0 else max(0.0, centre - half)
    hi = 1.0 if p == 1.0 else min(1.0, centre + half)
    return lo, hi


def mcnemar_exact_p(gained: int, lost: int) -> float:
    """Two-sided p-value of McNemar's exact test on the discordant pairs; 1.0 when there are none."""
    m = gained + lost
    if m == 0:
        return 1.0
    k = min(gained, lost)
    # exact integer arithmetic: no underflow for hundreds of discordant documents
    tail = sum(math.comb(m, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**m)


def clopper_pearson(k: int, m: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion k of m (m > 0)."""
    from scipy.stats import beta

    if not 0 <= k <= m or m <= 0:
        raise ValueError(f"not a binomial count: {k} of {m}")
    alpha = 1 - level
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, m - k + 1))
    hi = 1.0 if k == m else float(beta.ppf(1 - alpha / 2, k + 1, m - k))
    return lo, hi


def mcnemar_interval(gained: int, lost: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact McNemar-based interval of the paired gain (gained - lost) / n over n documents.

    No discordant document: (0.0, 0.0), a gain of exactly 0 that the data cannot tell from 0.
    """
    if gained < 0 or lost < 0 or gained + lost > n or n <= 0:
        raise ValueError(f"not paired counts: {gained} gained, {lost} lost of {n} documents")
    m = gained + lost
    if m == 0:
        return 0.0, 0.0
    lo, hi = clopper_pearson(gained, m, level)
    return m * (2 * lo - 1) / n, m * (2 * hi - 1) / n


def includes_zero(interval: tuple[float, float] | None) -> bool:
    """True when the interval does not exclude 0 (no clear change); False when there is none."""
    return interval is not None and interval[0] <= 0.0 <= interval[1]


def _mean(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return (a[0] + b[0]) / 2, (a[1] + b[1]) / 2


def credit_interval(strict_k: float, close_k: float, n: int) -> tuple[float, float] | None:
    """Interval of a hierarchy credit from ``strict_k`` right documents and ``close_k`` right or
    parent/child ones, of n (see the module's docstring); None for ``n == 0``."""
    a, b = wilson(strict_k, n, Z975), wilson(close_k, n, Z975)
    return None if a is None or b is None else _mean(a, b)


def credit_gain_interval(strict: tuple[int, int], close: tuple[int, int], n: int) -> tuple[float, float]:
    """Interval of the paired gain in hierarchy credit: ``strict`` and ``close`` are the (gained,
    lost) documents of its two 0/1 halves (strict; right or parent/child) over the same n documents."""
    return _mean(mcnemar_interval(*strict, n, level=HALF_LEVEL),
                 mcnemar_interval(*close, n, level=HALF_LEVEL))


class HasIntervals:
    """A report row whose intervals are pairs of fields ``<what>_lo`` / ``<what>_hi``."""

    def ci(self, what: str) -> tuple[float, float] | None:
        """The interval of ``what`` (e.g. ``strict``, ``tuned``, ``delta_strict``); None when not known."""
        lo, hi = getattr(self, f"{what}_lo"), getattr(self, f"{what}_hi")
        return None if lo is None or hi is None else (lo, hi)
