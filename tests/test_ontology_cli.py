"""`termnorm add-ontology` from the command line, and the worked example end to end through the real
`lm_eval` CLI (tiny model)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from termnorm_cli import one_line_error

from termnorm_eval.cli import main
from termnorm_eval.sources.mirrors import extract


def _bin(name: str) -> str:
    """A console script of this environment (termnorm, lm_eval)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed in this environment")
    return found


def _ok(argv: list[str]) -> None:
    """Run `termnorm ARGV` in-process; click ends a successful command with SystemExit(0)."""
    try:
        main(argv)
    except SystemExit as e:
        assert e.code in (0, None)


def test_cli_output_says_uniform_and_counts_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    cl, _ = extract("cl.obo")
    out = tmp_path / "cl"
    _ok(["add-ontology", str(cl), "--name", "cl", "--out", str(out)])
    text = capsys.readouterr().out
    assert "prefix    CL (inferred): 2230 of 2230 [Term] ids" in text
    assert "terms     2230 kept, 2129 usable" in text
    assert "     99  obsolete terms left out" in text
    assert "      2  terms left out: their name is also the name" in text
    assert "popularity NONE: no --annotations given, so 600 train + 600 val terms were drawn" in text
    assert "mentions  synonym2id 205 train, 211 val" in text
    assert (f"lm_eval --model hf --model_args pretrained=MODEL --include_path {out} "
            "--tasks 'termnorm_cl_*'") in text
    assert f"termnorm-finetune --model MODEL --terminology cl --data-dir {out}" in text
    assert (out / "manifest.json").is_file()


def test_cli_says_when_an_ontology_has_no_synonyms(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    cl, _ = extract("cl.obo")
    bare = tmp_path / "bare.obo"  # the real Cell Ontology without its synonym lines
    bare.write_text("".join(line for line in cl.read_text(encoding="utf-8").splitlines(keepends=True)
                            if not line.startswith("synonym:")), encoding="utf-8")
    _ok(["add-ontology", str(bare), "--name", "bare", "--out", str(tmp_path / "out"), "--per-bin", "10"])
    lines = capsys.readouterr().out.splitlines()
    said = [line for line in lines if line.startswith("mentions")]
    assert said == ["mentions  no exact synonyms: no synonym tasks"]


@pytest.mark.parametrize(("flag", "count", "shown"), [
    ("--popularity", "9223372036854775808", "count 9223372036854775808 of CL:0000000"),
    ("--popularity", "7" * 5000, "count 777777777777... (5000 characters) of CL:0000000"),
    ("--annotations", "7" * 5000, "count 777777777777... (5000 characters)"),
])
def test_count_beyond_the_bound_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str,
                                            count: str, shown: str) -> None:
    # issue 20, item 5: 2^63 overflowed pyarrow's int64 in every evaluation of the tasks; 5000 digits
    # were int()'s ValueError traceback
    cl, _ = extract("cl.obo")
    table = tmp_path / "counts.tsv"
    table.write_text(f"CL:0000001\t3\nCL:0000000\t{count}\n", encoding="utf-8")
    argv = ["add-ontology", str(cl), "--name", "cl", "--out", str(tmp_path / "out"), flag, str(table)]
    one_line_error(argv, capsys, f"{table}:2: {shown} is larger than 9007199254740991 (2^53-1)")
    assert not (tmp_path / "out").exists()


def test_cli_with_annotations_reports_the_bins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    obo, _ = extract("doid-2014-10-13.obo")
    ann, _ = extract("do_human_peng_2014-10-12.tsv")
    _ok(["add-ontology", str(obo), "--name", "doid", "--label", "DOID", "--annotations", str(ann),
          "--out", str(tmp_path / "doid")])
    text = capsys.readouterr().out
    assert "(pairs format, 144235 rows)" in text
    # DOID:14773 is ambiguous once the trailing space of DOID:0080022's synonym is dropped (issue 20)
    assert ("pool      1777 of 6401 usable terms have popularity >= 1; the 4624 others are left out "
            "(--include-unannotated adds them as bin 0)") in text
    assert "16 bins x (30 train + 30 val); 4 fewer than asked for: the popularity values fill no more" in text
    assert "hold only unannotated" not in text
    assert "distinct values of column 1 (the annotated things) per term id (column 2)" in text
    assert "NONE" not in text


def test_cli_bad_popularity_table_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    obo, _ = extract("doid-2014-10-13.obo")
    table = tmp_path / "counts.tsv"
    table.write_text("DOID:4\t10\nDOID:4\t12\n")
    with pytest.raises(SystemExit) as e:
        main(["add-ontology", str(obo), "--name", "doid", "--popularity", str(table),
              "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "counts.tsv:2: DOID:4 given twice (first on line 1)" in err[0]
    assert not (tmp_path / "o").exists()


def test_cli_user_error_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cl, _ = extract("cl.obo")
    with pytest.raises(SystemExit) as e:
        main(["add-ontology", str(cl), "--name", "go", "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("termnorm: error: --name 'go': clashes with a built-in") and "\n" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_worked_example_through_lm_eval_cli(tmp_path: Path, tiny_model: Path) -> None:
    """README's worked example: add-ontology on the real Cell Ontology, then `lm_eval` runs the tasks."""
    cl, _ = extract("cl.obo")
    out = tmp_path / "cl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    add = subprocess.run([_bin("termnorm"), "add-ontology", str(cl), "--name", "cl", "--out", str(out)],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert add.returncode == 0, add.stderr
    results_dir = tmp_path / "results"
    run = subprocess.run(
        [_bin("lm_eval"), "--model", "hf", "--model_args", f"pretrained={tiny_model}",
         "--include_path", str(out), "--tasks", "termnorm_cl_*", "--limit", "2", "--device", "cpu",
         "--output_path", str(results_dir)],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    files = list(results_dir.rglob("results_*.json"))
    assert len(files) == 1
    res = json.loads(files[0].read_text())
    tasks = ["termnorm_cl_term2id_train", "termnorm_cl_term2id_val",
             "termnorm_cl_id2term_train", "termnorm_cl_id2term_val",
             "termnorm_cl_synonym2id_train", "termnorm_cl_synonym2id_val"]
    assert sorted(res["results"]) == sorted(tasks)
    for t in tasks:
        r = res["results"][t]
        for metric in ("exact_match", "lenient_match", "alignment", "exact_match_low"):
            assert 0.0 <= r[f"{metric},extract"] <= 1.0, (t, metric)
        assert res["n-samples"][t]["effective"] == 2
    # the documents came from the new splits: first records in id order
    first = json.loads((out / "cl" / "val.jsonl").read_text().splitlines()[0])
    assert first["id"].startswith("CL:")
    assert res["configs"]["termnorm_cl_term2id_val"]["dataset_kwargs"]["terminology"] == "cl"


def test_cli_choices_match_the_readers() -> None:
    from termnorm_eval.cli.ontology import AnnotationFormat
    from termnorm_eval.ontology import ANNOTATION_FORMATS

    assert tuple(f.value for f in AnnotationFormat) == ANNOTATION_FORMATS


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cl, _ = extract("cl.obo")
    for extra in (["--annotation-format", "csv"], ["--per-bin", "0"]):
        with pytest.raises(SystemExit) as e:
            main(["add-ontology", str(cl), "--name", "cl", "--out", str(tmp_path / "x"), *extra])
        assert e.value.code == 2
    assert "is not one of" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
