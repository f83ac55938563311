"""Popularity-balanced sampling: rank, cut into bins of about equal size, draw the same number per bin.

Reusable for any terminology (built-ins and ``add-ontology``): it sees only ids, two popularity
numbers per id (``popularity`` ranks, ``secondary`` breaks its ties) and optionally a stratum per id
(GO aspect), within which everything is ranked and binned on its own.

How the bins respect the data:

* **Pool.** Only items with popularity >= 1 are ranked. Items with popularity 0 are left out, or
  (``include_unannotated``) form a bin of their own, bin 0, labelled ``unannotated``: they are never
  mixed into a ranked bin, where their order could only be that of their identifiers.
* **Ties are never split.** Items are ordered by (popularity, secondary); a bin boundary only ever
  falls between two different (popularity, secondary) values. So no item's bin depends on its
  identifier or on chance, and no two bins share a value. The cost: bins are of *about* equal size
  (each cut goes to the value edge nearest the equal-count position), and one value held by more
  items than an equal bin would take is a bin of its own, standing in for several equal bins;
  ``bins`` lists each bin's share of the pool and ``binning.wide_bins`` names those. Where the
  values give fewer bins of at least 2 x per-bin items than asked for, the bins are merged and
  ``binning.bins`` says how many there are.
* **Draw.** From each bin, ``per_bin`` items go to train and another ``per_bin`` to val, drawn
  with ``random.Random(seed)`` from the bin's members in id order; with strata, each stratum gives
  its share of ``per_bin`` (30 over BP/CC/MF: 10 each).
"""

from __future__ import annotations

import operator
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from termnorm_eval.errors import TermnormError

SEED_MAX = 2**32 - 1  # numpy's seed range too; random.Random(-1) would silently equal seed 1
UNANNOTATED = "unannotated"  # the label of bin 0 when items without popularity are included
WIDE = 1.5  # a bin over this many equal-count bins' share is reported as wide (one value, many items)

Key = tuple[int, int]  # (popularity, secondary)


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
    train: dict[str, int]  # id -> bin (0 = least popular, or the unannotated bin)
    val: dict[str, int]
    bins: list[dict[str, Any]] = field(default_factory=list)  # per-bin facts for the manifest
    binning: dict[str, Any] = field(default_factory=dict)  # pool and bin rules, for the manifest


def tie_bins(sizes: Sequence[int], bins: int, min_size: int) -> list[int]:
    """How many consecutive value groups (of ``sizes`` items each) go into each bin.

    At most ``bins`` bins, each of at least ``min_size`` items where the groups allow it; each cut
    is placed at the group edge nearest the equal share of what is left, so one huge group becomes
    a bin of its own and the rest is shared out evenly among the remaining bins.
    """
    out: list[int] = []
    total, done, i = sum(sizes), 0, 0
    for k in range(bins):
        if i >= len(sizes):
            break
        if k == bins - 1:
            out.append(len(sizes) - i)
            break
        target = (total - done) / (bins - k)
        j, size = i, 0
        while j < len(sizes) and (j == i or size < min_size):
            size += sizes[j]
            j += 1
        while j < len(sizes) and abs(size + sizes[j] - target) < abs(size - target):
            size += sizes[j]
            j += 1
        out.append(j - i)
        done, i = done + size, j
    if len(out) > 1 and sum(sizes[len(sizes) - out[-1]:]) < min_size:
        out[-2:] = [out[-2] + out[-1]]  # a last bin too small to draw from joins the one before
    return out


def _quotas(strata: Sequence[str], per_bin: int) -> dict[str, int]:
    """per_bin shared out over the strata (sorted), the first ones taking the remainder."""
    base, extra = divmod(per_bin, len(strata))
    return {s: base + (1 if i < extra else 0) for i, s in enumerate(strata)}


def _range(ids: Sequence[str], key: Mapping[str, Key]) -> dict[str, Any]:
    lo, hi = key[ids[0]], key[ids[-1]]
    return {"popularity_min": lo[0], "popularity_max": hi[0], "key_min": list(lo), "key_max": list(hi),
            "values": len({key[i] for i in ids})}


def balanced_sample(
    candidates: Sequence[str],
    popularity: Mapping[str, int],
    bins: int = 20,
    per_bin: int = 30,
    seed: int = 0,
    strata: Mapping[str, str] | None = None,
    label: str = "split",
    secondary: Mapping[str, int] | None = None,
    include_unannotated: bool = False,
    ranked: bool = True,
) -> BalancedSplit:
    """Draw ``per_bin`` train and ``per_bin`` disjoint val ids from each popularity bin (module doc).

    ``ranked=False`` (no popularity at all: add-ontology without annotations) puts every candidate
    into one bin. The result depends only on the inputs and ``seed``, not on their order.
    """
    if bins < 1 or per_bin < 1:
        raise TermnormError(f"{label}: bins and per-bin must be >= 1 (got {bins}, {per_bin})")
    check_seed(seed)
    secondary = secondary or {}
    key: dict[str, Key] = {i: (popularity.get(i, 0), secondary.get(i, 0)) if ranked else (0, 0)
                           for i in sorted(set(candidates))}
    if not key:
        raise TermnormError(f"{label}: no candidates to sample from")
    groups: dict[str, list[str]] = {}
    for i in key:
        groups.setdefault(strata[i] if strata is not None else "", []).append(i)
    names = sorted(groups)
    quota = _quotas(names, per_bin)
    # per stratum: the bins as lists of ids, bin 0 first
    layout: dict[str, list[list[str]]] = {}
    unannotated: dict[str, int] = {}
    for s in names:
        where = f"{label} {s}".rstrip() if s else label
        pool = sorted((i for i in groups[s] if key[i][0] > 0 or not ranked), key=lambda i: (key[i], i))
        zero = [i for i in groups[s] if ranked and key[i][0] == 0]
        unannotated[s] = len(zero)
        need = 2 * quota[s]
        if len(pool) < need * bins:
            have = f"{len(pool)} with popularity >= 1" if ranked else str(len(pool))
            raise TermnormError(
                f"{where}: needs {need * bins} candidates ({bins} bins x {quota[s]} train + {quota[s]} val), "
                f"only {have} available" + (" (--include-unannotated adds the others as a bin of "
                                             "their own)" if zero and not include_unannotated else "")
            )
        runs = [list(g) for _, g in groupby(pool, key=lambda i: key[i])]
        cut = tie_bins([len(r) for r in runs], bins, need)
        layout[s], at = [], 0
        for n in cut:
            layout[s].append([i for run in runs[at:at + n] for i in run])
            at += n
        if include_unannotated:
            if len(zero) < need:
                raise TermnormError(f"{where}: --include-unannotated needs {need} items with popularity 0 "
                                    f"for the unannotated bin, only {len(zero)} available")
            layout[s].insert(0, sorted(zero))
    counts = {s: len(layout[s]) for s in names}
    if len(set(counts.values())) > 1:
        fewest = min(counts, key=lambda s: counts[s])
        raise TermnormError(f"{label} {fewest}: its popularity values give only {counts[fewest]} bins "
                            f"(others give {max(counts.values())}); use --bins {counts[fewest]} or fewer")
    n_bins = counts[names[0]]
    total = {s: sum(len(b) for b in layout[s]) for s in names}
    offset = 1 if include_unannotated else 0
    ranked_total = {s: total[s] - (len(layout[s][0]) if offset else 0) for s in names}
    rng = random.Random(seed)
    out = BalancedSplit({}, {})
    wide: list[dict[str, Any]] = []
    for b in range(n_bins):
        info: dict[str, Any] = {"bin": b}
        if b < offset:
            info["label"] = UNANNOTATED
        members = [i for s in names for i in layout[s][b]]
        info["candidates"] = len(members)
        info["share"] = round(len(members) / sum(total.values()), 4)
        if strata is None:
            info.update(_range(layout[""][b], key))
        else:
            by = {s: {"candidates": len(layout[s][b]), "share": round(len(layout[s][b]) / total[s], 4),
                      **_range(layout[s][b], key)} for s in names}
            info["popularity_min"] = min(x["popularity_min"] for x in by.values())
            info["popularity_max"] = max(x["popularity_max"] for x in by.values())
            info["by_stratum"] = by
            info["candidates_by_stratum"] = {s: len(layout[s][b]) for s in names}
            info["per_split_by_stratum"] = dict(quota)
        train: list[str] = []
        val: list[str] = []
        for s in names:
            bin_ids = layout[s][b]
            equal = len(bin_ids) / ranked_total[s] * (n_bins - offset)  # how many equal-count bins' worth
            if b >= offset and equal > WIDE:
                wide.append({"bin": b, **({"stratum": s} if s else {}), "candidates": len(bin_ids),
                             "equal_bins": round(equal, 2), "values": len({key[i] for i in bin_ids})})
            picked = rng.sample(bin_ids, 2 * quota[s])
            train += picked[:quota[s]]
            val += picked[quota[s]:]
        info["train"], info["val"] = len(train), len(val)
        out.train.update((i, b) for i in train)
        out.val.update((i, b) for i in val)
        out.bins.append(info)
    out.binning = {
        "method": "ranked by (popularity, secondary); a cut never splits a value; cuts at the value edge "
                  "nearest the equal-count position" if ranked else "one bin: no popularity",
        "requested_bins": bins,
        "bins": n_bins,
        "ranked_bins": n_bins - offset,
        "merged": bins - (n_bins - offset),
        "ranked_candidates": sum(ranked_total.values()),
        "unannotated_candidates": sum(unannotated.values()),
        "unannotated": f"bin 0 ({UNANNOTATED})" if include_unannotated else "left out",
        "wide_bins": wide,
    }
    return out
