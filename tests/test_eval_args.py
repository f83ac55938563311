"""`termnorm eval` refuses arguments the harness would silently misread (issue 9): a --limit that is
not a count or a fraction, a default-model path that --model_args cannot carry."""

from __future__ import annotations

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
