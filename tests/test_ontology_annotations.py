"""Annotation files for add-ontology's popularity: format detection and the four readers."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.ontology import add_ontology
from termnorm_eval.ontology.annotations import detect_format, read_annotations
from termnorm_eval.sources.mirrors import extract


@pytest.fixture(scope="module")
def gaf_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 3000 lines of the real GOA human GAF (header + rows), gzip-compressed like the original."""
    src, _ = extract("goa_human.gaf.gz")
    out = tmp_path_factory.mktemp("gaf") / "head.gaf.gz"
    with gzip.open(src, "rt", encoding="utf-8") as fh, gzip.open(out, "wt", encoding="utf-8") as dst:
        dst.writelines(itertools.islice(fh, 3000))
    return out


def test_detects_real_formats(gaf_head: Path) -> None:
    assert detect_format(gaf_head, "GO") == "gaf"
    assert detect_format(extract("phenotype.hpoa")[0], "HP") == "hpoa"
    assert detect_format(extract("do_human_peng_2014-10-12.tsv")[0], "DOID") == "pairs"


def test_gaf_counts_distinct_objects(gaf_head: Path) -> None:
    ann = read_annotations(gaf_head, "GO")
    assert ann.format == "gaf"
    expected: dict[str, set[str]] = {}
    with gzip.open(gaf_head, "rt") as fh:
        for line in fh:
            if line.startswith("!"):
                continue
            cols = line.rstrip("\n").split("\t")
            if "NOT" not in cols[3].split("|"):
                expected.setdefault(cols[4], set()).add(cols[2])
    assert ann.things == expected
    go_id = max(expected, key=lambda k: len(expected[k]))
    assert ann.popularity(go_id) == len(expected[go_id]) > 1


def test_hpo_with_real_hpoa(tmp_path: Path) -> None:
    """A real ontology + annotation pair read end to end (the built-in HPO files under a new name)."""
    r = add_ontology(extract("hp.obo")[0], name="hpx", out=tmp_path / "hpx",
                     annotations=extract("phenotype.hpoa")[0])
    assert r.annotation_format == "hpoa" and r.bins == 20
    assert r.problems == {"obsolete": 450, "ambiguous_synonyms_dropped": 2,
                          "annotation_not_rows_skipped": 711}
    assert set(r.mention_kinds) == {"synonym", "lay"}  # HPO's layperson synonyms: lay2id tasks too
    assert r.counts["annotation_rows"] == 271702 and r.counts["candidates"] == 19034


def test_tsv_counts_and_header(tmp_path: Path) -> None:
    f = tmp_path / "c.tsv"
    f.write_text("# comment\nterm\tcount\nCL:0000000\t7\nCL:0000001\t0\nUBERON:1\t3\n")
    ann = read_annotations(f, "CL")
    assert ann.format == "tsv" and ann.counts == {"CL:0000000": 7, "CL:0000001": 0, "UBERON:1": 3}
    assert ann.popularity("CL:0000000", ["CL:0000001", "CL:0000009"]) == 7
    assert ann.problems == {"annotation_ids_other_prefix": 1}


@pytest.mark.parametrize(("text", "message"), [
    ("CL:1\t3\nCL:1\t4\n", r"c\.tsv:2: id CL:1 appears a second time"),
    ("CL:1\t3\nCL:2\tmany\n", r"c\.tsv:2: count 'many' is not a non-negative integer"),
    ("CL:1\t3\nCL:2\t4\t5\n", r"c\.tsv:2: 3 tab-separated columns; format tsv has 2"),
    # issue 20, item 5: counts beyond 2^53-1 are refused where they enter (5000 digits: a traceback)
    ("CL:1\t3\nCL:2\t9223372036854775808\n", r"c\.tsv:2: count 9223372036854775808 is larger than "
     r"9007199254740991 \(2\^53-1\)"),
    ("CL:1\t3\nCL:2\t" + "7" * 5000 + "\n", r"c\.tsv:2: count 777777777777\.\.\. \(5000 characters\) is "
     "larger than"),
])
def test_tsv_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "c.tsv"
    f.write_text(text)
    with pytest.raises(TermnormError, match=message):
        read_annotations(f, "CL", "tsv")


def test_tsv_counts_summed_over_alt_ids_stay_within_the_bound(tmp_path: Path) -> None:
    # issue 20, item 5: each count is within 2^53-1, the sum over a term and its alt_ids is not
    f = tmp_path / "c.tsv"
    big = 2**53 - 1
    f.write_text(f"CL:1\t{big}\nCL:9\t1\n")
    ann = read_annotations(f, "CL", "tsv")
    assert ann.popularity("CL:1") == big
    with pytest.raises(TermnormError, match=rf"c\.tsv: the counts of CL:1 and its alt_ids add up to "
                                            rf"{big + 1}, more than 9007199254740991"):
        ann.popularity("CL:1", ["CL:9"])


def test_pairs_with_header_and_term_in_any_column(tmp_path: Path) -> None:
    f = tmp_path / "p.tsv"
    f.write_text("term\tgene\nCL:1\tA\nCL:1\tB\nCL:1\tA\nCL:2\tC\n")
    ann = read_annotations(f, "CL")
    assert ann.format == "pairs" and ann.things == {"CL:1": {"A", "B"}, "CL:2": {"C"}}


def test_unrecognised_file_asks_for_the_format(tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    f.write_text("hello world\nno tabs here\n")
    with pytest.raises(TermnormError, match="pass --annotation-format"):
        read_annotations(f, "CL")


def test_annotations_of_another_ontology(tmp_path: Path) -> None:
    peng, _ = extract("do_human_peng_2014-10-12.tsv")
    with pytest.raises(TermnormError, match="cannot tell the annotation format"):
        read_annotations(peng, "CL")
    with pytest.raises(TermnormError, match="no column holds CL: ids"):
        read_annotations(peng, "CL", "pairs")
    with pytest.raises(TermnormError, match="annotation file not found"):
        read_annotations(tmp_path / "missing.tsv", "CL")
    with pytest.raises(TermnormError, match="unknown"):
        read_annotations(peng, "CL", "csv")


def test_unknown_annotation_ids_are_counted(tmp_path: Path) -> None:
    cl, _ = extract("cl.obo")
    f = tmp_path / "c.tsv"
    ids = [f"CL:{i:07d}" for i in range(0, 3000)]  # many are no CL term
    f.write_text("".join(f"{i}\t{n % 50}\n" for n, i in enumerate(ids)))
    r = add_ontology(cl, name="cl", out=tmp_path / "out", annotations=f, per_bin=20)
    known = {ln.split(": ", 1)[1].strip() for ln in cl.read_text().splitlines()
             if ln.startswith(("id: CL:", "alt_id: CL:"))}  # an alt_id counts for its term
    assert r.problems["annotation_ids_not_in_ontology"] == sum(1 for i in ids if i not in known) > 0
    assert r.annotation_format == "tsv" and not r.uniform
