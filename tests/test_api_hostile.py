"""`termnorm eval` and the study against a hostile OpenAI-compatible server (tests/hostile_api.py) on
127.0.0.1 (issue 20): a response without an answer is a failed request (retried, then one line,
exit 2, nothing written), never an empty answer; what is read and kept of a response is capped."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import hostile_api
import pytest
from termnorm_cli import run

from termnorm_eval.harness import api_client

pytest.importorskip("tenacity", reason="the api extra is not installed: pip install '.[api]'")
pytest.importorskip("aiohttp", reason="the api extra is not installed: pip install '.[api]'")

TASK = "termnorm_go_term2id_val"


@pytest.fixture
def no_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """lm-eval's waits between tries (1 s and up) are not what these tests are about."""
    monkeypatch.setattr(api_client, "wait_s", lambda attempt: 0.0)


def _lm_eval_logs_here() -> None:
    """lm-eval binds its log handler to the stderr of the first run in this process: point it at
    this test's captured stderr (not setStream, which flushes the old, closed, one)."""
    for handler in logging.getLogger("lm_eval").handlers:
        if type(handler) is logging.StreamHandler:  # lm-eval's own, not pytest's capture
            handler.stream = sys.stderr


def _eval(url: str, out: Path, capsys: pytest.CaptureFixture[str], *extra: str,
          tries: int = 2, concurrent: int = 1) -> tuple[int, str]:
    _lm_eval_logs_here()
    args = f"model=m,base_url={url},num_concurrent={concurrent},max_retries={tries},tokenizer_backend=None"
    code, _, err = run(["eval", "--model", "local-chat-completions", "--model-args", args, "--tasks", TASK,
                        "--apply-chat-template", "--limit", "2", "--output-path", str(out), "--log-samples",
                        *extra], capsys)
    return code, err


def _one_error_line(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("termnorm: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    return errors[0]


def _samples(out: Path) -> list[dict]:
    (path,) = out.glob(f"*/samples_{TASK}_*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("concurrent", [1, 2])  # lm-eval's sync and async clients
def test_a_200_without_choices_fails_the_run_and_writes_nothing(
        concurrent: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    with hostile_api.serve(default="no-choices") as server:
        code, err = _eval(server.url, out, capsys, concurrent=concurrent)
    assert code == 2, err[-3000:]
    line = _one_error_line(err)
    assert f"the API model at {server.url} did not answer after 2 tries" in line
    assert "without choices" in line
    assert not out.exists()


def _study(url: str, out: Path) -> subprocess.CompletedProcess[str]:
    # A real process: the study's own log handling, as a user runs it.
    return subprocess.run(
        [str(Path(sys.executable).with_name("termnorm")), "study", "--model", "m", "--model-type",
         "local-chat-completions", "--base-url", url, "--no-train", "--no-lexicalization", "--terminologies",
         "go", "--directions", "term2id", "--limit", "2", "--max-retries", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_study_records_nothing_for_a_200_without_choices_and_runs_the_step_once_fixed(
        tmp_path: Path) -> None:
    out = tmp_path / "study"
    with hostile_api.serve(default="no-choices") as server:
        proc = _study(server.url, out)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "without choices" in _one_error_line(proc.stderr)
    assert not (out / "base").exists()
    with hostile_api.serve(default="answer:GO:0000001") as server:  # the server fixed
        proc = _study(server.url, out)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert server.requests > 0  # the step ran again, not reused
    samples = [json.loads(line) for p in (out / "base/results").glob("*/samples_*.jsonl")
               for line in p.read_text().splitlines()]
    assert samples and all(s["resps"] == [["GO:0000001"]] for s in samples)


@pytest.mark.slow
@pytest.mark.parametrize(("reply", "why"), [
    ("500", "HTTP 500"), ("429", "HTTP 429"), ("malformed", "not JSON"), ("html", "not JSON (text/html"),
    ("deep", "nested too deeply"), ("empty-choices", "an empty list"), ("endless", "over 8 MiB"),
])
def test_termnorm_eval_says_why_the_api_model_did_not_answer_in_one_line(
        reply: str, why: str, no_waits: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    with hostile_api.serve(default=reply) as server:
        code, err = _eval(server.url, out, capsys)
    assert code == 2, err[-3000:]
    line = _one_error_line(err)
    assert f"the API model at {server.url} did not answer after 2 tries: " in line and why in line, line
    assert not out.exists()


@pytest.mark.slow
def test_the_right_answers_are_kept_when_the_server_recovers_within_the_tries(
        no_waits: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    with hostile_api.serve("429", "no-choices", default="answer:GO:0000001") as server:
        code, err = _eval(server.url, out, capsys, tries=3)
    assert code == 0, err[-3000:]
    assert [s["resps"] for s in _samples(out)] == [[["GO:0000001"]]] * 2


@pytest.mark.slow
def test_the_samples_keep_a_capped_answer_that_says_it_was_cut(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    n = 5_000_000  # within the read cap: kept, cut to MAX_ANSWER_CHARS
    with hostile_api.serve(default=f"big:{n}") as server:
        code, err = _eval(server.url, out, capsys)
    assert code == 0, err[-3000:]
    cap = api_client.MAX_ANSWER_CHARS
    for sample in _samples(out):
        [[answer]] = sample["resps"]
        assert answer == "A" * cap + f" [termnorm: answer cut at {cap} of {n} characters]"
    assert sum(p.stat().st_size for p in out.rglob("*")) < 100_000  # not 2 x 5 MB
