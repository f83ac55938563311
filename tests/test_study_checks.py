"""`termnorm study` checks its inputs before the first step, and claims nothing until they are
known good (issue 20, items 2, 9-12): model_args keys the study sets, derived paths lm-eval
cannot carry, devices that do not exist, text that is not UTF-8, step folders that are links,
steps whose inputs are not there; and a step that fails records nothing and runs again next time
(item 3's study half)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from termnorm_cli import one_line_error, run

from termnorm_eval.study import records

# The smallest study: one task pair, no training, nothing after the base evaluation but the report.
BASE_ONLY = ["--terminologies", "go", "--directions", "term2id", "--no-train", "--no-lexicalization",
             "--limit", "1", "--device", "cpu", "--no-rag"]
TRAINED = ["--terminologies", "go", "--directions", "term2id", "--limit-pairs", "2", "--epochs", "1,2",
           "--limit", "1", "--device", "cpu"]


def _nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


# ------------------------------------------------------------------ item 2: model_args


@pytest.mark.parametrize(("args", "key", "owner"), [
    ("pretrained=/elsewhere", "pretrained", "--model"),
    ("dtype=float32,peft=/some/adapter", "peft", "adapter"),
    ("subfolder=other", "subfolder", "--model"),
    ("gguf_file=m.gguf", "gguf_file", "--model"),
    ("revision=v2", "revision", "--model"),
    ("delta=/other/weights", "delta", "--model"),
])
def test_hf_model_args_may_not_replace_the_model_or_the_adapter(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: str, key: str,
        owner: str) -> None:
    out = tmp_path / "o"
    line = one_line_error(["study", "--model", str(tiny_model), *BASE_ONLY, "--model-args", args,
                           "--out", str(out)], capsys, f"{key}=", owner, "model_args")
    assert "hf" in line
    _nothing_written(out)


@pytest.mark.parametrize(("key", "owner"), [("model", "--model"), ("base_url", "--base-url"),
                                            ("num_concurrent", "--num-concurrent"),
                                            ("max_retries", "--max-retries"),
                                            ("tokenizer_backend", "the study")])
def test_api_model_args_may_not_replace_what_the_study_sets(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, owner: str) -> None:
    out = tmp_path / "o"
    one_line_error(["study", "--model", "served", "--model-type", "local-chat-completions", "--base-url",
                    "http://127.0.0.1:9/v1/chat/completions", *BASE_ONLY, "--model-args", f"{key}=x",
                    "--out", str(out)], capsys, f"{key}=", owner)
    _nothing_written(out)


@pytest.mark.parametrize("key", ["pretrained", "enable_lora", "lora_local_path", "max_lora_rank"])
def test_vllm_model_args_may_not_replace_the_model_or_the_adapter(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        key: str) -> None:
    from termnorm_eval.harness import vllm_engine

    monkeypatch.setattr(vllm_engine, "vllm_distribution_problem", lambda: None)  # as on a GPU machine
    out = tmp_path / "o"
    one_line_error(["study", "--model", str(tiny_model), "--model-type", "vllm", *TRAINED, "--model-args",
                    f"{key}=x", "--out", str(out)], capsys, f"{key}=", "vllm")
    _nothing_written(out)


def test_vllm_server_model_args_and_server_args_may_not_replace_the_model(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    base = ["study", "--model", str(tiny_model), "--model-type", "vllm-server", "--server-python",
            sys.executable, *TRAINED, "--out", str(out)]
    one_line_error([*base, "--model-args", "pretrained=/elsewhere"], capsys, "pretrained=", "--model")
    one_line_error([*base, "--server-args", "--model,/elsewhere"], capsys, "--server-args", "--model",
                   "the study sets")
    one_line_error([*base, "--server-args", "--lora-modules=a=/x"], capsys, "--lora-modules")
    _nothing_written(out)


# ------------------------------------------------------------------ item 9: derived paths


def test_an_out_folder_lm_eval_cannot_carry_is_refused_before_the_first_step(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a,b"
    line = one_line_error(["study", "--model", str(tiny_model), *TRAINED, "--out", str(out)], capsys,
                          "--out", "contains a comma")
    assert "--output-dir" not in line and "train-go" in line
    _nothing_written(out)


@pytest.mark.parametrize("length", [300, 250])  # the folder's name; its lock file's, one dot and ".lock" more
def test_an_out_name_the_file_system_cannot_hold_is_one_line(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], length: int) -> None:
    one_line_error(["study", "--model", str(tiny_model), *BASE_ONLY, "--out", str(tmp_path / ("x" * length))],
                   capsys, "--out", "is longer than this file system takes")
    assert list(tmp_path.iterdir()) == []


def test_a_model_name_the_file_system_cannot_hold_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    one_line_error(["study", "--model", str(tmp_path / ("m" * 300)), *BASE_ONLY, "--out", str(out)], capsys,
                   "--model", "File name too long")
    assert not out.exists()


# ------------------------------------------------------------------ item 10: device


@pytest.mark.parametrize("device", ["nonsense", "cuda:7", "cuda", "mps", "cpu:x"])
def test_a_device_that_is_not_here_is_refused_before_the_first_step(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], device: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has that GPU")
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has mps")
    out = tmp_path / "o"
    one_line_error(["study", "--model", str(tiny_model), *BASE_ONLY, "--device", device,
                    "--out", str(out)], capsys, f"--device {device}", "available: cpu")
    _nothing_written(out)


# ------------------------------------------------------------------ item 11: nothing claimed early


def test_a_step_whose_inputs_are_missing_writes_nothing(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    one_line_error(["study", "--model", str(tiny_model), *BASE_ONLY, "--only", "report", "--out", str(out)],
                   capsys, "step report needs step base, which is not finished")
    assert not out.exists()


@pytest.mark.parametrize("how", ["flag", "yaml"])
def test_a_model_name_with_a_nul_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str) -> None:
    out = tmp_path / "o"
    if how == "flag":
        one_line_error(["study", "--model", "bad\x00name", *BASE_ONLY, "--out", str(out)], capsys, "--model")
    else:
        cfg = tmp_path / "study.yaml"
        cfg.write_text('model: "\\0"\ntrain: false\nterminologies: [go]\n')
        one_line_error(["study", "-c", str(cfg), "--out", str(out)], capsys, str(cfg), "model")
    assert not out.exists()


def test_a_model_name_that_is_no_folder_and_no_hub_id_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    one_line_error(["study", "--model", "no such model", *BASE_ONLY, "--out", str(out)], capsys,
                   "--model no such model", "hub id")
    assert not out.exists()


@pytest.mark.slow
def test_a_failed_evaluation_records_nothing_and_the_rerun_runs_it(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As an API server that answers nonsense, or a model that does not load: the harness run
    raises. The study folder that run made goes with it; nothing blocks or fakes the rerun."""
    from termnorm_eval.harness import inprocess

    out = tmp_path / "o"
    argv = ["study", "--model", str(tiny_model), *BASE_ONLY, "--out", str(out)]

    def broken(plan: object) -> None:
        raise RuntimeError("the server answered 200 without choices")

    with monkeypatch.context() as m:
        m.setattr(inprocess, "run", broken)
        code, _, err = run(argv, capsys)
    assert code == 2 and "Traceback" not in err, err
    assert not out.exists()
    assert not list(tmp_path.glob(".o.*"))  # no lock, no staged folder left beside it
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert "finished earlier" not in err
    assert records.read_record(out / "base") is not None
    # In a study folder that has finished steps, a failing step takes nothing else with it.
    with monkeypatch.context() as m:
        m.setattr(inprocess, "run", broken)
        code, _, err = run([*argv, "--limit", "2"], capsys)
    assert code == 2, err
    assert records.read_record(out / "base")["inputs"]["limit"] == 1
    assert (out / records.STUDY_FILE).is_file() and (out / "report.md").is_file()


# ------------------------------------------------------------------ item 12: text and links


def test_a_model_path_that_is_not_utf8_is_one_line(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    model = tmp_path / "m\udcff"  # the byte 0xff of a Latin-1 name, as argv decodes it
    shutil.copytree(tiny_model, model)
    out = tmp_path / "o"
    one_line_error(["study", "--model", str(model), *BASE_ONLY, "--out", str(out)], capsys, "--model",
                   "UTF-8")
    assert not out.exists()


def test_a_lone_surrogate_in_the_config_file_is_one_line(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "study.yaml"
    cfg.write_text(f"model: {json.dumps(str(tiny_model))}\ntrain: false\nterminologies: [go]\n"
                   'out: "o\\ud800"\n')
    one_line_error(["study", "-c", str(cfg)], capsys, str(cfg), "out", "UTF-8")
    assert [p.name for p in tmp_path.iterdir()] == ["study.yaml"]


def test_a_lone_surrogate_in_the_recipe_is_one_line(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text('gguf_file: "x\\ud800.gguf"\n')
    out = tmp_path / "o"
    one_line_error(["study", "--model", str(tiny_model), *TRAINED, "--recipe", str(recipe),
                    "--out", str(out)], capsys, str(recipe), "gguf_file", "UTF-8")
    assert not out.exists()


def test_a_step_folder_that_is_a_link_is_one_line_and_left_alone(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from termnorm_eval.study.config import build_config

    out = tmp_path / "o"
    argv = ["study", "--model", str(tiny_model), *BASE_ONLY, "--out", str(out)]
    out.mkdir()  # a study folder of these very settings
    cfg = build_config(None, {"model": str(tiny_model), "terminologies": "go", "directions": "term2id",
                              "train": False, "lexicalization": False, "limit": 1, "device": "cpu",
                              "rag": False, "out": str(out)})
    records.write_study_file(out, cfg.to_dict())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mine.txt").write_text("keep")
    (out / "base").symlink_to(elsewhere)
    one_line_error(argv, capsys, str(out / "base"), "symbolic link")
    assert (out / "base").is_symlink() and (elsewhere / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in out.iterdir()) == ["base", "study.json"]
