"""The balanced sampler on its own: bins, strata, shortfalls, determinism, too-few-candidates errors."""

from __future__ import annotations

import itertools

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.splits.balance import balanced_sample, bin_ranges


def _ids(n: int) -> list[str]:
    return [f"X:{i:05d}" for i in range(n)]


def test_bin_ranges_cover_everything_once() -> None:
    ranges = bin_ranges(103, 20)
    assert ranges[0][0] == 0 and ranges[-1][1] == 103
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert {hi - lo for lo, hi in ranges} == {5, 6}


def test_bins_follow_popularity_and_splits_are_disjoint() -> None:
    ids = _ids(400)
    popularity = {i: n // 7 for n, i in enumerate(ids)}
    split = balanced_sample(ids, popularity, bins=4, per_bin=10, seed=3)
    assert len(split.train) == len(split.val) == 40
    assert not set(split.train) & set(split.val)
    for chosen in (split.train, split.val):
        for b in range(4):
            assert sum(1 for v in chosen.values() if v == b) == 10
    for i, b in {**split.train, **split.val}.items():
        assert b == ids.index(i) // 100  # popularity rises with the index here
    assert [x["popularity_min"] for x in split.bins] == [0, 100 // 7, 200 // 7, 300 // 7]


def test_ties_broken_by_id_and_seed_reproducible() -> None:
    ids = _ids(300)
    flat = dict.fromkeys(ids, 5)
    a = balanced_sample(list(reversed(ids)), flat, bins=3, per_bin=5, seed=1)
    b = balanced_sample(ids, flat, bins=3, per_bin=5, seed=1)
    assert a == b  # input order does not matter
    assert all(bin_ == ids.index(i) // 100 for i, bin_ in a.train.items())
    c = balanced_sample(ids, flat, bins=3, per_bin=5, seed=2)
    assert c.train != a.train


def test_strata_balanced_and_short_stratum_filled_from_others() -> None:
    ids = _ids(300)
    popularity = dict.fromkeys(ids, 0)
    # one bin (bins=1): CC has only 4 members, so it can give 2 per split; the rest come from BP/MF
    strata = {i: ("CC" if n < 4 else "BP" if n % 2 else "MF") for n, i in enumerate(ids)}
    split = balanced_sample(ids, popularity, bins=1, per_bin=9, seed=0, strata=strata)
    info = split.bins[0]
    assert info["per_split_by_stratum"]["CC"] == 2
    assert sum(info["per_split_by_stratum"].values()) == 9
    assert sorted(info["per_split_by_stratum"].values()) == [2, 3, 4]
    for chosen in (split.train, split.val):
        counts = {s: sum(1 for i in chosen if strata[i] == s) for s in ("BP", "CC", "MF")}
        assert counts == info["per_split_by_stratum"]


def test_even_strata_get_equal_shares() -> None:
    ids = _ids(600)
    strata = {i: ["BP", "MF", "CC"][n % 3] for n, i in enumerate(ids)}
    split = balanced_sample(ids, dict.fromkeys(ids, 1), bins=2, per_bin=30, seed=0, strata=strata)
    assert all(b["per_split_by_stratum"] == {"BP": 10, "CC": 10, "MF": 10} for b in split.bins)


def test_too_few_candidates_overall() -> None:
    with pytest.raises(TermnormError, match=r"needs 1200 candidates .* only 1000 available"):
        balanced_sample(_ids(1000), {}, bins=20, per_bin=30, label="hpo")


def test_too_few_in_a_stratified_bin() -> None:
    ids = _ids(120)
    strata = {i: "BP" for i in ids}
    strata[ids[0]] = "CC"
    # bin 0 holds 60 ids; all strata together can give only 29 pairs + ... -> short
    with pytest.raises(TermnormError, match=r"go bin 0: needs 60 candidates \(30 train \+ 30 val\)"):
        balanced_sample(ids, {}, bins=2, per_bin=30, strata=strata, label="go")


def test_bad_parameters() -> None:
    with pytest.raises(TermnormError, match="bins and per-bin must be >= 1"):
        balanced_sample(_ids(10), {}, bins=0, per_bin=1)
