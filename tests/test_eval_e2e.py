"""End to end through the real harness: lm_eval CLI in a subprocess, results JSON checked.

Each CLI start indexes ~14.7k built-in tasks (5-50 s), so there are few CLI runs: the tiny model on
every task and (only for a non-editable install, as in CI) plain `lm_eval` without --include_path.
The real SmolLM2 goes through `termnorm eval` (in-process: tests/test_eval_inprocess.py compares it
with the CLI); chat template + few-shot go through lm-eval's Python API.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from termnorm_eval.harness import runner, taskgen
from termnorm_eval.harness import validity_names as vn
from termnorm_eval.harness.dataset import answer_format, build_docs
from termnorm_eval.harness.extraction import extract
from termnorm_eval.harness.scoring import strict_match
from termnorm_eval.splits import store
from termnorm_eval.terminologies import BUILTIN

# every task: the label tasks and the mention tasks (issue 21)
TASKS = sorted(taskgen.task_name(t.key, d.name, s) for t in BUILTIN.values() for d in t.all_directions
               for s in d.splits)
STUDY_TASKS = sorted(taskgen.study_task_name(t.key, d.name, s) for t in BUILTIN.values()
                     for d in t.all_directions for s in d.splits)
FORMATS = {name: answer_format(d) for t in BUILTIN.values() for d in t.all_directions for s in d.splits
           for name in (taskgen.task_name(t.key, d.name, s), taskgen.study_task_name(t.key, d.name, s))}
GROUPS = ["termnorm", "termnorm-gene", "termnorm-go", "termnorm-hpo"]
F = taskgen.FILTER_NAME
CORE = ("exact_match", "lenient_match", "alignment")
STRATA_METRICS = {f"exact_match_{s}" for s in store.STRATA}


def _env() -> dict[str, str]:
    env = runner.offline_env()
    env.setdefault("OMP_NUM_THREADS", "1")  # the suite shares 2 cores; busy torch threads collide
    return env


def _lm_eval(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "lm_eval", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _results(out: Path) -> dict:
    files = sorted(out.rglob("results_*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def _first_docs(name: str, n: int) -> list[dict]:
    _, key, direction, split = name.split("_")
    return build_docs(key, direction, split)[:n]


def _strata_in_first(name: str, n: int) -> set[str]:
    return {doc["stratum"] for doc in _first_docs(name, n)}


def check_results(res: dict, tasks: list[str], limit: int, groups: list[str]) -> None:
    """Every task and group present, every metric present and within range."""
    assert set(tasks) <= set(res["results"]), sorted(set(tasks) - set(res["results"]))
    for name in tasks:
        row = res["results"][name]
        assert row["sample_len"] == limit and res["n-samples"][name]["effective"] == limit
        for metric in CORE:
            value = row[f"{metric},{F}"]
            lo = -1.0 if metric == "alignment" else 0.0
            assert lo <= value <= 1.0, (name, metric, value)
        strata = _strata_in_first(name, limit)
        names = {k.split(",")[0] for k in row if "stderr" not in k}
        assert {m for m in names if m in STRATA_METRICS} == {f"exact_match_{s}" for s in strata}, name
        for s in strata:
            assert 0.0 <= row[f"exact_match_{s},{F}"] <= 1.0
        # shown / hidden: the classes of the documents scored; the share of shown ones
        docs = _first_docs(name, limit)
        classes = {"exact_match_shown" if d["answer_in_prompt"] else "exact_match_hidden" for d in docs}
        assert {m for m in names if m in ("exact_match_shown", "exact_match_hidden")} == classes, name
        assert row[f"answer_in_prompt,{F}"] == pytest.approx(sum(d["answer_in_prompt"] for d in docs) / limit)
        assert res["higher_is_better"][name] == taskgen.HIGHER_IS_BETTER
    for g in groups:
        row = res["groups"][g]
        for metric in CORE:
            assert f"{metric},{F}" in row, (g, metric)
            assert -1.0 <= row[f"{metric},{F}"] <= 1.0
        assert any(k.startswith("exact_match_") for k in row)
    # group = unweighted mean of its leaf tasks
    leaves = [t for t in tasks if t.startswith("termnorm_go_")]
    if "termnorm-go" in groups and leaves:
        mean = sum(res["results"][t][f"lenient_match,{F}"] for t in leaves) / len(leaves)
        assert res["groups"]["termnorm-go"][f"lenient_match,{F}"] == pytest.approx(mean)


def check_validity(res: dict, tasks: list[str]) -> None:
    """Every validity rate in the results JSON, those of the task's answer kind summing to one,
    ``correct`` = the strict score; ``parse_error`` on study-protocol tasks only."""
    for name in tasks:
        row = res["results"][name]
        kinds = vn.categories_for(FORMATS[name])
        shares = {c: row[f"{vn.metric(c)},{F}"] for c in kinds}
        assert all(0.0 <= v <= 1.0 for v in shares.values()) and math.isclose(sum(shares.values()), 1.0), name
        assert shares["correct"] == pytest.approx(row[f"exact_match,{F}"]), name
        assert shares["correct"] + shares["lenient_only"] == pytest.approx(row[f"lenient_match,{F}"]), name
        others = set(vn.METRICS) - {vn.metric(c) for c in kinds}
        assert all(row[f"{m},{F}"] == 0.0 for m in others), name  # reported, 0: groups average alike
        if name.startswith("termnorm-study_"):
            assert 0.0 <= row[f"{vn.PARSE_ERROR},{F}"] <= 1.0, name
        else:
            assert f"{vn.PARSE_ERROR},{F}" not in row, name


@pytest.mark.slow
def test_lm_eval_cli_tiny_model_every_task(tiny_model: Path, repo_root: Path, tmp_path: Path) -> None:
    """Both families through the real CLI: plain and study-protocol tasks, validity rates in the JSON."""
    out = tmp_path / "out"
    proc = _lm_eval(["run", "--model", "hf", "--model_args", f"pretrained={tiny_model},dtype=float32",
                     "--tasks", "termnorm,termnorm-study", "--include_path", "tasks", "--limit", "2",
                     "--device", "cpu", "--batch_size", "4", "--output_path", str(out), "--log_samples"],
                    cwd=repo_root)
    res = _results(out)
    check_results(res, TASKS, 2, GROUPS)
    check_validity(res, TASKS + STUDY_TASKS)
    assert set(STUDY_TASKS) <= set(res["results"]) and "termnorm-study" in res["groups"]
    assert "termnorm_go_term2id_val" in proc.stdout and "lenient_match" in proc.stdout
    samples = sorted(out.rglob("samples_termnorm_go_term2id_val_*.jsonl"))
    lines = [json.loads(x) for x in samples[0].read_text().splitlines()]
    assert [s["doc"]["item_id"] for s in lines] == [r["id"] for r in store.load_records("go", "val")[:2]]
    for s in lines:  # the logged filtered response is the extracted answer, a plain string
        assert isinstance(s["filtered_resps"][0], str) and s["filter"] == F
        assert s["arguments"]["gen_args_0"]["arg_0"] == s["doc"]["input"]


@pytest.mark.slow
def test_chat_template_and_fewshot_in_process(tiny_model: Path, repo_root: Path) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(repo_root / "tasks"), include_defaults=False)
    res = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={tiny_model},dtype=float32", tasks=["termnorm-hpo"],
        task_manager=tm, limit=2, num_fewshot=2, apply_chat_template=True, device="cpu",
        log_samples=True, bootstrap_iters=0,
    )
    hpo_tasks = [t for t in TASKS if "_hpo_" in t]
    assert set(hpo_tasks) <= set(res["results"]) and res["n-shot"]["termnorm_hpo_term2id_val"] == 2
    sample = res["samples"]["termnorm_hpo_term2id_val"][0]
    prompt = sample["arguments"][0][0]
    train_ids = {r["id"] for r in store.load_records("hpo", "train")}
    assert "<|user|>" in prompt and prompt.endswith("<|assistant|>")  # the tiny model's template
    assert sum(i in prompt for i in train_ids) == 2  # two examples, both from the training split
    assert sample["doc"]["input"] in prompt
    for name in hpo_tasks:
        assert 0.0 <= res["results"][name][f"lenient_match,{F}"] <= 1.0


@pytest.mark.slow
def test_termnorm_eval_real_smollm2(repo_root: Path, tmp_path: Path) -> None:
    """The README's main command, on one document per task: real model, table printed, JSON right."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", "from termnorm_eval.cli import main; main()", "eval", "--limit", "1",
         "--output-path", str(out), "--log-samples", "--batch-size", "6"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "running in-process the equivalent of lm_eval run --model hf --tasks termnorm " in proc.stderr
    res = _results(out)
    check_results(res, TASKS, 1, GROUPS)
    assert "SmolLM2-135M-Instruct" in str(res["config"]["model_args"])
    assert "|termnorm" in proc.stdout and "exact_match" in proc.stdout  # the harness's table
    # On the real model's outputs, the logged filter output and scores are what the rules give.
    samples = [json.loads(line) for p in out.rglob("samples_*.jsonl") for line in p.read_text().splitlines()]
    assert len(samples) == len(TASKS)
    assert sum(bool(s["resps"][0][0].strip()) for s in samples) >= len(TASKS) // 2  # it does answer
    for s in samples:
        doc, raw = s["doc"], s["resps"][0][0]
        assert s["filtered_resps"][0] == extract(raw, doc["answer_format"], doc["id_prefix"], doc["id_local"])
        assert s["exact_match"] == strict_match(raw, doc["answer"], doc["answer_kind"])
    assert not any(isinstance(v, float) and math.isnan(v) for v in res["results"]["termnorm"].values())


@pytest.mark.slow
@pytest.mark.skipif(runner.is_editable_install(),
                    reason="editable install: the wheel's lm_eval/tasks/termnorm is not placed; CI installs "
                    "non-editable and runs this for real")
def test_installed_wheel_is_found_without_include_path(tiny_model: Path, tmp_path: Path) -> None:
    assert runner.installed_task_folder() is not None
    ls = _lm_eval(["ls", "tasks"], cwd=tmp_path).stdout
    assert all(t in ls for t in TASKS)
    out = tmp_path / "out"
    _lm_eval(["run", "--model", "hf", "--model_args", f"pretrained={tiny_model},dtype=float32",
              "--tasks", "termnorm_*", "--limit", "1", "--device", "cpu", "--output_path", str(out)],
             cwd=tmp_path)
    res = _results(out)
    assert sorted(res["results"]) == TASKS
    check_results(res, TASKS, 1, [])


def test_editable_detection_matches_this_install() -> None:
    editable = runner.is_editable_install()
    if editable:  # the checkout's tasks/, whether or not the installer also copied them
        folder = runner.source_task_folder()
        assert folder is not None and runner.include_path_needed() == folder
    else:
        assert runner.installed_task_folder() is not None and runner.include_path_needed() is None
