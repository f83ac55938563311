"""Training runs on the tiny model: manifest, bitwise reproducibility, interrupt + --resume."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from finetune_cli import add_callbacks, cli, interrupt_after

from termnorm_eval.splits import store

# 4 GO pairs x 5 prompts = 20 rows; batch 8 -> 3 steps per epoch, 6 steps in all.
SETTINGS = ["--terminology", "go", "--directions", "term2id", "--limit-pairs", "4", "--epochs", "2",
            "--batch-size", "8", "--lr", "1e-3", "--save-steps", "2", "--logging-steps", "1",
            "--backend", "hf", "--seed", "7", "--quiet"]


def adapter_tensors(path: Path) -> dict[str, bytes]:
    from safetensors.torch import load_file

    return {k: v.numpy().tobytes() for k, v in load_file(path / "adapter_model.safetensors").items()}


@pytest.fixture(scope="module")
def reference_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ft") / "reference"
    assert cli("-m", str(tiny_model), "-o", str(out), *SETTINGS) == 0
    return out


def test_run_writes_a_peft_adapter_and_manifest(reference_run: Path, tiny_model: Path) -> None:
    from peft import PeftConfig

    assert PeftConfig.from_pretrained(str(reference_run)).base_model_name_or_path == str(tiny_model.resolve())
    m = json.loads((reference_run / "termnorm_manifest.json").read_text(encoding="utf-8"))
    assert m["base_model"] == str(tiny_model) and m["backend"] == "hf" and m["seed"] == 7
    data = m["data"]
    assert data["data_manifest_sha256"] == hashlib.sha256(
        (store.shipped_data_dir() / "manifest.json").read_bytes()).hexdigest()
    summary = (data["terminology"], data["directions"], data["train_pairs"], data["rows"])
    assert summary == ("go", ["term2id"], 4, 20)
    assert (data["train_forms"], data["train_form_pairs_per_kind"]) == (["label"], {})
    assert data["chat_template"] is True
    t = m["training"]
    assert t["global_steps"] == 6
    assert [p["step"] for p in t["loss_curve"]] == [1, 2, 3, 4, 5, 6]
    assert t["tokens_per_second"] > 0 and 0 <= t["padding_share"] < 1
    # 6 steps: the one after the 5 warm-up steps is timed; no GPU memory on a CPU.
    assert t["tokens_per_second_after_warmup"] > 0
    assert "peak_gpu_memory_bytes" in t and t["peak_gpu_memory_bytes"] is None
    assert m["hyperparameters"]["lora_r"] == 16 and m["library_versions"]["peft"]
    assert "--apply_chat_template" in m["lm_eval_commands"]["train"]
    assert not (reference_run / "checkpoints").exists()  # deleted once the adapter is in place


def test_same_seed_gives_a_bitwise_identical_adapter(reference_run: Path, tiny_model: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "again"
    assert cli("-m", str(tiny_model), "-o", str(out), *SETTINGS) == 0
    assert adapter_tensors(out) == adapter_tensors(reference_run)
    other = tmp_path / "other-seed"
    assert cli("-m", str(tiny_model), "-o", str(other), *SETTINGS, "--seed", "8") == 0
    assert adapter_tensors(other) != adapter_tensors(reference_run)


def test_interrupted_run_resumes_without_losing_steps(
    reference_run: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "interrupted"
    with monkeypatch.context() as m:
        add_callbacks(m, interrupt_after(4))
        assert cli("-m", str(tiny_model), "-o", str(out), *SETTINGS) == 130
    assert "--resume" in capsys.readouterr().err
    assert (out / "checkpoints" / "checkpoint-4" / "trainer_state.json").is_file()
    assert not (out / "termnorm_manifest.json").exists()
    first_losses = json.loads((out / "checkpoints" / "checkpoint-4" / "trainer_state.json")
                              .read_text(encoding="utf-8"))["log_history"]

    # Without --resume the unfinished run is protected; with other settings it is refused too.
    assert cli("-m", str(tiny_model), "-o", str(out), *SETTINGS) == 2
    assert "add --resume" in capsys.readouterr().err
    assert cli("-m", str(tiny_model), "-o", str(out), *SETTINGS, "--resume", "--lora-r", "8") == 2
    assert "differs in lora_r" in capsys.readouterr().err

    assert cli("-m", str(tiny_model), "-o", str(out), *SETTINGS, "--resume") == 0
    m = json.loads((out / "termnorm_manifest.json").read_text(encoding="utf-8"))
    assert m["training"]["resumed_from_step"] == 4 and m["training"]["global_steps"] == 6
    curve = m["training"]["loss_curve"]
    assert [p["step"] for p in curve] == [1, 2, 3, 4, 5, 6]
    assert [p["loss"] for p in curve[:4]] == [e["loss"] for e in first_losses if "loss" in e]
    # Same result as the run that was never interrupted.
    assert adapter_tensors(out) == adapter_tensors(reference_run)


@pytest.mark.slow
def test_data_parallel_with_two_processes(tiny_model: Path, tmp_path: Path) -> None:
    """Two CPU processes under torchrun (what `accelerate launch --multi_gpu` runs on GPUs):
    batches are split between them, and only the first process writes the adapter."""
    out = tmp_path / "ddp"
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "finetune",
           "-m", str(tiny_model), "-o", str(out), *SETTINGS]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "termnorm_manifest.json").read_text(encoding="utf-8"))
    # 20 rows, 8 per process and step, 2 processes: 2 steps per epoch instead of 3.
    assert (m["processes"], m["training"]["global_steps"]) == (2, 4)
    assert proc.stdout.count("adapter written to") == 1
    assert adapter_tensors(out)


def test_plain_text_rows_without_chat_template(tiny_model: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plain"
    args = ["--limit-pairs", "2", "--epochs", "1", "--chat-template", "off", "--directions", "id2term"]
    assert cli("-m", str(tiny_model), "-o", str(out), "--backend", "hf", "-q", *args) == 0
    printed = capsys.readouterr().out
    m = json.loads((out / "termnorm_manifest.json").read_text(encoding="utf-8"))
    assert m["data"]["chat_template"] is False
    # 10 rows, batch 8: 2 steps, none after the warm-up, so no steady-state figure.
    t = m["training"]
    assert t["global_steps"] == 2 and t["tokens_per_second_after_warmup"] is None
    assert t["tokens_per_second"] > 0 and t["peak_gpu_memory_bytes"] is None
    for split in ("train", "val"):
        cmd = m["lm_eval_commands"][split]
        assert cmd in printed and "--apply_chat_template" not in cmd
        assert f"--tasks termnorm_go_id2term_{split} " in cmd and "--limit 2 " in cmd


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("unsloth") is None, reason="Unsloth (extra [gpu]) not installed")
def test_unsloth_backend_adapter_loads_without_unsloth(tiny_model: Path, tmp_path: Path) -> None:
    """Unsloth in a fresh process (it patches libraries at import); the adapter it writes is a plain
    PEFT adapter that loads and generates in a process that never imports Unsloth."""
    out = tmp_path / "unsloth"
    args = ["-m", str(tiny_model), "-o", str(out), "--backend", "unsloth", "--no-load-in-4bit",
            "--directions", "term2id", "--limit-pairs", "4", "--epochs", "1", "--batch-size", "4", "-q"]
    proc = subprocess.run([sys.executable, "-m", "finetune", *args], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "termnorm_manifest.json").read_text(encoding="utf-8"))
    assert m["backend"] == "unsloth" and "unsloth" in m["library_versions"]
    code = ("import sys; from transformers import AutoModelForCausalLM; from peft import PeftModel; "
            f"m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({str(tiny_model)!r}), "
            f"{str(out)!r}); assert 'unsloth' not in sys.modules; print('ok')")
    check = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert check.stdout.strip() == "ok", check.stderr[-3000:]


def test_tokens_per_second_after_warmup_counts_only_the_later_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm-up steps' tokens and time are left out; batches built ahead of their step (the
    Trainer prefetches) are not counted before they are consumed."""
    from types import SimpleNamespace

    from finetune import progress

    clock = iter([0.0, 100.0, 102.0])  # train begin, end of the warm-up, train end
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    counts = progress.TokenCounts()
    cb = progress.ProgressCallback(counts, show=False)
    state = SimpleNamespace(global_step=0, max_steps=8, is_world_process_zero=True)
    cb.on_train_begin(None, state, None)
    k = progress.WARMUP_STEPS
    for step in range(1, k + 4):  # WARMUP_STEPS + 3 steps of 2 micro-batches each
        for _ in range(2):  # built ahead: the step's micro-batches, 10 tokens each, 1000 in warm-up
            counts.real_per_batch.append(1000 if step <= k else 10)
        cb.on_substep_end(None, state, None)
        state.global_step = step
        cb.on_step_end(None, state, None)
    counts.real_per_batch.append(99999)  # prefetched, never consumed
    cb.on_train_end(None, state, None)
    assert cb.tokens_per_second_after_warmup == pytest.approx(3 * 2 * 10 / 2.0)

    short = progress.ProgressCallback(progress.TokenCounts(), show=False)
    monkeypatch.setattr(progress.time, "perf_counter", lambda: 1.0)
    short.on_train_begin(None, SimpleNamespace(global_step=3, max_steps=8, is_world_process_zero=True), None)
    short.on_step_end(None, SimpleNamespace(global_step=8), None)  # resumed at 3: 5 steps, all warm-up
    short.on_train_end(None, None, None)
    assert short.tokens_per_second_after_warmup is None
