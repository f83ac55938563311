"""`termnorm study` with ``model_type: vllm-server`` (issues 13 and 15): the study starts a vLLM
server for each evaluation, with that evaluation's adapter as a LoRA module, scores it through
local-chat-completions, and stops it. Here against the fake vLLM server (tests/vllm_fake.py):
a real subprocess on loopback that records every command line and request; the same study
against the real vLLM is in test_vllm_real.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import vllm_fake
from termnorm_cli import one_line_error, run

from termnorm_eval.study import records

REPO = Path(__file__).resolve().parent.parent
TINY_CONFIG = REPO / "finetune" / "recipes" / "study-tiny.yaml"


@pytest.mark.slow
def test_study_serves_each_adapter_on_its_own_vllm_server(
        tmp_path: Path, tiny_model: Path, fake_vllm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    argv = ["study", "-c", str(TINY_CONFIG), "--model", str(tiny_model), "--model-type", "vllm-server",
            "--server-python", sys.executable, "--server-timeout", "60", "--epochs", "1,2",
            "--no-lexicalization", "--out", str(out)]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    starts = [json.loads(line) for line in (fake_vllm / "argv.jsonl").read_text().splitlines()]
    assert len(starts) == 3  # base, eval-go, sweep-go-e1: one server each
    lora = [s[s.index("--lora-modules") + 1] if "--lora-modules" in s else None for s in starts]
    assert lora[0] is None
    assert lora[1] == f"adapter={out / 'train-go' / 'adapter'}"
    assert lora[2] == f"adapter={out / 'train-go' / 'epochs' / 'epoch-1'}"
    for s in starts:
        assert s[s.index("--model") + 1] == str(tiny_model) and s[s.index("--host") + 1] == "127.0.0.1"
    assert starts[1][starts[1].index("--max-lora-rank") + 1] == "16"  # the recipe's r 16
    # every request went to the name that step serves: the base, then the adapter (4 documents of each
    # of 8 tasks: term2id and its mention task synonym2id, train and val, and their 4 RAG mirrors)
    models = [json.loads(line)["model"] for line in (fake_vllm / "requests.jsonl").read_text().splitlines()]
    assert models == ["base"] * 32 + ["adapter"] * 64
    for step, served in (("base", "base"), ("eval-go", "adapter"), ("sweep-go-e1", "adapter")):
        (res,) = (out / step / "results").glob("*/results_*.json")
        config = json.loads(res.read_text())["config"]
        assert config["model"] == "local-chat-completions" and config["model_args"]["model"] == served
        assert (out / step / "server.log").is_file()
        assert records.read_record(out / step)["inputs"]["model_type"] == "vllm-server"
    vllm_fake.server_gone(fake_vllm)
    assert (out / "report.md").is_file()
    # a rerun starts no server
    code, _, err = run(argv, capsys)
    assert code == 0 and err.count("finished earlier, reused") == 6, err
    assert len((fake_vllm / "argv.jsonl").read_text().splitlines()) == 3


def test_vllm_server_without_vllm_is_refused_before_any_step(
        tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from termnorm_eval.harness import vllm_engine

    if vllm_engine.vllm_importable():
        pytest.skip("vLLM is importable here")
    out = tmp_path / "s"
    one_line_error(["study", "--model", str(tiny_model), "--model-type", "vllm-server", "--out", str(out)],
                   capsys, "--model-type vllm-server: vLLM is not installed in this Python", "server_python")
    assert not out.exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["--model-type", "vllm-server", "--base-url", "http://127.0.0.1:1/v1"],
     "model_type local-chat-completions"),
    (["--server-python", sys.executable], "--server-python: only with model_type vllm-server"),
    (["--server-args", "--max-model-len,512"], "--server-args: only with model_type vllm-server"),
])
def test_server_settings_are_checked(args: list[str], expected: str, tmp_path: Path, tiny_model: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(["study", "--model", str(tiny_model), "--out", str(tmp_path / "s"), *args], capsys,
                   expected)


def test_a_server_that_fails_to_start_fails_its_step_and_leaves_no_process(
        tmp_path: Path, tiny_model: Path, fake_vllm: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "never")
    out = tmp_path / "s"
    code, _, err = run(["study", "--model", str(tiny_model), "--model-type", "vllm-server", "--no-train",
                        "--terminologies", "go", "--limit", "2", "--no-lexicalization",
                        "--server-python", sys.executable, "--server-timeout", "3", "--out", str(out)],
                       capsys)
    assert code == 2 and "Traceback" not in err, err
    assert "was not ready after 3 s" in err.strip().splitlines()[-1]
    vllm_fake.server_gone(fake_vllm)
    assert not (out / "base").exists()  # nothing written for that step
