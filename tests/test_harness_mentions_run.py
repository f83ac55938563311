"""Every mention task through a real lm-eval run (issue 21, item 4): `termnorm eval` in-process with the
tiny model on the groups termnorm-mentions and termnorm-study-mentions, two documents per task; the
results JSON has each task and group with its metrics, and the logged documents are the mention forms."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from termnorm_eval.cli import main
from termnorm_eval.harness import taskgen
from termnorm_eval.harness import validity_names as vn
from termnorm_eval.harness.dataset import build_docs
from termnorm_eval.splits import store
from termnorm_eval.terminologies import BUILTIN

F = taskgen.FILTER_NAME
LIMIT = 2
PLAIN = [taskgen.task_name(t.key, d.name, s) for t in BUILTIN.values() for d in t.mention_directions
         for s in d.splits]
STUDY = [taskgen.study_task_name(t.key, d.name, s) for t in BUILTIN.values() for d in t.mention_directions
         for s in d.splits]
GROUPS = {"termnorm-mentions": PLAIN, "termnorm-study-mentions": STUDY,
          **{f"termnorm-mentions-{k}": [t for t in PLAIN if f"_{k}_" in t] for k in BUILTIN},
          **{f"termnorm-study-mentions-{k}": [t for t in STUDY if f"_{k}_" in t] for k in BUILTIN}}
# what every task and group reports (the strata and shown/hidden: only for the classes scored)
ALWAYS = ("exact_match", "lenient_match", vn.CREDIT, "alignment", "answer_in_prompt", *vn.METRICS)


@pytest.fixture(scope="module")
def mention_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("mentions") / "out"
    try:
        main(["eval", "--model-args", f"pretrained={tiny_model},dtype=float32",
              "--tasks", "termnorm-mentions,termnorm-study-mentions", "--limit", str(LIMIT),
              "--device", "cpu", "--batch-size", "4", "--output-path", str(out), "--log-samples"])
    except SystemExit as e:
        assert not e.code, e.code
    (path,) = sorted(out.rglob("results_*.json"))
    samples = {t: [json.loads(x) for x in next(out.rglob(f"samples_{t}_*.jsonl")).read_text(
        encoding="utf-8").splitlines()] for t in PLAIN + STUDY}
    return {"res": json.loads(path.read_text(encoding="utf-8")), "samples": samples}


@pytest.mark.slow
def test_every_mention_task_and_group_has_its_metrics(mention_run: dict) -> None:
    res = mention_run["res"]
    assert len(PLAIN) == 10
    assert sorted(PLAIN) == [t for t in sorted(res["results"]) if t.startswith("termnorm_")]
    assert sorted(STUDY) == [t for t in sorted(res["results"]) if t.startswith("termnorm-study_")]
    assert set(GROUPS) <= set(res["groups"])
    for task in PLAIN + STUDY:
        row = res["results"][task]
        assert row["sample_len"] == LIMIT, task
        assert str(res["versions"][task]) == str(taskgen.VERSION) == "3.0", task
        for m in ALWAYS:
            assert f"{m},{F}" in row, (task, m)
        assert -1.0 <= row[f"alignment,{F}"] <= 1.0
        assert all(0.0 <= row[f"{m},{F}"] <= 1.0 for m in ALWAYS if m != "alignment"), task
        assert math.isclose(sum(row[f"{m},{F}"] for m in vn.METRICS), 1.0), task
        assert row[f"validity_correct,{F}"] == pytest.approx(row[f"exact_match,{F}"])
        docs = [s["doc"] for s in mention_run["samples"][task]]
        # the shown/hidden classes are those of the documents scored, their mean the strict score there
        for cls, want in (("shown", True), ("hidden", False)):
            mine = [s["exact_match"] for s in mention_run["samples"][task] if s["answer_in_prompt"] == want]
            key = f"exact_match_{cls},{F}"
            assert (key in row) == bool(mine), (task, cls)
            if mine:
                assert row[key] == pytest.approx(statistics.fmean(mine))
        assert (f"{vn.PARSE_ERROR},{F}" in row) == task.startswith("termnorm-study_")
        assert {d["direction"] for d in docs} == {task.split("_")[2]}
    for group, members in GROUPS.items():
        row = res["groups"][group]
        assert str(res["versions"][group]) == str(taskgen.GROUP_VERSION) == "3.0"
        for m in ("exact_match", "lenient_match", "answer_in_prompt", *vn.METRICS):
            mean = statistics.fmean(res["results"][t][f"{m},{F}"] for t in members)
            assert row[f"{m},{F}"] == pytest.approx(mean), (group, m)  # unweighted mean of its tasks
        assert math.isclose(sum(row[f"{m},{F}"] for m in vn.METRICS), 1.0), group


@pytest.mark.slow
def test_logged_documents_ask_the_recorded_forms(mention_run: dict) -> None:
    for task in PLAIN + STUDY:
        _, key, direction, split = task.split("_")
        d = BUILTIN[key].direction(direction)
        records = [r for r in store.load_records(key, split) if d.mention in r["mentions"]][:LIMIT]
        logged = mention_run["samples"][task]
        assert [s["doc"]["item_id"] for s in logged] == [r["id"] for r in records]
        for s, r in zip(logged, records, strict=True):
            form = r["mentions"][d.mention]
            assert s["doc"]["source"] == form and form in s["arguments"]["gen_args_0"]["arg_0"]
            assert form not in s["doc"]["alternatives"]
    # the documents are the loader's, flag included
    first = build_docs("gene", "alias2symbol", "train")[:LIMIT]
    logged = mention_run["samples"]["termnorm_gene_alias2symbol_train"]
    assert [s["doc"]["answer_in_prompt"] for s in logged] == [x["answer_in_prompt"] for x in first]
