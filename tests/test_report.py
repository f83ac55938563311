"""`termnorm report` input handling and gap marking on hand-written results (bad-input cases only;
the real lm_eval output is exercised in test_report_real.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from termnorm_eval.cli import main
from termnorm_eval.report import compare, render
from termnorm_eval.report.results import ReportInputError, find_results_files, load_run

STAMP = "2026-01-01T00-00-00.000000"
T_TRAIN, T_VAL = "termnorm_go_term2id_train", "termnorm_go_term2id_val"


def write_run(folder: Path, scores: dict[str, tuple[float, float]], *, stamp: str = STAMP, version=1.0,
              n: int = 4, samples: dict[str, list[tuple[str, str, float, int, int]]] | None = None,
              model_args: object = None, filters=("extract",)) -> Path:
    """A results file in the harness's layout: <folder>/<model>/results_<stamp>.json (+ samples)."""
    sub = folder / "__tmp__model"
    sub.mkdir(parents=True, exist_ok=True)
    results = {}
    for task, (strict, lenient) in scores.items():
        res: dict[str, object] = {"alias": task, "sample_len": n}
        for f in filters:
            res |= {f"exact_match,{f}": strict, f"exact_match_stderr,{f}": 0.1,
                    f"lenient_match,{f}": lenient, f"alignment,{f}": 0.5, f"alignment_stderr,{f}": "N/A"}
        results[task] = res
    data = {
        "results": results,
        "versions": dict.fromkeys(scores, version),
        "n-samples": {t: {"original": 600, "effective": n} for t in scores},
        "config": {"model": "hf", "model_args": model_args or {"pretrained": "/m/base"}},
    }
    f = sub / f"results_{stamp}.json"
    f.write_text(json.dumps(data))
    for task, items in (samples or {}).items():
        lines = [json.dumps({"doc_id": i, "filter": "extract", "exact_match": ok, "lenient_match": ok,
                             "doc": {"item_id": item, "answer": ans, "popularity": pop, "bin": b}})
                 for i, (item, ans, ok, pop, b) in enumerate(items)]
        (sub / f"samples_{task}_{stamp}.jsonl").write_text("\n".join(lines) + "\n")
    return f


def test_folder_gives_every_results_file_oldest_first(tmp_path: Path) -> None:
    old = write_run(tmp_path, {T_TRAIN: (0.0, 0.0)}, stamp="2026-01-01T00-00-00.000000")
    newest = write_run(tmp_path, {T_TRAIN: (0.5, 0.5)}, stamp="2026-03-01T00-00-00.000000")
    assert find_results_files(tmp_path, "--base") == [old, newest]
    assert find_results_files(newest, "--base") == [newest]
    with pytest.raises(ReportInputError, match="no such file"):
        find_results_files(tmp_path / "nope", "--base")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportInputError, match="no results_"):
        find_results_files(tmp_path / "empty", "--tuned")
    # the same task in two files of one run: the newest counts
    run = load_run(tmp_path, "base", "--base")
    assert run.files == [old, newest] and run.tasks[T_TRAIN].metrics["exact_match"] == 0.5
    assert run.tasks[T_TRAIN].also_in == [old]


def test_bad_files_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "results_x.json"
    bad.write_text('{"results": {\n  "a": [1,\n}')
    with pytest.raises(ReportInputError, match=r"results_x\.json:3: not valid JSON"):
        load_run(bad, "base", "--base")
    other = tmp_path / "o" / "results_y.json"
    other.parent.mkdir()
    other.write_text(json.dumps({"results": {"hellaswag": {"acc,none": 0.3}}}))
    with pytest.raises(ReportInputError, match=r"no termnorm\[-study\|-rag\]_"):
        load_run(other, "base", "--base")
    wrong_name = tmp_path / "scores.json"
    wrong_name.write_text("{}")
    with pytest.raises(ReportInputError, match="not an lm_eval results file"):
        load_run(wrong_name, "base", "--base")


def test_filters_and_string_model_args(tmp_path: Path) -> None:
    f = write_run(tmp_path, {T_TRAIN: (0.25, 0.5)}, filters=("extract", "raw"),
                  model_args="pretrained=/m/base,peft=/a/lora-go,dtype=float32")
    with pytest.raises(ReportInputError, match="reported under 2 filters"):
        load_run(f, "x", "--tuned")
    run = load_run(f, "x", "--tuned", filt="raw")
    assert run.filter == "raw" and run.adapter == "/a/lora-go" and run.model == "/m/base"
    assert run.tasks[T_TRAIN].metrics["exact_match"] == 0.25
    with pytest.raises(ReportInputError, match="filter 'nope'"):
        load_run(f, "x", "--tuned", filt="nope")


def test_sample_file_errors(tmp_path: Path) -> None:
    f = write_run(tmp_path, {T_TRAIN: (0.0, 0.0)}, samples={T_TRAIN: [("GO:1", "GO:1", 0.0, 3, 0)] * 2})
    with pytest.raises(ReportInputError, match=r"samples_termnorm_go_term2id_train_.*:2: .* appears twice"):
        load_run(f, "base", "--base")
    s = f.with_name(f"samples_{T_TRAIN}_{STAMP}.jsonl")
    s.write_text('{"doc": {"item_id": "GO:1"}, "filter": "extract"}\n')
    with pytest.raises(ReportInputError, match=":1: no exact_match value"):
        load_run(f, "base", "--base")
    s.write_text("{not json\n")
    with pytest.raises(ReportInputError, match=":1: not valid JSON"):
        load_run(f, "base", "--base")


def _rows(rep: compare.Report) -> dict[tuple[str, str], compare.Row]:
    return {(r.task, r.run): r for r in rep.rows}


def test_gaps_are_marked_never_computed(tmp_path: Path) -> None:
    base = load_run(write_run(tmp_path / "b", {T_TRAIN: (0.25, 0.25)}, n=4), "base", "--base")
    tuned = load_run(write_run(tmp_path / "t", {T_TRAIN: (0.75, 1.0), T_VAL: (0.0, 0.0)}, n=4,
                               model_args={"pretrained": "/m/base", "peft": "/a/lora"}), "lora", "--tuned")
    rep = compare.build(base, [tuned])
    rows = _rows(rep)
    ok = rows[(T_TRAIN, "lora")]
    assert ok.delta_strict == pytest.approx(0.5) and ok.delta_lenient == pytest.approx(0.75)
    assert ok.gained is None and any("--log_samples" in rep.footnotes.texts[i - 1] for i in ok.notes)
    missing = rows[(T_VAL, "base")]
    assert missing.strict is None and "not in the base run" in rep.footnotes.texts[missing.notes[0] - 1]
    assert rows[(T_VAL, "lora")].delta_strict is None
    md = render.markdown(rep, [])
    assert "+50.0" in md and "n/a [" in md

    other_version = load_run(write_run(tmp_path / "v", {T_TRAIN: (0.9, 0.9)}, version=2.0), "v2", "--tuned")
    other_limit = load_run(write_run(tmp_path / "l", {T_TRAIN: (0.9, 0.9)}, n=8), "l8", "--tuned")
    rep = compare.build(base, [other_version, other_limit])
    rows = _rows(rep)
    assert rows[(T_TRAIN, "v2")].delta_strict is None and rows[(T_TRAIN, "l8")].delta_strict is None
    notes = " ".join(rep.footnotes.texts)
    assert "task version 2.0" in notes and "scored 8 of 600" in notes
    assert [s["memorization_strict"] for s in compare.summary(rep)] == [None, None]


def test_transitions_and_changed_gold_answers(tmp_path: Path) -> None:
    items = [("GO:1", "GO:1", 1.0, 50, 19), ("GO:2", "GO:2", 0.0, 1, 0), ("GO:3", "GO:3", 0.0, 9, 9),
             ("GO:4", "GO:4", 1.0, 30, 15)]
    after = [("GO:1", "GO:1", 0.0, 50, 19), ("GO:2", "GO:2", 1.0, 1, 0), ("GO:3", "GO:3", 1.0, 9, 9),
             ("GO:4", "GO:4", 1.0, 30, 15)]
    base = load_run(write_run(tmp_path / "b", {T_TRAIN: (0.5, 0.5)}, samples={T_TRAIN: items}), "base", "-")
    tuned = load_run(write_run(tmp_path / "t", {T_TRAIN: (0.75, 0.75)}, samples={T_TRAIN: after}), "t", "-")
    row = _rows(compare.build(base, [tuned]))[(T_TRAIN, "t")]
    assert (row.gained, row.lost, row.kept_correct, row.kept_wrong) == (2, 1, 1, 0)
    assert row.delta_strict == pytest.approx(0.25)
    assert row.rho is not None and -1 <= row.rho <= 1

    relabelled = [(i, a + "0", ok, p, b) for i, a, ok, p, b in after]
    other = load_run(write_run(tmp_path / "o", {T_TRAIN: (0.75, 0.75)}, samples={T_TRAIN: relabelled}), "o",
                     "--tuned")
    rep = compare.build(base, [other])
    row = _rows(rep)[(T_TRAIN, "o")]
    assert row.delta_strict is None and row.gained is None
    assert "gold answers differ" in rep.footnotes.texts[row.notes[0] - 1]


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    f = write_run(tmp_path / "b", {T_TRAIN: (0.0, 0.0)})
    for argv, expected in [
        (["report", "--tuned", str(f)], "--base is required"),
        (["report", "--base", str(f)], "--tuned is required"),
        (["report", "--base", str(f), "--tuned", str(f)], "same results file"),
        (["report", "--base", str(f), "--tuned", str(tmp_path / "b"), "--label", "a", "--label", "b"],
         "--label given 2 time(s)"),
        (["report", "--base", str(tmp_path / "missing"), "--tuned", str(f)], "--base"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("termnorm: error:") and expected in err and "\n" not in err, err


def test_cli_writes_everything_or_nothing(tmp_path: Path, capsys) -> None:
    b = write_run(tmp_path / "b", {T_TRAIN: (0.0, 0.0)})
    t = write_run(tmp_path / "t", {T_TRAIN: (0.5, 0.5)},
                  model_args={"pretrained": "/m/base", "peft": "/x/run-1"})
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["report", "--base", str(b), "--tuned", str(t), "--out", str(out)])
    assert exc.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "run-1" in printed and "+50.0" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["report.md", "report.csv", "report.json", "popularity_bins.csv", "validity.csv", "transfer.csv",
         "answer_shown.csv", "rag.csv", "gains.png", "popularity.png", "validity.png", "transfer.png",
         "rag.png"])
    md = (out / "report.md").read_text()
    # no samples: the unpaired difference, no interval, a footnote saying why
    assert "| GO term2id | run-1 | +50.0 (+50.0) [1] |" in md
    assert "1. item counts, paired intervals and McNemar p need --log_samples" in md
    assert "Answer validity: not shown" in md and "validity.png" not in md
