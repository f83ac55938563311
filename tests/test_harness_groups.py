"""Group rows of the harness table, read from a real results JSON (issue 20, item 4).

The tiny model repeats the last token of its prompt (its tied embeddings dominate the residual
stream). Re-pointing its output rows along the cycle ``:`` -> ``1`` -> ``23`` -> ``45`` -> ``67`` ->
newline makes it answer every prompt (they all end in "Answer:") with ``1234567``: the digits of the
prompts' ``e.g. GO:1234567`` example, SmolLM2's most common answer. An identifier task files that
under ``prompt_example``, a name task under ``not_a_name``: categories that exist for one answer kind
only, which is where a group's mean over "the tasks that report it" went wrong.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
from termnorm_cli import run

from termnorm_eval.cli import main
from termnorm_eval.harness import taskgen
from termnorm_eval.harness import validity_names as vn
from termnorm_eval.splits import store
from termnorm_eval.terminologies import BUILTIN

F = taskgen.FILTER_NAME
ANSWER = "1234567"
LIMIT = 3
# every task of the group termnorm-go: its label tasks and its mention task (synonym2id)
GO_TASKS = [taskgen.task_name("go", d.name, s) for d in BUILTIN["go"].all_directions for s in d.splits]
NAME_TASKS = [t for t in GO_TASKS if "_id2term_" in t]


def answering_model(tiny: Path, out: Path, answer: str = ANSWER) -> Path:
    """A copy of the tiny model whose greedy continuation of any prompt ending in ':' is ``answer``
    and a newline (the tokens of ':' + answer + newline must be distinct)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny)
    chain = tok.encode(f":{answer}\n", add_special_tokens=False)
    assert len(set(chain)) == len(chain), tok.convert_ids_to_tokens(chain)
    emb = model.get_input_embeddings().weight.detach()
    head = emb.clone()
    for a, b in zip(chain, chain[1:] + chain[:1], strict=True):
        head[b] = emb[a]  # the row that the last token's own embedding scores highest now emits b
    model.config.tie_word_embeddings = False
    model.lm_head = torch.nn.Linear(emb.shape[1], emb.shape[0], bias=False)
    model.lm_head.weight = torch.nn.Parameter(head)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def go_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``termnorm eval`` (in-process) of the group termnorm-go on the first LIMIT documents per
    task: the results JSON and, per task, the logged samples."""
    root = tmp_path_factory.mktemp("groups")
    model = answering_model(tiny_model, root / "answers-1234567")
    out = root / "out"
    try:
        main(["eval", "--model-args", f"pretrained={model},dtype=float32", "--tasks", "termnorm-go",
              "--limit", str(LIMIT), "--device", "cpu", "--batch-size", "4", "--output-path", str(out),
              "--log-samples"])
    except SystemExit as e:
        assert not e.code, e.code
    (path,) = sorted(out.rglob("results_*.json"))
    samples = {t: [json.loads(x) for x in next(out.rglob(f"samples_{t}_*.jsonl")).read_text(
        encoding="utf-8").splitlines()] for t in GO_TASKS}
    return {"res": json.loads(path.read_text(encoding="utf-8")), "samples": samples, "out": out}


@pytest.mark.slow
def test_group_validity_shares_sum_to_one(go_run: dict) -> None:
    res = go_run["res"]
    for task in GO_TASKS:  # the model answered what it was built to answer
        assert {s["resps"][0][0] for s in go_run["samples"][task]} == {ANSWER}, task
    group = res["groups"]["termnorm-go"]
    assert res["versions"]["termnorm-go"] == str(taskgen.GROUP_VERSION) == "3.0"
    shares = {c: group[f"{vn.metric(c)},{F}"] for c in vn.CATEGORIES}
    assert math.isclose(sum(shares.values()), 1.0), shares
    # the group's identifier tasks (term2id, synonym2id) copied the prompt's example, its name tasks not
    named = len(NAME_TASKS) / len(GO_TASKS)
    assert named == pytest.approx(1 / 3)
    assert shares["prompt_example"] == pytest.approx(1 - named)
    assert shares["not_a_name"] == pytest.approx(named)
    for task in GO_TASKS:  # every task reports every category, so every row averages the same tasks
        row = res["results"][task]
        assert all(f"{m},{F}" in row for m in vn.METRICS), task
        assert math.isclose(sum(row[f"{m},{F}"] for m in vn.METRICS), 1.0), task
    for m in vn.METRICS:
        mean = statistics.fmean(res["results"][t][f"{m},{F}"] for t in GO_TASKS)
        assert group[f"{m},{F}"] == pytest.approx(mean), m


@pytest.mark.slow
def test_group_strata_rows_are_the_mean_of_the_tasks_with_that_stratum(go_run: dict) -> None:
    """A stratum row is aggregated as every group score: each task counts once, with its accuracy
    within the stratum. A task without a document of the stratum (--limit) has no such accuracy and
    is left out; a task with a single one has no stderr, and neither has the row."""
    res = go_run["res"]
    group = res["groups"]["termnorm-go"]
    for s in store.STRATA:
        key, err = f"exact_match_{s},{F}", f"exact_match_{s}_stderr,{F}"
        having = [t for t in GO_TASKS if key in res["results"][t]]
        docs = {t: [x for x in go_run["samples"][t] if x["doc"]["stratum"] == s] for t in GO_TASKS}
        assert having == [t for t in GO_TASKS if docs[t]], s
        if not having:
            assert key not in group
            continue
        accuracies = [statistics.fmean(x["exact_match"] for x in docs[t]) for t in having]
        assert group[key] == pytest.approx(statistics.fmean(accuracies)), s
        if any(len(docs[t]) == 1 for t in having):
            assert group[err] == "N/A", s
        else:
            stderrs = [res["results"][t][err] for t in having]
            assert group[err] == pytest.approx(math.sqrt(sum(e * e for e in stderrs)) / len(stderrs)), s


@pytest.mark.slow
def test_report_shows_each_task_the_categories_of_its_answer_kind(
        go_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Tasks now report every category (0 where it does not apply); the report still shows an
    identifier task the identifier categories and a name task the name ones."""
    tuned = tmp_path / "again"  # the same scores as a second run: the report needs one
    shutil.copytree(go_run["out"], tuned)
    code, _, err = run(["report", "--base", str(go_run["out"]), "--tuned", str(tuned), "--label", "again",
                        "--out", str(tmp_path / "rep")], capsys)
    assert code == 0, err
    rep = json.loads((tmp_path / "rep/report.json").read_text(encoding="utf-8"))
    assert not [w for w in rep["warnings"] if "validity" in w], rep["warnings"]
    assert len(rep["validity"]) == 2 * len(GO_TASKS)
    for v in rep["validity"]:
        # GO identifiers: the is_a relations, not wrong_real (validity_names.categories_for)
        kinds = vn.categories_for("name") if v["direction"] == "id2term" else vn.categories_for("curie", True)
        assert list(v["shares"]) == [c for c in vn.CATEGORIES if c in kinds], v["task"]
        assert math.isclose(sum(v["shares"].values()), 1.0)
    with (tmp_path / "rep/validity.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):  # a category that does not apply is blank, not 0
            assert (row["prompt_example"] == "") == (row["direction"] == "id2term"), row
            assert (row["not_a_name"] == "") == (row["direction"] != "id2term"), row
    md = (tmp_path / "rep/report.md").read_text(encoding="utf-8")
    go_name = md[md.index("### GO id2term"):]
    assert vn.LABELS["prompt_example"] + " %" not in go_name.split("\n\n")[1]


def test_full_splits_have_equal_strata_so_group_strata_rows_pool() -> None:
    """What the docs claim for the full splits: every task has the same number of documents in a
    stratum (protein2symbol: genes without a protein name skipped), so a group's unweighted mean of
    its tasks' stratum accuracies is the pooled accuracy of its documents of that stratum."""
    from termnorm_eval.harness.dataset import build_docs

    for term in BUILTIN.values():
        for d in term.directions:
            for split in ("train", "val"):
                docs = build_docs(term.key, d.name, split)
                sizes = {s: sum(doc["stratum"] == s for doc in docs) for s in store.STRATA}
                want = {"low": 210, "mid": 210, "high": 180}
                slack = 3 if d.name == "protein2symbol" else 0
                assert all(want[s] - slack <= sizes[s] <= want[s] for s in store.STRATA), (d.name, sizes)
