"""termnorm-finetune: settings, and every bad input refused in one line before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from finetune_cli import cli

from finetune import backends
from finetune.config import build_config, load_config_file
from termnorm_eval.errors import TermnormError


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("termnorm-finetune:")]
    assert len(err) == 1, err
    assert err[0].startswith("termnorm-finetune: error: ")
    return err[0]


def test_flags_override_config_file(tmp_path: Path) -> None:
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("model: some/model\noutput_dir: out\nlora-r: 8\nepochs: 2\n"
                        "directions: [term2id]\ntarget_modules: q_proj,v_proj\n", encoding="utf-8")
    cfg = build_config(cfg_file, {"epochs": 5.0, "lora_alpha": None})
    assert (cfg.lora_r, cfg.epochs, cfg.lora_alpha) == (8, 5.0, 32)  # file, flag, default
    assert cfg.directions == ["term2id"]
    assert cfg.target_modules == ["q_proj", "v_proj"]


def test_unknown_config_key_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("model: x\nlora_rank: 8\n", encoding="utf-8")
    out = tmp_path / "out"
    assert cli("--config", str(cfg_file), "-o", str(out)) == 2
    line = one_line_error(capsys)
    assert "unknown config key 'lora_rank'" in line and str(cfg_file) in line
    assert not out.exists()


def test_bad_value_type_in_config(tmp_path: Path) -> None:
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("lora_r: [1, 2]\n", encoding="utf-8")
    with pytest.raises(TermnormError, match="'lora_r'"):
        load_config_file(cfg_file)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-m", "/nonexistent/model/dir"], "model path not found"),
        (["-m", "no-such-org/no-such-model"], "cannot load base model 'no-such-org/no-such-model'"),
        (["-t", "mesh"], "no training split for terminology 'mesh'"),
        (["--directions", "term2id,name2symbol"], "has no direction 'name2symbol'"),
        (["--lora-r", "0"], "--lora-r must be an integer from 1 to"),
        (["--chat-template", "maybe"], "chat-template must be one of"),
    ],
)
def test_bad_input_is_refused_before_training(
    args: list[str], expected: str, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    base = ["-m", str(tiny_model), "-o", str(out), "--backend", "hf"]
    assert cli(*base, *args) == 2
    assert expected in one_line_error(capsys)
    assert not out.exists()


def test_output_dir_holding_something_else(tiny_model: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    assert cli("-m", str(tiny_model), "-o", str(out), "--backend", "hf") == 2
    assert "holds no termnorm-finetune run" in one_line_error(capsys)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_output_dir_holding_a_finished_run(tiny_model: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "termnorm_run.json").write_text(json.dumps({"fingerprint": {}}), encoding="utf-8")
    (out / "termnorm_manifest.json").write_text("{}", encoding="utf-8")
    assert cli("-m", str(tiny_model), "-o", str(out), "--backend", "hf", "--resume") == 2
    assert "holds a finished run" in one_line_error(capsys)


def test_unsloth_backend_without_unsloth_says_how_to_install(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if backends.unsloth_installed():
        pytest.skip("Unsloth is installed here")
    assert cli("-m", str(tiny_model), "-o", str(tmp_path / "o"), "--backend", "unsloth") == 2
    assert "termnorm-eval[gpu]" in one_line_error(capsys)


def test_auto_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "unsloth_installed", lambda: True)
    monkeypatch.setattr(backends, "cuda_available", lambda: False)
    assert backends.choose_backend("auto") == "hf"
    monkeypatch.setattr(backends, "cuda_available", lambda: True)
    assert backends.choose_backend("auto") == "unsloth"
    monkeypatch.setattr(backends, "unsloth_installed", lambda: False)
    assert backends.choose_backend("auto") == "hf"
    assert backends.choose_backend("hf") == "hf"


def test_help_documents_every_option() -> None:
    from typer.testing import CliRunner

    from finetune.cli import app
    from finetune.config import CONFIG_KEYS

    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in [*(f"--{key.replace('_', '-')}" for key in CONFIG_KEYS), "--config", "--resume", "--quiet"]:
        assert flag in result.output, flag


def test_nothing_imports_trl_transformers_or_peft_before_the_backend_is_chosen() -> None:
    """Unsloth must be imported first; the CLI path up to the backend choice must not import them."""
    import subprocess
    import sys

    code = ("import sys, finetune.cli, finetune.train; from finetune.backends import choose_backend; "
            "choose_backend('auto'); print([m for m in ('transformers', 'trl', 'peft') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
