"""`termnorm eval --engine vllm|vllm-server` without vLLM installed (issue 15).

The argument building for lm-eval's ``--model vllm`` (it runs where the ``vllm`` distribution is
installed: a GPU, or the CPU environment of benchmarks/vllm_cpu_env.sh), and the served route end
to end against a fake ``vllm.entrypoints.openai.api_server`` module (tests/vllm_fake.py): a real
subprocess on loopback that answers ``/health``, ``/v1/models`` and ``/v1/chat/completions`` as
vLLM's server does, and records its command lines, its pid and the requests it saw. Every bad
input is one line, exit 2, and leaves no server process behind. The same checks against the real
vLLM are in test_vllm_real.py.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path

import hostile_api
import pytest
import vllm_fake
from termnorm_cli import one_line_error, run

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import inprocess, vllm_engine


def _adapter(folder: Path, base: Path | str, r: int = 8) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": r, "lora_alpha": 16, "base_model_name_or_path": str(base)}))
    return folder


def error_after_progress(argv: list[str], capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    """Exit 2 with one error line, last; before it only termnorm's own progress lines (the
    server's start), never a traceback or the server's output."""
    code, _, err = run(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err, err
    assert lines and lines[-1].startswith("termnorm: error: "), err
    assert all(x.startswith("termnorm: ") and "error" not in x.split()[1] for x in lines[:-1]), err
    for text in expected:
        assert text in lines[-1], lines[-1]
    return lines[-1]


_server_gone = vllm_fake.server_gone


TASK = "termnorm_gene_name2symbol_train"
REACH = ["eval", "--engine", "vllm-server", "--tasks", TASK]
SERVE = [*REACH, "--server-python", sys.executable, "--limit", "2"]


# ---- argument building --------------------------------------------------------------------------

def test_server_argv_serves_every_adapter_on_one_server(tmp_path: Path, tiny_model: Path) -> None:
    a = vllm_engine.read_adapter("go", _adapter(tmp_path / "go", tiny_model, r=8))
    b = vllm_engine.read_adapter("gene", _adapter(tmp_path / "gene", tiny_model, r=16))
    argv = vllm_engine.server_argv("PY", str(tiny_model), [a, b], max_lora_rank=16,
                                   model_args={"pretrained": str(tiny_model), "dtype": "float32"},
                                   tensor_parallel_size=2, extra=["--enforce-eager"])
    assert argv == ["PY", "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model),
                    "--served-model-name", "base", "--host", "{host}", "--port", "{port}",
                    "--dtype", "float32", "--tensor-parallel-size", "2", "--enable-lora",
                    "--max-lora-rank", "16", "--max-loras", "2", "--lora-modules",
                    f"go={a.path}", f"gene={b.path}", "--enforce-eager"]
    with pytest.raises(TermnormError, match="no vLLM server setting"):
        vllm_engine.server_argv("PY", "m", [], max_lora_rank=16, model_args={"peft": "x"})


def test_vllm_model_args_pass_lora_and_parallelism(tmp_path: Path, tiny_model: Path) -> None:
    ad = vllm_engine.read_adapter("a", _adapter(tmp_path / "a", tiny_model))
    got = vllm_engine.vllm_model_args({"pretrained": str(tiny_model), "dtype": "bfloat16"}, ad, 32, 2, 4)
    assert got == (f"pretrained={tiny_model},dtype=bfloat16,enable_lora=True,max_lora_rank=32,"
                   f"lora_local_path={ad.path},tensor_parallel_size=2,data_parallel_size=4")
    with pytest.raises(TermnormError, match="another option sets too"):
        vllm_engine.vllm_model_args({"pretrained": "m", "tensor_parallel_size": "1"}, None, 16, 2, None)


@pytest.fixture
def harness_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    from termnorm_eval.cli import evaluate

    calls: list[object] = []
    monkeypatch.setattr(evaluate.subprocess, "call", lambda cmd, env=None: calls.append(cmd) or 0)
    monkeypatch.setattr(inprocess, "run", calls.append)
    return calls


def test_engine_vllm_builds_lm_eval_vllm_command(tmp_path: Path, tiny_model: Path,
                                                 harness_calls: list[object], monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # On CPU lm-eval's vllm backend cannot run (vllm-cpu): what it would be given is the test.
    monkeypatch.setattr(vllm_engine, "vllm_distribution_problem", lambda: None)
    ad = _adapter(tmp_path / "ad", tiny_model, r=8)
    code, _, err = run(["eval", "--engine", "vllm", "--model-args", f"pretrained={tiny_model}",
                        "--lora", str(ad), "--max-lora-rank", "8", "--tensor-parallel-size", "2",
                        "--data-parallel-size", "1", "--tasks", "termnorm_go_term2id_val", "--limit", "1"],
                       capsys)
    assert code == 0, err
    [plan] = harness_calls
    assert isinstance(plan, inprocess.Plan) and plan.namespace.model == "vllm"
    words = err.split()  # the printed command, as a user would rerun it
    assert words[words.index("--model_args") + 1] == (
        f"pretrained={tiny_model},enable_lora=True,max_lora_rank=8,lora_local_path={ad.resolve()},"
        "tensor_parallel_size=2,data_parallel_size=1")
    assert plan.namespace.model_args == {  # what lm-eval's own parser made of it
        "pretrained": str(tiny_model), "enable_lora": True, "max_lora_rank": 8,
        "lora_local_path": str(ad.resolve()), "tensor_parallel_size": 2, "data_parallel_size": 1}


def test_engine_vllm_refused_for_renamed_distribution(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # What vllm-cpu looks like: `import vllm` works, the distribution "vllm" does not exist.
    monkeypatch.setattr(vllm_engine, "vllm_importable", lambda: True)
    monkeypatch.setattr(vllm_engine, "vllm_distribution_installed", lambda: False)
    one_line_error(["eval", "--engine", "vllm", "--model-args", "pretrained=x"], capsys,
                   "vllm-cpu", "--engine vllm-server")


def test_engine_vllm_without_vllm_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(vllm_engine, "vllm_importable", lambda: False)
    one_line_error(["eval", "--engine", "vllm", "--model-args", "pretrained=x"], capsys,
                   "vLLM is not installed")


def test_hf_engine_lora_becomes_peft(tmp_path: Path, tiny_model: Path, harness_calls: list[object],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    ad = _adapter(tmp_path / "ad", tiny_model)
    code, _, err = run(["eval", "--model-args", f"pretrained={tiny_model}", "--lora", str(ad),
                        "--tasks", "termnorm_go_term2id_val", "--limit", "1", "--device", "cpu"], capsys)
    assert code == 0, err
    [plan] = harness_calls
    assert isinstance(plan, inprocess.Plan)
    assert plan.namespace.model_args == {"pretrained": str(tiny_model), "peft": str(ad.resolve())}


@pytest.mark.parametrize("engine", ["hf", "vllm"])
def test_an_adapter_path_with_a_comma_is_named_as_a_path_not_a_served_name(
        engine: str, tmp_path: Path, tiny_model: Path, harness_calls: list[object],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # hf and vllm give the adapter as a path in --model_args; only vllm-server serves it by name.
    monkeypatch.setattr(vllm_engine, "vllm_distribution_problem", lambda: None)
    ad = _adapter(tmp_path / "com,ma", tiny_model)
    line = one_line_error(["eval", "--engine", engine, "--model-args", f"pretrained={tiny_model}",
                           "--lora", str(ad)], capsys, f"--lora {ad}: contains a comma")
    assert "served name" not in line
    assert harness_calls == []
    base = _adapter(tmp_path / "base", tiny_model)  # the name vllm-server gives the base: a folder here
    code, _, err = run(["eval", "--engine", engine, "--model-args", f"pretrained={tiny_model}",
                        "--lora", str(base)], capsys)
    assert code == 0 and len(harness_calls) == 1, err


@pytest.mark.parametrize(("argv", "expected"), [
    (["eval", "--base-url", "http://127.0.0.1:1/v1"], "only with --engine vllm-server"),
    (["eval", "--engine", "vllm-server", "--base-url", "http://127.0.0.1:1/v1"], "--served-model"),
    (["eval", "--engine", "gpu"], "choose one of hf, vllm, vllm-server"),
    (["eval", "--engine", "vllm", "--model", "hf-multimodal", "--model-args", "pretrained=x"],
     "the engine chooses"),
    (["eval", "--tensor-parallel-size", "2", "--model-args", "pretrained=x"], "only with --engine vllm"),
    (["eval", "--engine", "vllm-server", "--base-url", "ftp://x", "--served-model", "a"], "expected http"),
    (["eval", "--engine", "vllm-server", "--model-args", "dtype=float32"], "needs pretrained=BASE"),
    (["eval", "--engine", "vllm-server", "--model-args", "pretrained=m,peft=x"], "no vLLM server setting"),
    (["eval", "--engine", "vllm-server", "--base-url", "http://127.0.0.1:1/v1", "--served-model", "a",
      "--port", "8000"], "for one that termnorm starts"),
])
def test_flag_misuse_is_one_line(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(argv, capsys, expected)


# ---- adapter checks, before anything starts ------------------------------------------------------

def _other_model(tmp_path: Path, tiny_model: Path) -> Path:
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["hidden_size"] = cfg["hidden_size"] * 2
    (other / "config.json").write_text(json.dumps(cfg))
    return other


def test_base_identity_by_folder_and_config(tmp_path: Path, tiny_model: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tiny_model)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    ad = vllm_engine.read_adapter("a", _adapter(tmp_path / "a", tiny_model))
    assert vllm_engine.base_mismatch(ad, str(link)) is None  # the same folder by another path
    assert vllm_engine.base_mismatch(ad, str(copy)) is None  # a copy: the same config identity
    why = vllm_engine.base_mismatch(ad, str(_other_model(tmp_path, tiny_model)))
    assert why is not None and "hidden_size" in why
    hub = vllm_engine.read_adapter("h", _adapter(tmp_path / "h", "org/model-a"))
    assert vllm_engine.base_mismatch(hub, "org/model-b") is not None
    assert vllm_engine.base_mismatch(hub, "ORG/model-a") is None


def test_rank_above_max_is_refused_before_start(tmp_path: Path, tiny_model: Path, fake_vllm: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    ad = _adapter(tmp_path / "big", tiny_model, r=64)
    one_line_error([*SERVE, "--model-args", f"pretrained={tiny_model}", "--lora", f"big={ad}",
                    "--max-lora-rank", "16"], capsys, "r=64", "--max-lora-rank 16")
    assert not (fake_vllm / "pid").exists()  # never started


def test_adapter_for_other_base_is_refused_before_start(tmp_path: Path, tiny_model: Path,
                                                        fake_vllm: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ad = _adapter(tmp_path / "ad", _other_model(tmp_path, tiny_model))
    one_line_error([*SERVE, "--model-args", f"pretrained={tiny_model}", "--lora", f"x={ad}"], capsys,
                   "was made for base model", "hidden_size")
    assert not (fake_vllm / "pid").exists()


@pytest.mark.parametrize(("write", "expected"), [
    (None, "no adapter_config.json"),
    ("{not json", "not readable JSON"),
    (json.dumps({"peft_type": "LORA", "r": "8"}), "positive whole number"),
    (json.dumps({"peft_type": "IA3", "r": 8}), "LoRA adapters only"),
])
def test_broken_adapter_config_is_one_line(tmp_path: Path, tiny_model: Path, write: str | None,
                                           expected: str, fake_vllm: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    ad = tmp_path / "ad"
    ad.mkdir()
    if write is not None:
        (ad / "adapter_config.json").write_text(write)
    one_line_error([*SERVE, "--model-args", f"pretrained={tiny_model}", "--lora", f"x={ad}"], capsys,
                   expected)
    assert not (fake_vllm / "pid").exists()


# ---- the served route, against the fake server ---------------------------------------------------

def test_port_in_use_is_one_line(tiny_model: Path, fake_vllm: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        one_line_error([*SERVE, "--model-args", f"pretrained={tiny_model}", "--port", str(port)], capsys,
                       f"port {port}", "already in use")
    assert not (fake_vllm / "pid").exists()


def test_never_ready_server_is_stopped(tiny_model: Path, fake_vllm: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "never")
    error_after_progress([*SERVE, "--model-args", f"pretrained={tiny_model}", "--server-timeout", "3"],
                         capsys, "not ready after 3 s", "stopped it")
    assert (fake_vllm / "pid").exists()  # it did start
    _server_gone(fake_vllm)


def test_server_without_vllm_is_one_line(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # nothing named vllm there
    if vllm_engine.vllm_importable():
        pytest.skip("vLLM is importable here")
    error_after_progress([*SERVE, "--model-args", f"pretrained={tiny_model}", "--server-timeout", "60"],
                         capsys, "exited with status 1", "No module named")


def test_two_adapters_one_server_scored_per_name(tmp_path: Path, tiny_model: Path, fake_vllm: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    right = _adapter(tmp_path / "right", tiny_model)
    wrong = _adapter(tmp_path / "wrong", tiny_model)
    out = tmp_path / "out"
    code, _, err = run([*SERVE, "--model-args", f"pretrained={tiny_model},dtype=float32",
                             "--lora", f"right={right}", "--lora", f"wrong={wrong}", "--output-path",
                             str(out), "--log-samples", "--server-arg=--enforce-eager"], capsys)
    assert code == 0, err
    argv = json.loads((fake_vllm / "argv.json").read_text())
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--lora-modules") + 1:argv.index("--lora-modules") + 3] == \
        [f"right={right.resolve()}", f"wrong={wrong.resolve()}"]
    assert argv[-1] == "--enforce-eager" and argv[argv.index("--dtype") + 1] == "float32"
    requests = [json.loads(line) for line in (fake_vllm / "requests.jsonl").read_text().splitlines()]
    assert [r["model"] for r in requests] == ["right", "right", "wrong", "wrong"]
    assert all(r["temperature"] == 0 and isinstance(r["messages"], list) for r in requests)
    for name, _expected in (("right", "TP53"), ("wrong", "WRONG")):
        samples = list((out / name).glob("samples_termnorm_gene_name2symbol_train_*.jsonl"))
        assert len(samples) == 1, list(out.rglob("*"))
        rows = [json.loads(line) for line in samples[0].read_text().splitlines()]
        assert [r["resps"][0][0] for r in rows] == [_expected, _expected]
    _server_gone(fake_vllm)


def test_base_url_scores_a_running_server(tmp_path: Path, tiny_model: Path, fake_vllm: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from termnorm_eval.harness import served

    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model),
            "--host", "{host}", "--port", "{port}", "--lora-modules", "right=/x"]
    with served.serve(argv, ready_timeout=60) as server:
        one_line_error([*REACH, "--base-url", server.base_url,
                        "--served-model", "nope"], capsys, "serves", "not nope")
        code, _, err = run([*REACH, "--limit", "1", "--base-url",
                            server.base_url, "--served-model", "right"], capsys)
        assert code == 0, err
    assert [json.loads(x)["model"] for x in (fake_vllm / "requests.jsonl").read_text().splitlines()] == \
        ["right"]


def test_no_vllm_here_names_server_python(tiny_model: Path, fake_vllm: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    if vllm_engine.vllm_importable():
        pytest.skip("vLLM is importable here")
    one_line_error([*REACH, "--model-args", f"pretrained={tiny_model}"], capsys,
                   "vLLM is not installed in this Python", "--server-python")
    assert not (fake_vllm / "pid").exists()


def test_an_endless_model_list_is_read_no_further_than_its_cap() -> None:
    # check_served reads /v1/models of the server it scores (issue 20: bounded cost).
    with hostile_api.serve(models="endless") as server, pytest.raises(
            TermnormError, match=r"no model list from the server \(a response body over 1 MiB"):
        vllm_engine.served_models(server.url)
    [sent] = server.sent
    assert sent < vllm_engine.MODEL_LIST_BYTES + (32 << 20)  # the cap, plus loopback's socket buffers
