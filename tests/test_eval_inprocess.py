"""`termnorm eval` runs the harness in its own process when only termnorm tasks are named (issue 10):
which runs go where, and that both ways write the same results."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from termnorm_cli import run

from termnorm_eval.cli import evaluate
from termnorm_eval.harness import inprocess, runner, taskgen
from termnorm_eval.terminologies import BUILTIN

TASKS = sorted(taskgen.task_name(t.key, d.name, s) for t in BUILTIN.values() for d in t.all_directions
               for s in d.splits)


@dataclass
class Calls:
    cli: list[tuple[list[str], dict[str, str]]] = field(default_factory=list)
    inprocess: list[inprocess.Plan] = field(default_factory=list)
    omp_during_run: list[str | None] = field(default_factory=list)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Record both ways of running the harness instead of running them."""
    rec = Calls()

    def fake_call(cmd: list[str], env: dict[str, str] | None = None) -> int:
        rec.cli.append((cmd, dict(env or {})))
        return 0

    def fake_run(p: inprocess.Plan) -> None:
        rec.inprocess.append(p)
        rec.omp_during_run.append(os.environ.get("OMP_NUM_THREADS"))

    monkeypatch.setattr(evaluate.subprocess, "call", fake_call)
    monkeypatch.setattr(inprocess, "run", fake_run)
    return rec


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, _, err = run(argv, capsys)
    return code, err


BASE = ["eval", "--model-args", "pretrained=x", "--device", "cpu", "--limit", "3"]


def test_termnorm_tasks_run_in_process_with_the_command_printed(calls: Calls,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(BASE, capsys)
    assert code == 0 and calls.cli == [] and len(calls.inprocess) == 1, err
    plan = calls.inprocess[0]
    assert plan.tasks == ["termnorm"] and plan.namespace.limit == 3.0
    assert plan.namespace.model_args == {"pretrained": "x"} and plan.namespace.device == "cpu"
    folder = runner.include_path_needed()
    if folder is not None:  # editable install: the checkout's tasks/ is indexed last, so it wins
        assert plan.folders[-1] == folder.resolve()
    line = next(x for x in err.splitlines() if x.startswith("termnorm: running"))
    shown = "lm_eval run --model hf --tasks termnorm --batch_size 16 --model_args pretrained=x --device cpu"
    assert line.startswith(f"termnorm: running in-process the equivalent of {shown} --limit 3")


def test_wildcards_are_resolved_as_the_cli_resolves_them(calls: Calls,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # simple_evaluate raises KeyError on a pattern: the CLI expands it against its index first.
    code, err = _run([*BASE, "--tasks", "termnorm_*_val,termnorm_go_*"], capsys)
    assert code == 0 and calls.cli == [], err
    go_train = [t for t in TASKS if t.startswith("termnorm_go_") and t.endswith("_train")]
    assert calls.inprocess[0].tasks == [t for t in TASKS if t.endswith("_val")] + go_train


def test_a_builtin_harness_task_goes_to_the_cli_saying_why(calls: Calls,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run([*BASE, "--tasks", "termnorm_go_term2id_val,hellaswag"], capsys)
    assert code == 0 and calls.inprocess == [] and len(calls.cli) == 1, err
    cmd, _ = calls.cli[0]
    # lm-eval's CLI, in a child that guards the API models and words a failure in one line
    assert cmd[1:5] == ["-m", "termnorm_eval.harness.inprocess", "--cli", "run"]
    assert cmd[cmd.index("--tasks") + 1] == "termnorm_go_term2id_val,hellaswag"
    assert "--tasks hellaswag is not a termnorm task: running the lm_eval CLI" in err
    assert "termnorm: running lm_eval run --model hf --tasks termnorm_go_term2id_val,hellaswag" in err


@pytest.mark.parametrize("extra", [["--config", "c.yaml"], ["--wandb_args", "project=p"]])
def test_options_only_the_cli_handles_go_to_the_cli(extra: list[str], calls: Calls,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run([*BASE, *extra], capsys)
    assert code == 0 and calls.inprocess == [] and len(calls.cli) == 1, err
    assert calls.cli[0][0][-2:] == extra and f"{extra[0]} is handled by the lm_eval CLI" in err


def test_via_cli_forces_the_subprocess(calls: Calls, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run([*BASE, "--via-cli", "--gen_kwargs", "max_gen_toks=8"], capsys)
    assert code == 0 and calls.inprocess == [] and len(calls.cli) == 1, err
    cmd, _ = calls.cli[0]
    assert cmd[-2:] == ["--gen_kwargs", "max_gen_toks=8"] and "--via-cli" not in cmd
    assert "in-process" not in err and "not a termnorm task" not in err


def test_a_user_task_folder_runs_in_process_and_overrides_the_installed_copy(
    tmp_path: Path, calls: Calls, capsys: pytest.CaptureFixture[str], repo_root: Path,
) -> None:
    mine = tmp_path / "mytasks"
    shutil.copytree(repo_root / "tasks", mine)
    code, err = _run([*BASE, "--include-path", str(mine), "--tasks", "termnorm-go"], capsys)
    assert code == 0 and calls.cli == [], err
    plan = calls.inprocess[0]
    assert plan.tasks == ["termnorm-go"] and plan.namespace.include_path == str(mine)
    installed = runner.installed_task_folder()
    # The CLI indexes the harness's own folders first and --include_path last, which wins by name.
    assert plan.folders == ([installed] if installed else []) + [mine.resolve()]


@pytest.mark.parametrize(("extra", "message"), [
    (["--no_such_option"], "lm_eval: unrecognized arguments: --no_such_option"),
    (["--seed", "abc"], "lm_eval: argument --seed: invalid"),
    (["--gen_kwargs", "novalue"], "lm_eval: argument --gen_kwargs"),
])
def test_a_bad_pass_through_option_is_one_line_either_way(
    extra: list[str], message: str, calls: Calls, capsys: pytest.CaptureFixture[str],
) -> None:
    for engine in ([], ["--via-cli"]):
        code, err = _run([*BASE, *engine, *extra], capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith(f"termnorm: error: {message}"), lines[0]
    assert calls.cli == [] and calls.inprocess == []


def test_the_product_never_sets_torch_threads(calls: Calls, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # The user's OMP_NUM_THREADS or torch's default decides, on either path (issue 10).
    import torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    for engine in ([], ["--via-cli"]):
        code, err = _run([*BASE, *engine], capsys)
        assert code == 0 and "thread" not in err, err
    assert calls.omp_during_run == [None] and "OMP_NUM_THREADS" not in calls.cli[0][1]
    assert "OMP_NUM_THREADS" not in os.environ and torch.get_num_threads() == threads
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # a user's setting reaches the harness unchanged
    _run([*BASE, "--via-cli"], capsys)
    assert calls.cli[1][1]["OMP_NUM_THREADS"] == "3"


# --- both ways, for real --------------------------------------------------------------------------

ADDRESS = re.compile(r" at 0x[0-9a-f]+")  # function reprs in the recorded configs


def _termnorm_eval(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = runner.offline_env()
    env.setdefault("OMP_NUM_THREADS", "1")  # the suite shares 2 cores; busy torch threads collide
    proc = subprocess.run([sys.executable, "-c", "from termnorm_eval.cli import main; main()", "eval",
                           *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _written(out: Path) -> tuple[dict, list[dict]]:
    [results] = out.rglob("results_*.json")
    [samples] = out.rglob("samples_termnorm_go_term2id_val_*.jsonl")
    res = json.loads(ADDRESS.sub("", results.read_text()))
    return res, [json.loads(line) for line in samples.read_text().splitlines()]


def _keys(d: object, prefix: str = "") -> set[str]:
    if not isinstance(d, dict):
        return set()
    return {f"{prefix}{k}" for k in d} | {x for k, v in d.items() for x in _keys(v, f"{prefix}{k}.")}


@pytest.mark.slow
def test_in_process_and_cli_write_the_same_results(tiny_model: Path, tmp_path: Path) -> None:
    args = ["--model-args", f"pretrained={tiny_model},dtype=float32", "--tasks", "termnorm_go_term2id_val",
            "--limit", "2", "--device", "cpu", "--batch-size", "4", "--log-samples"]
    fast = _termnorm_eval([*args, "--output-path", str(tmp_path / "fast")], cwd=tmp_path)
    slow = _termnorm_eval([*args, "--output-path", str(tmp_path / "slow"), "--via-cli"], cwd=tmp_path)
    assert "termnorm: running in-process the equivalent of lm_eval run" in fast.stderr
    assert "in-process" not in slow.stderr and "termnorm: running lm_eval run" in slow.stderr
    (a, a_samples), (b, b_samples) = _written(tmp_path / "fast"), _written(tmp_path / "slow")
    varying = {"date", "start_time", "end_time", "total_evaluation_time_seconds"}
    assert _keys(a) == _keys(b)
    for k in set(a) - varying:  # scores, configs, model_args, seeds, versions: all the same
        assert a[k] == b[k], k
    task = "termnorm_go_term2id_val"
    assert a["results"][task]["sample_len"] == 2 and "lenient_match,extract" in a["results"][task]
    assert a["config"]["model_args"] == {"pretrained": str(tiny_model), "dtype": "float32"}
    assert a_samples == b_samples and len(a_samples) == 2
    table = [line for line in fast.stdout.splitlines() if line.startswith(("|", "hf ("))]
    assert table and table == [line for line in slow.stdout.splitlines() if line.startswith(("|", "hf ("))]
