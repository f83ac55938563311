"""Popularity-balanced sampling: rank, cut into equal bins, draw the same number per bin.

Reusable for any terminology (built-ins and ``add-ontology``): it only sees ids, a popularity
number per id and optionally a stratum per id (GO aspect) to balance within each bin.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from termnorm_eval.errors import TermnormError

SEED_MAX = 2**32 - 1  # numpy's seed range too; random.Random(-1) would silently equal seed 1


def check_seed(seed: int, option: str = "--seed") -> int:
    """A sampling seed in 0..2**32-1: a negative one is refused, not folded onto its absolute value."""
    try:
        value = operator.index(seed)  # int, numpy integers; not floats or strings
    except TypeError:
        value = None
    if value is None or isinstance(seed, bool) or not 0 <= value <= SEED_MAX:
        raise TermnormError(f"{option} {seed!r}: must be an integer from 0 to {SEED_MAX}")
    return value


@dataclass
class BalancedSplit:
    train: dict[str, int]  # id -> bin (0 = least popular)
    val: dict[str, int]
    bins: list[dict[str, Any]] = field(default_factory=list)  # per-bin facts for the manifest


def bin_ranges(n: int, bins: int) -> list[tuple[int, int]]:
    """Start/end positions of ``bins`` equal-size bins over ``n`` ranked items (sizes differ by <= 1)."""
    return [(i * n // bins, (i + 1) * n // bins) for i in range(bins)]


def _stratum_quotas(
    members: Mapping[str, list[str]], per_bin: int, where: str
) -> dict[str, int]:
    """How many per split each stratum gives: per_bin/k each, shortfalls filled from the others.

    A stratum can give at most half its members (the same number goes to train and to val).
    """
    names = sorted(members)
    base, extra = divmod(per_bin, len(names))
    want = {s: base + (1 if i < extra else 0) for i, s in enumerate(names)}
    cap = {s: len(members[s]) // 2 for s in names}
    quota = {s: min(want[s], cap[s]) for s in names}
    short = per_bin - sum(quota.values())
    while short > 0:
        # deterministic: the stratum with the most spare members, then by name
        spare = sorted((quota[s] - cap[s], s) for s in names if cap[s] > quota[s])
        if not spare:
            have = sum(len(v) for v in members.values())
            raise TermnormError(
                f"{where}: needs {2 * per_bin} candidates ({per_bin} train + {per_bin} val), "
                f"only {have} available"
            )
        quota[spare[0][1]] += 1
        short -= 1
    return quota


def balanced_sample(
    candidates: Sequence[str],
    popularity: Mapping[str, int],
    bins: int = 20,
    per_bin: int = 30,
    seed: int = 0,
    strata: Mapping[str, str] | None = None,
    label: str = "split",
) -> BalancedSplit:
    """Draw ``per_bin`` train and ``per_bin`` disjoint val ids from each popularity bin.

    Candidates are ranked by (popularity, id), so ties are broken by id and the result depends only
    on the inputs and ``seed``. With ``strata`` each bin is balanced across the strata (GO: BP, MF,
    CC), a short stratum being made up from the others; per-stratum counts are recorded.
    """
    if bins < 1 or per_bin < 1:
        raise TermnormError(f"{label}: bins and per-bin must be >= 1 (got {bins}, {per_bin})")
    check_seed(seed)
    ids = sorted(set(candidates), key=lambda i: (popularity.get(i, 0), i))
    if len(ids) < bins * 2 * per_bin:
        raise TermnormError(
            f"{label}: needs {bins * 2 * per_bin} candidates ({bins} bins x {per_bin} train + {per_bin} "
            f"val), only {len(ids)} available"
        )
    rng = random.Random(seed)
    out = BalancedSplit({}, {})
    for b, (lo, hi) in enumerate(bin_ranges(len(ids), bins)):
        members = ids[lo:hi]
        where = f"{label} bin {b}"
        info: dict[str, Any] = {
            "bin": b,
            "candidates": len(members),
            "popularity_min": popularity.get(members[0], 0),
            "popularity_max": popularity.get(members[-1], 0),
        }
        if strata is None:
            if len(members) < 2 * per_bin:
                raise TermnormError(
                    f"{where}: needs {2 * per_bin} candidates ({per_bin} train + {per_bin} val), "
                    f"only {len(members)} available"
                )
            picked = rng.sample(members, 2 * per_bin)
            train, val = picked[:per_bin], picked[per_bin:]
        else:
            groups: dict[str, list[str]] = {}
            for i in members:
                groups.setdefault(strata[i], []).append(i)
            quota = _stratum_quotas(groups, per_bin, where)
            train, val = [], []
            for s in sorted(groups):
                picked = rng.sample(groups[s], 2 * quota[s])
                train += picked[:quota[s]]
                val += picked[quota[s]:]
            info["candidates_by_stratum"] = {s: len(groups[s]) for s in sorted(groups)}
            info["per_split_by_stratum"] = {s: quota[s] for s in sorted(groups)}
        info["train"], info["val"] = len(train), len(val)
        out.train.update((i, b) for i in train)
        out.val.update((i, b) for i in val)
        out.bins.append(info)
    return out
