"""`id<TAB>count` popularity tables: read back what is written; bad rows name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.popularity import read_popularity_table, write_popularity_table
from termnorm_eval.splits.store import load_records

MAX_COUNT = 2**53 - 1  # text.MAX_COUNT, the documented bound


def test_round_trip_on_real_identifiers(tmp_path: Path) -> None:
    records = load_records("hpo", "train")[:50]
    counts = {r["id"]: i * 7 for i, r in enumerate(records)}
    path = write_popularity_table(tmp_path / "pop.tsv", counts, header="Europe PMC hits\nquery: id")
    assert path.read_text().startswith("# Europe PMC hits\n# query: id\n")
    table = read_popularity_table(path, known={*counts, "HP:9999999"})
    assert table.counts == counts and table.unknown == 0
    only = read_popularity_table(path, known=set(list(counts)[:10]))
    assert len(only.counts) == 10 and only.unknown == 40  # unknown ids are counted, not fatal


@pytest.mark.parametrize(("text", "message"), [
    ("HP:0001250\t3\tx\n", r"pop\.tsv:1: 3 tab-separated columns, expected 2"),
    ("HP:0001250 3\n", r"pop\.tsv:1: 1 tab-separated columns"),
    ("HP:0001250\t3\nHP:0001250\t4\n", r"pop\.tsv:2: HP:0001250 given twice \(first on line 1\)"),
    ("# c\nHP:0001250\t-3\n", r"pop\.tsv:2: count '-3' of HP:0001250 is not a non-negative integer"),
    ("HP:0001250\t2.5\n", r"pop\.tsv:1: count '2\.5'"),
    ("HP:0001250\t\u0663\n", r"pop\.tsv:1: count"),  # a non-ASCII digit is no count
    ("\tx\n", r"pop\.tsv:1: empty identifier"),
    # issue 20, item 5: counts are bounded where they enter (2^63 overflowed pyarrow's int64 in every
    # evaluation of the tasks built from it; 5000 digits were a ValueError traceback of int())
    ("HP:1\t1\nHP:0001250\t9223372036854775808\n", r"pop\.tsv:2: count 9223372036854775808 of HP:0001250 "
     r"is larger than 9007199254740991 \(2\^53-1\), the largest count accepted$"),
    ("HP:0001250\t9007199254740992\n", r"pop\.tsv:1: count 9007199254740992 of HP:0001250 is larger than"),
    ("HP:0001250\t" + "9" * 5000 + "\n", r"pop\.tsv:1: count 999999999999\.\.\. \(5000 characters\) of "
     r"HP:0001250 is larger than 9007199254740991"),
])
def test_bad_rows_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pop.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TermnormError, match=message):
        read_popularity_table(path)


def test_binary_and_missing_tables(tmp_path: Path) -> None:
    path = tmp_path / "pop.tsv"
    path.write_bytes(b"HP:1\t1\n\xff\xfe\n")
    with pytest.raises(TermnormError, match=r"pop\.tsv:2: not UTF-8"):
        read_popularity_table(path)
    with pytest.raises(TermnormError, match="not found"):
        read_popularity_table(tmp_path / "none.tsv")


def test_the_largest_count_is_read(tmp_path: Path) -> None:
    path = tmp_path / "pop.tsv"
    path.write_text(f"HP:0001250\t{MAX_COUNT}\nHP:0001251\t{'0' * 30}7\n", encoding="utf-8")
    assert read_popularity_table(path).counts == {"HP:0001250": MAX_COUNT, "HP:0001251": 7}
