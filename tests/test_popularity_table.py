"""`id<TAB>count` popularity tables: read back what is written; bad rows name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.popularity import read_popularity_table, write_popularity_table
from termnorm_eval.splits.store import load_records


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
