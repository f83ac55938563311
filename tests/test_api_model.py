"""API models for real: `transformers serve` on 127.0.0.1 with the tiny model (started and stopped
through harness/served.py), scored with lm-eval's `local-chat-completions` by `termnorm eval` and
by `termnorm study`; a base_url that does not answer is one line and writes nothing."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from termnorm_cli import one_line_error, run

from termnorm_eval.harness import served

# What the API path needs: lm-eval[api] (tenacity, aiohttp) for the client, transformers[serving]
# (fastapi, uvicorn, openai) for the server. Both are in the test extra.
MISSING = [m for m in ("tenacity", "aiohttp", "fastapi", "uvicorn", "openai")
           if importlib.util.find_spec(m) is None]
needs_api = pytest.mark.skipif(
    bool(MISSING), reason=f"the api extra is not installed (missing {', '.join(MISSING)}): "
    "pip install '.[test]' (or '.[api]' and 'transformers[serving]')")

TASKS = ["termnorm_go_term2id_val", "termnorm_gene_name2symbol_val"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[served.Server]:
    from termnorm_eval.tiny_model import build_tiny_model

    if MISSING:
        pytest.skip(f"the api extra is not installed (missing {', '.join(MISSING)})")
    if shutil.which("transformers") is None and not Path(served.transformers_serve_argv("m")[0]).exists():
        pytest.skip("the transformers CLI is not on PATH")
    root = tmp_path_factory.mktemp("served")
    model = build_tiny_model(root / "tiny", seed=0)
    argv = served.transformers_serve_argv(model)
    with served.serve(argv, ready_timeout=180, log_path=root / "server.log") as s:
        s.model = str(model)  # type: ignore[attr-defined]
        yield s
    assert s.process.poll() is not None  # stopped with the fixture


@needs_api
@pytest.mark.slow
def test_termnorm_eval_scores_an_openai_compatible_server(
        server: served.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_args = (f"model={server.model},base_url={server.chat_completions_url},"  # type: ignore[attr-defined]
                  "num_concurrent=1,tokenizer_backend=None")
    out = tmp_path / "api"
    code, _, err = run(["eval", "--model", "local-chat-completions", "--model-args", model_args,
                        "--tasks", ",".join(TASKS), "--apply-chat-template", "--limit", "3",
                        "--output-path", str(out), "--log-samples"], capsys)
    assert code == 0, err[-3000:]
    (path,) = sorted(out.glob("*/results_*.json"))
    data = json.loads(path.read_text())
    assert data["config"]["model"] == "local-chat-completions"
    for task in TASKS:
        assert data["n-samples"][task]["effective"] == 3
        assert 0.0 <= data["results"][task]["exact_match,extract"] <= 1.0
        lines = next(out.glob(f"*/samples_{task}_*.jsonl")).read_text().splitlines()
        samples = [json.loads(line) for line in lines]
        assert len(samples) == 3 and all("resps" in s for s in samples)
    # every request reached our server (its access log), none went elsewhere
    log = server.log_path.read_text(errors="replace")
    assert log.count("POST /v1/chat/completions") >= 6


@needs_api
@pytest.mark.slow
def test_the_study_evaluates_an_api_model_without_training(
        server: served.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    code, _, err = run(["study", "--model", server.model, "--model-type", "local-chat-completions",  # type: ignore[attr-defined]
                        "--base-url", server.chat_completions_url, "--no-train", "--terminologies", "go",
                        "--directions", "term2id", "--limit", "3", "--out", str(out)], capsys)
    assert code == 0, err[-3000:]
    assert "lexicalization skipped: it needs the model's weights" in err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "base", "report", "report.md", "retrieve", "study.json"]
    (path,) = sorted((out / "base/results").glob("*/results_*.json"))
    data = json.loads(path.read_text())
    assert set(data["results"]) >= {"termnorm_go_term2id_train", "termnorm_go_term2id_val"}
    assert data["config"]["model_args"]["base_url"] == server.chat_completions_url
    assert "termnorm_go_term2id_val" in (out / "report.md").read_text()


@needs_api
def test_a_base_url_that_does_not_answer_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    port = served.free_port()  # free: nothing listens there
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    out = tmp_path / "study"
    # A real process: lm-eval's log handlers are then bound to this run's stderr, not to an earlier
    # test's captured one (which makes logging print its own tracebacks).
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("termnorm")), "study", "--model", "nobody", "--model-type",
         "local-chat-completions", "--base-url", url, "--no-train", "--no-lexicalization", "--terminologies",
         "go", "--directions", "term2id", "--limit", "2", "--max-retries", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    code, err = proc.returncode, proc.stderr
    assert code == 2, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("termnorm: error:")]
    assert len(errors) == 1, err[-2000:]
    assert f"the API model at {url} did not answer after 2 tries" in errors[0]
    assert "Traceback" not in err
    assert not out.exists()  # nothing claimed: no study.json, no base/, no staged folder


def test_an_api_model_is_refused_for_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "study.yaml"
    cfg.write_text("model: gpt-4o\nmodel_type: openai-chat-completions\n")
    one_line_error(["study", "-c", str(cfg)], capsys, "openai-chat-completions", "never trained")


def _termnorm(argv: list[str], env: dict[str, str] | None = None, hide: str | None = None) -> str:
    """The one error line of a real `termnorm` process; ``hide``: a module it finds not installed."""
    code = "from termnorm_eval.cli import main; main()"
    if hide:
        code = ("import importlib.util as u; f = u.find_spec; "
                f"u.find_spec = lambda name, *a: None if name == {hide!r} else f(name, *a); {code}")
    proc = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True,
                          timeout=600)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("termnorm: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


STUDY_API = ["study", "--no-train", "--no-lexicalization", "--terminologies", "go", "--directions", "term2id",
             "--limit", "2"]


@needs_api
@pytest.mark.slow
def test_a_missing_openai_key_is_named_by_termnorm_eval_and_the_study(tmp_path: Path) -> None:
    # Issue 20: the study said "API model at None did not answer"; termnorm eval gave a traceback.
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    wanted = ("the openai-chat-completions model reads the API key from the environment variable "
              "OPENAI_API_KEY")
    line = _termnorm(["eval", "--model", "openai-chat-completions", "--model-args", "model=gpt-4o", "--tasks",
                      "termnorm_go_term2id_val", "--apply-chat-template", "--limit", "1"], env)
    assert wanted in line
    out = tmp_path / "study"
    line = _termnorm([*STUDY_API, "--model", "gpt-4o", "--model-type", "openai-chat-completions",
                      "--out", str(out)], env)
    assert wanted in line and "None" not in line
    assert not (out / "base").exists()


@needs_api
@pytest.mark.slow
def test_a_missing_api_package_names_the_extra_to_install(tmp_path: Path) -> None:
    # Issue 20: the study said "... did not answer after 3 retries: ModuleNotFoundError".
    url = f"http://127.0.0.1:{served.free_port()}/v1/chat/completions"
    wanted = "the local-chat-completions model needs tenacity (lm-eval's api extra): pip install " \
             "'termnorm-eval[api]'"
    line = _termnorm([*STUDY_API, "--model", "m", "--model-type", "local-chat-completions", "--base-url", url,
                      "--out", str(tmp_path / "study")], hide="tenacity")
    assert line == f"termnorm: error: {wanted}"
    line = _termnorm(["eval", "--model", "local-chat-completions", "--model-args", f"model=m,base_url={url}",
                      "--tasks", "termnorm_go_term2id_val", "--apply-chat-template", "--limit", "1"],
                     hide="tenacity")
    assert line == f"termnorm: error: {wanted}"
