"""termnorm-finetune under hostile conditions (issue 9): two runs into one folder, settings that
train garbage, damaged model and checkpoint files, paths lm-eval cannot be given, hostile config
files. Each must end in one clear line (exit 2) with the output folder as it was before."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from finetune_cli import add_callbacks, cli, interrupt_after

from termnorm_eval import atomic

# 4 GO pairs x 5 prompts = 20 rows; batch 8 -> 3 steps per epoch, 6 steps in all (as test_finetune_train).
SETTINGS = ["--terminology", "go", "--directions", "term2id", "--limit-pairs", "4", "--epochs", "2",
            "--batch-size", "8", "--lr", "1e-3", "--save-steps", "2", "--logging-steps", "1",
            "--backend", "hf", "--seed", "7", "--quiet"]


def with_flag(flag: str, value: str) -> list[str]:
    """SETTINGS with ``flag`` set to ``value`` (replaced if SETTINGS has it)."""
    args = list(SETTINGS)
    if flag in args:
        args[args.index(flag) + 1] = value
        return args
    return [*args, flag, value]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("termnorm-finetune: error:")]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def adapter_tensors(path: Path) -> dict[str, bytes]:
    from safetensors.torch import load_file

    return {k: v.numpy().tobytes() for k, v in load_file(path / "adapter_model.safetensors").items()}


def untouched(parent: Path, name: str) -> bool:
    """Nothing of a run named ``name`` in ``parent``: no folder, no lock, no temporaries."""
    return not [p.name for p in parent.iterdir() if p.name == name or p.name.startswith(f".{name}.")]


@pytest.fixture(scope="module")
def reference_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("robust") / "reference"
    assert cli("-m", str(tiny_model), "-o", str(out), *SETTINGS) == 0
    return out


# ---------------------------------------------------------------- item 3: one writer per folder


def test_run_into_a_locked_folder_fails_at_once_naming_the_holder(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with atomic.output_lock(out.absolute(), "--output-dir"):
        t0 = time.monotonic()
        assert cli("-m", str(tiny_model), "-o", str(out), *SETTINGS) == 2
        took = time.monotonic() - t0
    line = one_line_error(capsys)
    assert f"--output-dir {out}: in use by pid {os.getpid()}" in line
    assert not out.exists()  # refused before the model was loaded or anything written
    assert took < 30


@pytest.mark.slow
def test_second_run_while_one_trains_is_refused_and_the_first_is_intact(
    reference_run: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A real second process, started (with --resume, same settings: today it trained alongside and
    both wrote the same files) while the first is between steps 2 and 3."""
    from transformers import TrainerCallback

    out = tmp_path / "shared"
    second: dict[str, Any] = {}

    class StartSecondRun(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2 and not second:
                cmd = [sys.executable, "-m", "finetune", "-m", str(tiny_model), "-o", str(out), *SETTINGS,
                       "--resume"]
                # A second run that waited for the lock would wait for this one: the timeout fails it.
                second["proc"] = subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    add_callbacks(monkeypatch, StartSecondRun())
    assert cli("-m", str(tiny_model), "-o", str(out), *SETTINGS) == 0
    proc = second["proc"]
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1 and f"in use by pid {os.getpid()}" in lines[0] and "--output-dir" in lines[0]
    # The first run finished undisturbed: its manifest and the very adapter an undisturbed run writes.
    m = json.loads((out / "termnorm_manifest.json").read_text(encoding="utf-8"))
    assert (m["seed"], m["training"]["global_steps"], m["training"]["resumed_from_step"]) == (7, 6, None)
    assert adapter_tensors(out) == adapter_tensors(reference_run)
    assert [p.name for p in tmp_path.iterdir()] == ["shared"]  # no lock or staged folder left


# ---------------------------------------------------------------- item 4: settings that train garbage


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--lr", "inf", "--learning-rate must be a finite number > 0 (got inf)"),
        ("--lr", "nan", "--learning-rate must be a finite number > 0 (got nan)"),
        ("--weight-decay", "nan", "--weight-decay must be a finite number >= 0 (got nan)"),
        ("--epochs", "nan", "--epochs must be a number in (0, 10000] (got nan)"),
        ("--epochs", "inf", "--epochs must be a number in (0, 10000] (got inf)"),
        ("--seed", "-1", "--seed must be an integer from 0 to 4294967295 (got -1)"),
        ("--seed", str(2**40), f"--seed must be an integer from 0 to 4294967295 (got {2**40})"),
        ("--batch-size", "1e20", "Invalid value for '--batch-size'"),
        ("--batch-size", str(10**20), "--batch-size must be an integer from 1 to 65536"),
        ("--warmup-ratio", "nan", "--warmup-ratio must be a number in [0, 1) (got nan)"),
        ("--target-modules", "foo_proj", "--target-modules: no layer named foo_proj in the model"),
        # PEFT silently trains only q_proj when another name matches: a typo must not pass.
        ("--target-modules", "q_proj,vproj", "--target-modules: no layer named vproj in the model"),
    ],
)
def test_bad_setting_is_one_line_and_claims_nothing(
    flag: str, value: str, expected: str, tiny_model: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    assert cli("-m", str(tiny_model), "-o", str(out), *with_flag(flag, value)) == 2
    assert expected in one_line_error(capsys)
    assert untouched(tmp_path, "out")


def test_bad_settings_in_a_config_file_get_the_same_checks(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    for text, expected in [("learning_rate: .inf\n", "config key 'learning_rate' must be a finite number"),
                           ("seed: -1\n", "config key 'seed' must be an integer from 0 to 4294967295"),
                           ("weight-decay: .nan\n", "config key 'weight-decay' must be a finite number")]:
        cfg = tmp_path / "run.yaml"
        cfg.write_text(text, encoding="utf-8")
        assert cli("-m", str(tiny_model), "-o", str(out), "--config", str(cfg), "--backend", "hf") == 2
        line = one_line_error(capsys)
        assert f"{cfg}: {expected}" in line, line
    assert untouched(tmp_path, "out")


def test_unknown_target_module_then_the_corrected_run_uses_the_same_folder(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli("-m", str(tiny_model), "-o", str(out), *with_flag("--target-modules", "qproj")) == 2
    assert "(its linear layers: down_proj, gate_proj" in one_line_error(capsys)
    assert cli("-m", str(tiny_model), "-o", str(out), *with_flag("--target-modules", "q_proj,v_proj")) == 0
    assert json.loads((out / "adapter_config.json").read_text())["target_modules"] in (
        ["q_proj", "v_proj"], ["v_proj", "q_proj"])


@pytest.mark.parametrize("damage", ["truncated", "garbage header"])
def test_damaged_model_weights_are_named_and_claim_nothing(
    damage: str, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\xff" * 8 + data[8:])
    out = tmp_path / "out"
    assert cli("-m", str(model), "-o", str(out), *SETTINGS) == 2
    assert f"base model: {weights}: " in one_line_error(capsys)
    assert untouched(tmp_path, "out")
    # Repaired, the same command goes through in the same folder.
    weights.write_bytes(data)
    assert cli("-m", str(model), "-o", str(out), *SETTINGS) == 0


def test_diverging_run_stops_with_a_clear_error_and_writes_no_adapter(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--lr 1e20 (finite, so accepted) blows the tiny model's LoRA weights up to inf in one step; the
    Trainer logged the NaN loss as 0.0 and wrote an all-NaN adapter with exit 0."""
    out = tmp_path / "out"
    assert cli("-m", str(tiny_model), "-o", str(out), *with_flag("--lr", "1e20")) == 2
    line = one_line_error(capsys)
    assert "training diverged at step" in line and "try a lower --learning-rate than 1e+20" in line
    assert "no adapter was written" in line
    assert untouched(tmp_path, "out")  # a fresh run gives the folder back: the fix can reuse it
    assert cli("-m", str(tiny_model), "-o", str(out), *SETTINGS) == 0
    assert adapter_tensors(out)


# ---------------------------------------------------------------- item 5: damaged last checkpoint


@pytest.mark.parametrize("damaged", ["trainer_state.json",  # the others are the same path, full tier only
                                     pytest.param("adapter_model.safetensors", marks=pytest.mark.slow),
                                     pytest.param("optimizer.pt", marks=pytest.mark.slow)])
def test_resume_falls_back_to_the_previous_valid_checkpoint(
    damaged: str, reference_run: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "interrupted"
    with monkeypatch.context() as m:
        add_callbacks(m, interrupt_after(4))
        assert cli("-m", str(tiny_model), "-o", str(out), *SETTINGS) == 130
    capsys.readouterr()
    ckpts = out / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir() if p.is_dir()) == ["checkpoint-2", "checkpoint-4"]
    victim = ckpts / "checkpoint-4" / damaged
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # killed while saving

    assert cli("-m", str(tiny_model), "-o", str(out), *SETTINGS, "--resume") == 0
    err = capsys.readouterr().err
    assert f"checkpoint-4 is damaged ({damaged}: " in err and "resuming from checkpoint-2 instead" in err
    m = json.loads((out / "termnorm_manifest.json").read_text(encoding="utf-8"))
    assert (m["training"]["resumed_from_step"], m["training"]["global_steps"]) == (2, 6)
    assert adapter_tensors(out) == adapter_tensors(reference_run)  # 2 steps redone, same result


# ---------------------------------------------------------------- item 12: paths lm-eval cannot take


def test_output_dir_with_a_comma_is_refused_before_training(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """lm-eval would read `peft=/x/a,b` as peft=/x/a and a stray `b`: the printed command would
    silently score another adapter."""
    out = tmp_path / "a,b"
    assert cli("-m", str(tiny_model), "-o", str(out), *SETTINGS) == 2
    line = one_line_error(capsys)
    assert f"--output-dir {out}: contains a comma" in line
    assert untouched(tmp_path, "a,b")


def test_base_model_path_with_a_comma_is_refused(tiny_model: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "tiny,v2"
    shutil.copytree(tiny_model, model)
    assert cli("-m", str(model), "-o", str(tmp_path / "out"), *SETTINGS) == 2
    assert f"--model {model}: contains a comma" in one_line_error(capsys)
    assert untouched(tmp_path, "out")


@pytest.mark.parametrize(("value", "problem"), [
    ("/m/a,b", "contains a comma"),
    ("/m/it's", "contains the character '"),
    ('/m/"x"', 'contains the character "'),
    ("/m/{x}", "contains the character {"),
    ("/m/run(1", "contains an unclosed bracket"),
    ("", "is empty"),
])
def test_model_args_refuses_what_lm_eval_would_misparse(value: str, problem: str) -> None:
    from termnorm_eval.errors import TermnormError
    from termnorm_eval.harness.runner import model_args

    with pytest.raises(TermnormError, match="^" + re.escape(f"--output-dir {value}: {problem},")):
        model_args([("pretrained", "/m/base", "--model"), ("peft", value, "--output-dir")])


def test_model_args_keeps_what_lm_eval_reads_back() -> None:
    """The string goes through lm-eval's own parser unchanged ('=' and balanced brackets are fine)."""
    from lm_eval._cli.utils import key_val_to_dict

    from termnorm_eval.harness.runner import model_args

    values = {"pretrained": "/m/run(1)/base", "peft": "/x/lr=1e-3 [a]", "gguf_file": "m.Q4.gguf"}
    built = model_args([(k, v, k) for k, v in values.items()])
    assert key_val_to_dict(built) == values


# ---------------------------------------------------------------- config files


def _bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\nmodel: *a8\n"


@pytest.mark.parametrize(("content", "expected"), [
    (bytes(range(256)) * 4, "not a text file (binary data at byte 0)"),
    ("model: caf\xe9\n".encode("latin-1"), "not UTF-8 text (invalid byte at offset 10)"),
    (b"model: " + b"[" * 10_000 + b"]" * 10_000 + b"\n", ":1: not valid YAML (nested deeper than 16 levels)"),
    (b"".join(b" " * i + b"k%d:\n" % i for i in range(1000)), "not valid YAML (nested deeper than 16"),
    (b"# " + b"x" * 2_000_000 + b"\n", "a config file holds a few settings"),
    (_bomb().encode(), ":2: not valid YAML (aliases (*name) are not allowed in a config file)"),
    (b"epochs: [" + b"1, " * 50_000 + b"1]\n", "'epochs': expected a number (got [1, 1, 1, 1, ...])"),
])
def test_hostile_config_file_is_one_short_line_within_seconds(
    content: bytes, expected: str, tmp_path: Path
) -> None:
    """In a separate process: an alias bomb used to hang (> 60 s) printing its expanded value."""
    cfg = tmp_path / "run.yaml"
    cfg.write_bytes(content)
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "finetune", "--config", str(cfg), "-o", str(out)],
                          capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert lines[0].startswith(f"termnorm-finetune: error: {cfg}") and expected in lines[0], lines[0]
    assert len(lines[0]) < 300 + len(str(cfg))
    assert took < 15  # a process start and imports; the check itself is milliseconds
    assert untouched(tmp_path, "out")
