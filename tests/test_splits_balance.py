"""The balanced sampler on its own: the pool, tie-respecting bins, strata, shortfalls, determinism."""

from __future__ import annotations

import itertools

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.splits.balance import UNANNOTATED, balanced_sample, tie_bins


def _ids(n: int) -> list[str]:
    return [f"X:{i:05d}" for i in range(n)]


def _bin_of(split) -> dict[str, int]:
    return {**split.train, **split.val}


def test_tie_bins_cover_every_group_once_and_isolate_a_huge_one() -> None:
    sizes = [500, *[10] * 50]  # one value held by 500 items, then 50 small values
    cut = tie_bins(sizes, bins=6, min_size=20)
    assert sum(cut) == len(sizes) and cut[0] == 1  # the huge value is a bin of its own
    rest = [sum(sizes[1:][sum(cut[1:i + 1]):sum(cut[1:i + 2])]) for i in range(len(cut) - 1)]
    assert len(cut) == 6 and rest == [100] * 5  # and the other 500 items are shared out evenly


def test_tie_bins_merge_when_the_values_cannot_fill_the_bins() -> None:
    assert tie_bins([30, 30, 30], bins=5, min_size=20) == [1, 1, 1]  # three values: three bins
    # the values 2 and 3 (5 items each) cannot give a bin of 20: they join the bin before
    assert tie_bins([30, 5, 5], bins=3, min_size=20) == [3]
    assert tie_bins([30, 5, 5, 30], bins=3, min_size=20) == [1, 3]


def test_bins_follow_popularity_and_splits_are_disjoint() -> None:
    ids = _ids(400)
    popularity = {i: 1 + n for n, i in enumerate(ids)}  # all distinct: equal bins of 100
    split = balanced_sample(ids, popularity, bins=4, per_bin=10, seed=3)
    assert len(split.train) == len(split.val) == 40
    assert not set(split.train) & set(split.val)
    for chosen in (split.train, split.val):
        assert sorted(chosen.values()) == [b for b in range(4) for _ in range(10)]
    assert all(b == ids.index(i) // 100 for i, b in _bin_of(split).items())
    assert [x["popularity_min"] for x in split.bins] == [1, 101, 201, 301]
    assert [x["share"] for x in split.bins] == [0.25] * 4
    assert split.binning["merged"] == 0 and split.binning["wide_bins"] == []


def test_ties_are_never_split_and_the_secondary_orders_them() -> None:
    ids = _ids(600)
    popularity = {i: 1 + n // 150 for n, i in enumerate(ids)}  # four values of 150 items each
    secondary = {i: n % 3 for n, i in enumerate(ids)}  # ... each split three ways by the secondary
    split = balanced_sample(ids, popularity, bins=6, per_bin=5, seed=0, secondary=secondary)
    bins_of_key: dict[tuple[int, int], set[int]] = {}
    for i, b in _bin_of(split).items():
        bins_of_key.setdefault((popularity[i], secondary[i]), set()).add(b)
    assert all(len(v) == 1 for v in bins_of_key.values())  # one value, one bin: never the id's order
    edges = [(tuple(b["key_min"]), tuple(b["key_max"])) for b in split.bins]
    assert all(hi < nxt_lo for (_, hi), (nxt_lo, _) in itertools.pairwise(edges))
    without = balanced_sample(ids, popularity, bins=6, per_bin=5, seed=0)
    assert without.binning["bins"] == 4 and without.binning["merged"] == 2  # 4 values: 4 bins, said so


def test_order_of_the_input_does_not_matter_and_the_seed_only_changes_the_draw() -> None:
    ids = _ids(300)
    popularity = {i: 1 + n // 7 for n, i in enumerate(ids)}
    a = balanced_sample(list(reversed(ids)), popularity, bins=3, per_bin=5, seed=1)
    b = balanced_sample(ids, popularity, bins=3, per_bin=5, seed=1)
    assert a == b
    c = balanced_sample(ids, popularity, bins=3, per_bin=5, seed=2)
    assert c.train != a.train and c.bins == a.bins  # same bins, another draw


def test_items_without_popularity_are_left_out_or_their_own_bin() -> None:
    ids = _ids(300)
    popularity = {i: (0 if n < 100 else n) for n, i in enumerate(ids)}
    split = balanced_sample(ids, popularity, bins=2, per_bin=10, seed=0)
    assert all(popularity[i] > 0 for i in _bin_of(split))
    assert split.binning["unannotated_candidates"] == 100 and split.binning["unannotated"] == "left out"
    both = balanced_sample(ids, popularity, bins=2, per_bin=10, seed=0, include_unannotated=True)
    assert both.bins[0]["label"] == UNANNOTATED and both.bins[0]["popularity_max"] == 0
    assert [b.get("label") for b in both.bins] == [UNANNOTATED, None, None]
    assert {i for i, b in _bin_of(both).items() if b == 0} == {i for i in _bin_of(both) if popularity[i] == 0}
    short = r"only 200 with popularity >= 1 available \(--include-unannotated"
    with pytest.raises(TermnormError, match=short):
        balanced_sample(ids, popularity, bins=2, per_bin=60)


def test_strata_are_ranked_and_binned_each_on_its_own() -> None:
    ids = _ids(900)
    strata = {i: ["BP", "MF", "CC"][n % 3] for n, i in enumerate(ids)}
    # CC is ten times as popular as the others: ranked together its items would fill the top bins
    popularity = {i: (10 * (n + 1) if strata[i] == "CC" else n + 1) for n, i in enumerate(ids)}
    split = balanced_sample(ids, popularity, bins=5, per_bin=30, seed=0, strata=strata)
    for b in split.bins:
        assert b["per_split_by_stratum"] == {"BP": 10, "CC": 10, "MF": 10}
        assert b["candidates_by_stratum"] == {"BP": 60, "CC": 60, "MF": 60}
    for chosen in (split.train, split.val):
        for b in range(5):
            drawn = sorted(strata[i] for i, x in chosen.items() if x == b)
            assert drawn == ["BP"] * 10 + ["CC"] * 10 + ["MF"] * 10
    by = [b["by_stratum"] for b in split.bins]
    assert by[0]["CC"]["popularity_max"] > by[4]["BP"]["popularity_min"]


def test_strata_whose_values_give_different_bin_counts_are_refused() -> None:
    ids = _ids(600)
    strata = {i: ("CC" if n % 2 else "BP") for n, i in enumerate(ids)}
    popularity = {i: (1 + n % 3 if strata[i] == "CC" else 1 + n) for n, i in enumerate(ids)}  # CC: 3 values
    fewer = r"go CC: its popularity values give only 3 bins \(others give 5\)"
    with pytest.raises(TermnormError, match=fewer):
        balanced_sample(ids, popularity, bins=5, per_bin=10, strata=strata, label="go")


def test_no_popularity_at_all_is_one_bin() -> None:
    split = balanced_sample(_ids(100), {}, bins=1, per_bin=40, seed=0, ranked=False)
    assert len(split.train) == len(split.val) == 40 and split.binning["bins"] == 1


def test_too_few_candidates_overall() -> None:
    ids = _ids(1000)
    with pytest.raises(TermnormError, match=r"hpo: needs 1200 candidates .* only 1000 with popularity >= 1"):
        balanced_sample(ids, dict.fromkeys(ids, 1), bins=20, per_bin=30, label="hpo")


def test_bad_parameters() -> None:
    with pytest.raises(TermnormError, match="bins and per-bin must be >= 1"):
        balanced_sample(_ids(10), {}, bins=0, per_bin=1)
