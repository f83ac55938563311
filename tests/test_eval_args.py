"""`termnorm eval` refuses arguments the harness would silently misread (issue 9): a --limit that is
not a count or a fraction, a default-model path that --model_args cannot carry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from termnorm_cli import run

from termnorm_eval.cli import evaluate
from termnorm_eval.harness import inprocess


@pytest.fixture
def harness_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str] | inprocess.Plan]:
    """Record the lm_eval command lines and in-process runs instead of running them."""
    calls: list[list[str] | inprocess.Plan] = []

    def call(cmd: list[str], env: dict[str, str] | None = None) -> int:
        calls.append(cmd)
        return 0

    monkeypatch.setattr(evaluate.subprocess, "call", call)
    monkeypatch.setattr(inprocess, "run", calls.append)
    return calls


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, _, err = run(argv, capsys)
    return code, err


@pytest.mark.parametrize("limit", ["-1", "nan", "0", "1e30", "1.5", "inf"])
def test_bad_limit_is_one_line_naming_it(limit: str, harness_calls: list[list[str] | inprocess.Plan],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # lm-eval reads -1 as "all", 1.5 as 1 and 1e30 as everything: a typo must not run silently.
    code, err = _run(["eval", "--model-args", "pretrained=x", "--limit", limit], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("termnorm: error: --limit must be a whole number of documents")
    assert harness_calls == []


@pytest.mark.parametrize(("limit", "passed"), [("10", "10"), ("0.5", "0.5"), ("1", "1")])
def test_good_limit_reaches_the_harness(limit: str, passed: str,
                                        harness_calls: list[list[str] | inprocess.Plan],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "--model-args", "pretrained=x", "--limit", limit, "--device", "cpu"]
    code, err = _run(argv, capsys)
    assert code == 0 and len(harness_calls) == 1
    [plan] = harness_calls  # in-process: what lm-eval's parser read, and the command printed
    assert isinstance(plan, inprocess.Plan) and plan.namespace.limit == float(passed)
    words = err.split()
    assert words[words.index("--limit") + 1] == passed
    code, _ = _run([*argv, "--via-cli"], capsys)
    cmd = harness_calls[1]
    assert code == 0 and isinstance(cmd, list) and cmd[cmd.index("--limit") + 1] == passed


def test_default_model_under_a_cache_path_with_a_comma_is_refused_before_preparing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, harness_calls: list[list[str] | inprocess.Plan],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = tmp_path / "cache,old"
    monkeypatch.setenv("TERMNORM_CACHE", str(cache))
    prepared: list[str] = []

    def prepare(name: str, force: bool = False) -> Path:
        prepared.append(name)
        return cache / "models" / "SmolLM2-135M-Instruct"

    monkeypatch.setattr(evaluate, "_prepare", prepare)
    code, err = _run(["eval", "--device", "cpu"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "TERMNORM_CACHE" in lines[0] and "contains a comma" in lines[0] and str(cache) in lines[0]
    assert prepared == [] and harness_calls == []  # nothing prepared (~30 s), nothing run


@pytest.mark.parametrize("where", ["file", "file/sub", "file/sub/r.json", "file.json/sub"])
def test_an_output_path_that_cannot_be_a_folder_is_refused_before_running(
        where: str, tmp_path: Path, harness_calls: list[list[str] | inprocess.Plan],
        capsys: pytest.CaptureFixture[str]) -> None:
    # lm-eval only warns that it could not save the results, and exits 0 (issue 20).
    for name in ("file", "file.json"):
        (tmp_path / name).write_text("not a folder\n")
    out = tmp_path / where
    for via in ([], ["--via-cli"]):
        code, err = _run(["eval", "--model-args", "pretrained=x", "--device", "cpu",
                          "--output-path", str(out), *via], capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith(f"termnorm: error: --output-path {out}: ") and "not a folder" in lines[0]
    assert harness_calls == []
    assert (tmp_path / "file").read_text() == "not a folder\n"


def test_an_output_path_ending_in_json_names_a_file_beside_an_existing_one(
        tmp_path: Path, harness_calls: list[list[str] | inprocess.Plan],
        capsys: pytest.CaptureFixture[str]) -> None:
    # lm-eval writes NAME_<date>.json beside a .json output path: an existing NAME.json is fine.
    (tmp_path / "r.json").write_text("{}\n")
    code, err = _run(["eval", "--model-args", "pretrained=x", "--device", "cpu", "--output-path",
                      str(tmp_path / "r.json")], capsys)
    assert code == 0 and len(harness_calls) == 1, err


@pytest.mark.parametrize(("argv", "expected"), [
    (["--model", "hf,foo", "--model-args", "pretrained=x"], "--model hf,foo: not a model type of lm-eval"),
    (["--model", "hf-typo", "--model-args", "pretrained=x"], "--model hf-typo: not a model type of lm-eval"),
    (["--model-args", ""], "--model-args is empty"),
    (["--model-args", " "], "--model-args is empty"),
    (["--model-args", "pretrained=caf\udcc3"], "--model-args must be UTF-8 text"),
    (["--model-args", "pretrained=x", "--tasks", ","], "--tasks ',': an empty task name"),
    (["--model-args", "pretrained=x", "--tasks", ""], "--tasks '': an empty task name"),
    (["--model-args", "pretrained=x", "--tasks", "termnorm,,termnorm-go"], "an empty task name"),
    (["--model-args", "pretrained=x", "--tasks", "termnorm_\udcff"], "--tasks must be UTF-8 text"),
    (["--model-args", "pretrained=x", "--batch-size", "abc"], "--batch-size abc: a whole number from 1"),
    (["--model-args", "pretrained=x", "--batch-size", "0"], "--batch-size 0: a whole number from 1"),
    (["--model-args", "pretrained=x", "--batch-size", "auto:x"], "--batch-size auto:x: a whole number"),
])
def test_arguments_lm_eval_would_misread_or_trip_on_are_one_line(
        argv: list[str], expected: str, harness_calls: list[list[str] | inprocess.Plan],
        capsys: pytest.CaptureFixture[str]) -> None:
    # Today: tracebacks from lm-eval, or (--tasks '') its CLI reading the current folder's YAMLs.
    for via in ([], ["--via-cli"]):
        code, err = _run(["eval", "--device", "cpu", *argv, *via], capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith("termnorm: error: ") and expected in lines[0], lines[0]
    assert harness_calls == []


@pytest.mark.parametrize("batch_size", ["1", "16", "auto", "auto:4"])
def test_batch_sizes_lm_eval_takes_reach_it(batch_size: str, harness_calls: list[list[str] | inprocess.Plan],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["eval", "--model-args", "pretrained=x", "--device", "cpu", "--batch-size", batch_size],
                     capsys)
    [plan] = harness_calls
    assert code == 0 and isinstance(plan, inprocess.Plan) and plan.namespace.batch_size == batch_size, err


def _termnorm_eval(argv: list[str], cwd: Path) -> str:
    """The one error line of a real `termnorm eval` process (lm-eval's logging as a user sees it)."""
    proc = subprocess.run([str(Path(sys.executable).with_name("termnorm")), "eval", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=900)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("termnorm: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


@pytest.mark.slow
def test_an_unknown_task_is_one_line_from_the_cli(tiny_model: Path, tmp_path: Path) -> None:
    # Not a termnorm task: lm-eval's CLI runs (in a child of ours) and raised "Tasks not found".
    line = _termnorm_eval(["--model-args", f"pretrained={tiny_model}", "--device", "cpu", "--limit", "1",
                           "--tasks", "termnorm_go_term2id_val,nonexistent"], tmp_path)
    assert line == ("termnorm: error: --tasks nonexistent: no such task or group, neither a termnorm one nor "
                    "one of the harness (lm_eval ls tasks lists them)")


@pytest.mark.slow
def test_more_fewshot_examples_than_the_split_holds_is_one_line(tiny_model: Path, tmp_path: Path) -> None:
    line = _termnorm_eval(["--model-args", f"pretrained={tiny_model}", "--device", "cpu", "--limit", "1",
                           "--tasks", "termnorm_go_term2id_val", "--num-fewshot", "100000"], tmp_path)
    assert line.startswith("termnorm: error: num_fewshot 100000: more examples than the few-shot split of a "
                           "task holds (ValueError: Sample larger than population")
