"""A user's mention table through a real lm-eval run (issue 21, item 8): `termnorm add-mentions` on real
HPO lay terms (and the bad rows of test_add_mentions), then `termnorm eval --include-path` in-process
with the tiny model, twice, and `termnorm report` on the two runs; `--num-fewshot` is refused in one
line."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from termnorm_cli import run
from test_add_mentions import HPO_OUTCOMES, hpo_table

from termnorm_eval.harness import taskgen
from termnorm_eval.harness import validity_names as vn
from termnorm_eval.splits import store
from termnorm_eval.user_mentions.add import add_mentions

pytestmark = pytest.mark.slow

F = taskgen.FILTER_NAME
PLAIN, STUDY = "termnorm_mycorpus_mention2id_test", "termnorm-study_mycorpus_mention2id_test"
SCORED = HPO_OUTCOMES["scored"]
LIMIT = 6  # documents generated per task and run (the CPU is shared); the task holds SCORED


def _eval(tiny_model: Path, out: Path, folder: Path, capsys: pytest.CaptureFixture[str], *extra: str
          ) -> tuple[int, str, str]:
    return run(["eval", "--model-args", f"pretrained={tiny_model},dtype=float32", "--include-path",
                str(folder), "--tasks", "termnorm-mycorpus,termnorm-study-mycorpus", "--device", "cpu",
                "--batch-size", "8", "--output-path", str(out), "--log-samples", "--limit", str(LIMIT),
                *extra], capsys)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("mentions-run")
    add_mentions(hpo_table(tmp), "hpo", "mycorpus", tmp / "tasks")
    return tmp / "tasks"


def test_user_mentions_through_lm_eval_and_report(folder: Path, tiny_model: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    runs = [tmp_path / "base", tmp_path / "again"]
    for out in runs:
        code, _, err = _eval(tiny_model, out, folder, capsys)
        assert code == 0, err[-3000:]
    (path,) = sorted(runs[0].rglob("results_*.json"))
    res = json.loads(path.read_text(encoding="utf-8"))
    assert sorted(t for t in res["results"] if "_mycorpus_" in t) == sorted([PLAIN, STUDY])
    assert {"termnorm-mycorpus", "termnorm-study-mycorpus"} <= set(res["groups"])
    records = store.load_records("mycorpus", "test", folder)
    for task in (PLAIN, STUDY):
        row = res["results"][task]
        assert row["sample_len"] == LIMIT
        assert res["n-samples"][task] == {"original": SCORED, "effective": LIMIT}
        assert len(records) == SCORED
        assert str(res["versions"][task]) == str(taskgen.VERSION)
        fewshot = res["configs"][task]["fewshot_config"]
        assert fewshot["split"] is None and "NoFewshotSampler" in fewshot["sampler"]
        for m in ("exact_match", "lenient_match", vn.CREDIT, "answer_in_prompt", "exact_match_hidden"):
            assert 0.0 <= row[f"{m},{F}"] <= 1.0, (task, m)
        assert math.isclose(sum(row[f"{m},{F}"] for m in vn.METRICS), 1.0)
        # no popularity, no strata: never a made-up stratum
        assert not [k for k in row if k.split(",")[0] in ("exact_match_low", "exact_match_mid",
                                                           "exact_match_high")]
        samples = next(runs[0].rglob(f"samples_{task}_*.jsonl"))
        logged = [json.loads(x) for x in samples.read_text(encoding="utf-8").splitlines()]
        docs = sorted((s["doc"] for s in logged), key=lambda d: d["item_id"])
        # the table's first rows, in file order (--limit N scores the first N)
        assert [d["item_id"] for d in docs] == sorted(r["item_id"] for r in records[:LIMIT])
        assert all(d["popularity"] is None and d["stratum"] == store.NO_STRATUM for d in docs)
        assert {d["source"] for d in docs} == {r["mentions"]["user"] for r in records[:LIMIT]}
    code, text, err = run(["report", "--base", str(runs[0]), "--tuned", str(runs[1]), "--label", "again",
                           "--out", str(tmp_path / "report")], capsys)
    assert code == 0, err
    assert "MYCORPUS mention2id" in text
    with (tmp_path / "report" / "report.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["terminology"] == "mycorpus"]
    assert {(r["task"], r["split"], r["run"], r["n"]) for r in rows} == {
        (t, "test", run_, str(LIMIT)) for t in (PLAIN, STUDY) for run_ in ("base", "again")}


def test_few_shot_is_refused_in_one_line(folder: Path, tiny_model: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _eval(tiny_model, tmp_path / "out", folder, capsys, "--num-fewshot", "1")
    # (stderr also holds the harness's log lines; a handler left by an earlier in-process run may
    # report a logging error there, not ours)
    assert code == 2 and "TermnormError" not in err
    assert [line for line in err.splitlines() if line.startswith("termnorm: error:")] == [
        "termnorm: error: termnorm_mycorpus_mention2id: --num_fewshot 1: these tasks have no training "
        "split to draw examples from (a user's mentions are all test items); run them zero-shot"]
