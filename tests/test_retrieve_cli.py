"""`termnorm retrieve eval` (issue 22, item 4): bm25 over every live concept scored on the harness's own
documents, the asked form held out, written as lm-eval-shaped results that `termnorm report --retriever`
shows as one more row. Real shipped data and the committed CPU mini-study's runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from termnorm_cli import one_line_error, run

from termnorm_eval.harness.dataset import build_docs
from termnorm_eval.retrieval.entries import load_entries
from termnorm_eval.splits.mentions import fold

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "benchmarks/results/mini_study/transfer/study-out"
LIMIT = 30  # the mini-study's documents per task


def _eval(out: Path, capsys: pytest.CaptureFixture[str], *tasks: str, limit: int | None = None) -> Path:
    argv = ["retrieve", "eval", "--out", str(out)]
    for t in tasks:
        argv += ["--tasks", t]
    if limit:
        argv += ["--limit", str(limit)]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    return out


def _results(out: Path) -> tuple[dict, dict[str, list[dict]]]:
    (res,) = sorted((out / "retriever-bm25").glob("results_*.json"))
    samples = {}
    for f in sorted((out / "retriever-bm25").glob("samples_*.jsonl")):
        task = f.name.removeprefix("samples_").rsplit("_", 1)[0]
        samples[task] = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()]
    return json.loads(res.read_text(encoding="utf-8")), samples


def test_lay_terms_are_ranked_with_their_own_form_held_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    out = _eval(tmp_path / "r", capsys, "termnorm_hpo_lay2id_val")
    data, samples = _results(out)
    (task,) = samples
    docs = build_docs("hpo", "lay2id", "val")
    assert [s["doc"]["item_id"] for s in samples[task]] == [d["item_id"] for d in docs]
    entries = load_entries("hpo")
    means = data["results"][task]
    for metric in ("exact_match", "acc@1", "acc@5", "recall@10", "recall@20", "mrr"):
        values = [s[metric] for s in samples[task]]
        assert means[f"{metric},extract"] == pytest.approx(sum(values) / len(values)), metric
    for s in samples[task]:
        top1 = s["filtered_resps"][0]
        assert s["exact_match"] == s["acc@1"] == float(top1 == s["doc"]["answer"])
        # the asked lay term is never what found the answer: no entry with its text is in play
        held = set(entries.holdout(s["doc"]["source"]))
        assert held and all(fold(entries.texts[e]) == fold(s["doc"]["source"]) for e in held)
        if s["rank"] is not None:  # top: the first 20 answers; rank: up to 100
            assert s["mrr"] == pytest.approx(1 / s["rank"]) and len(s["top"]) <= 20
            if s["rank"] <= 20:
                assert s["top"][s["rank"] - 1] == s["doc"]["answer"]
        else:
            assert s["mrr"] == 0 and s["doc"]["answer"] not in s["top"]
        assert s["recall@10"] >= s["acc@5"] >= s["acc@1"]
    # a lay term is found through other words of the concept, rarely first: neither 0 nor everything
    assert 0.05 < means["acc@1,extract"] < means["recall@20,extract"] < 0.95
    assert data["config"]["model_args"]["retriever"] == "bm25"
    assert str(tmp_path) not in (out / "retrieval.md").read_text() + json.dumps(data)


def test_label_tasks_report_lookup_beside_leave_label_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    out = _eval(tmp_path / "r", capsys, "termnorm_go_term2id_val", limit=50)
    _, samples = _results(out)
    docs = samples["termnorm_go_term2id_val"]
    assert len(docs) == 50
    data, _ = _results(out)  # lm-eval's shape: original is the task's size, effective the scored
    assert data["n-samples"]["termnorm_go_term2id_val"] == {"original": 600, "effective": 50}
    # nothing held out, the label finds its concept (a dictionary solves term->ID) ...
    assert sum(s["lookup_recall@10"] for s in docs) == 50
    # ... with the label held out, far fewer
    assert sum(s["acc@1"] for s in docs) < sum(s["lookup_acc@1"] for s in docs)
    rows = list(csv.DictReader((out / "retrieval.csv").open(encoding="utf-8")))
    assert {r["stratum"] for r in rows} >= {"all", "low"}


def test_report_shows_the_retriever_as_a_row_beside_the_runs(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = _eval(tmp_path / "r", capsys, "termnorm_hpo_term2id_*", limit=LIMIT)
    base = STUDY / "base/results"
    tuned = STUDY / "eval-hpo/results"
    report = tmp_path / "rep"
    code, printed, err = run(["report", "--base", str(base), "--tuned", str(tuned), "--retriever", str(out),
                              "--out", str(report)], capsys)
    assert code == 0, err
    assert "retriever: bm25" in printed and "retriever: bm25" in (report / "report.md").read_text()
    rows = [r for r in csv.DictReader((report / "report.csv").open(encoding="utf-8"))
            if r["run"] == "retriever: bm25"]
    assert {r["task"] for r in rows} == {"termnorm_hpo_term2id_train", "termnorm_hpo_term2id_val"}
    data, _ = _results(out)
    for r in rows:
        assert float(r["strict"]) == pytest.approx(data["results"][r["task"]]["exact_match,extract"])
        assert r["delta_strict"] == ""  # a reference, not the model: no gain


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "r")
    one_line_error(["retrieve", "eval", "--out", out, "--tasks", "termnorm_go_id2term_val"], capsys,
                   "termnorm_go_id2term_val", "not an X->ID task")
    one_line_error(["retrieve", "eval", "--out", out, "--tasks", "termnorm_nope_*"], capsys, "matches no")
    one_line_error(["retrieve", "eval", "--out", out, "--retriever", "foo"], capsys, "--retriever")
    one_line_error(["retrieve", "eval", "--out", out, "--retriever", "dense", "--embedder",
                    str(tmp_path / "missing")], capsys, "--embedder")
    one_line_error(["retrieve", "eval", "--out", out, "--data-dir", str(tmp_path / "nowhere")], capsys,
                   "--data-dir", "no terminology")
    one_line_error(["retrieve", "index", "--data-dir", str(tmp_path / "nowhere")], capsys, "--data-dir")
    assert not (tmp_path / "r").exists()
    # a retriever's results given as a model's, and a model's as a retriever's
    res = _eval(tmp_path / "ok", capsys, "termnorm_hpo_term2id_val", limit=3)
    one_line_error(["report", "--base", str(STUDY / "base/results"), "--tuned", str(res)], capsys,
                   "retriever", "--retriever")
    one_line_error(["report", "--base", str(STUDY / "base/results"), "--tuned",
                    str(STUDY / "eval-hpo/results"), "--retriever", str(STUDY / "base/results")], capsys,
                   "--retriever", "not of a retriever")
    one_line_error(["report", "--base", str(STUDY / "base/results"), "--tuned",
                    str(STUDY / "eval-hpo/results"), "--retriever", str(res), "--retriever", str(res)],
                   capsys, "--retriever", "given twice")
    # an output that is not ours is not replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    one_line_error(["retrieve", "eval", "--out", str(mine), "--tasks", "termnorm_hpo_term2id_val", "--force"],
                   capsys, "--out")
    assert (mine / "notes.txt").read_text() == "keep"
