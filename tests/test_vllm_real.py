"""`termnorm eval --engine vllm-server|vllm` and `termnorm study` against the real vLLM (issues 13
and 15): runs only where vLLM is importable in this interpreter, e.g. the environment of
benchmarks/vllm_cpu_env.sh (``/work/vllm-venv/bin/python -m pytest tests/test_vllm_real.py``);
skipped elsewhere, CI included (the ~4 GB environment does not fit its time).

The real SmolLM2-135M-Instruct (prepared by ``termnorm model path``) is served with real LoRA
adapters: two on one server, each scored under its own name; the engine consistency check trains
an adapter with termnorm-finetune and compares hf (peft=) with the served vLLM and with lm-eval's
own vllm backend per document. The tiny study runs with ``model_type: vllm-server`` and
``vllm``, and its adapter's scores are compared with the hf backend's on the same documents.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from termnorm_cli import run

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                       reason="vLLM is not importable in this interpreter (see benchmarks/vllm_cpu_env.sh)"),
]
# The same server settings as the benchmark: float32 as the hf side, eager (no graph capture on CPU).
SERVER_ARGS = ["--server-arg=--enforce-eager", "--server-arg=--max-model-len=512"]


@pytest.fixture(scope="module")
def smollm2() -> Path:
    from termnorm_eval import models

    return models.prepare_model("smollm2") if not models.is_prepared("smollm2") else \
        models.prepared_path("smollm2")


@pytest.fixture(scope="module")
def small_env(monkeypatch_module: pytest.MonkeyPatch) -> None:
    monkeypatch_module.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the default 4 is a lot here


@pytest.fixture(scope="module")
def monkeypatch_module() -> pytest.MonkeyPatch:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _random_adapter(base: Path, out: Path, r: int, seed: int) -> Path:
    """A real PEFT LoRA adapter for ``base`` with random, non-zero weights (so it changes answers)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=r, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(base)
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return out


def test_two_adapters_on_one_real_server(tmp_path: Path, smollm2: Path, small_env: None,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    a = _random_adapter(smollm2, tmp_path / "a", r=8, seed=0)
    b = _random_adapter(smollm2, tmp_path / "b", r=16, seed=1)
    capsys.readouterr()
    out = tmp_path / "out"
    code, _, err = run(["eval", "--engine", "vllm-server", "--model-args",
                        f"pretrained={smollm2},dtype=float32", "--lora", f"a={a}", "--lora", f"b={b}",
                        "--served-model", "a", "--served-model", "b", "--served-model", "base",
                        "--tasks", "termnorm_gene_name2symbol_train", "--limit", "3",
                        "--output-path", str(out), "--log-samples", "--server-timeout", "600",
                        *SERVER_ARGS], capsys)
    assert code == 0, err
    responses = {}
    for name in ("a", "b", "base"):
        [f] = (out / name).glob("samples_*.jsonl")
        responses[name] = [json.loads(x)["resps"][0][0] for x in f.read_text().splitlines()]
    # Three served models, three different networks: the adapters really were applied per name.
    assert responses["a"] != responses["base"] and responses["b"] != responses["base"], responses


def test_real_server_rank_check_is_ours(tmp_path: Path, smollm2: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    big = _random_adapter(smollm2, tmp_path / "big", r=32, seed=0)
    capsys.readouterr()  # the weight-loading bar of building it
    code, _, err = run(["eval", "--engine", "vllm-server", "--model-args", f"pretrained={smollm2}",
                        "--lora", f"big={big}", "--max-lora-rank", "16", "--tasks",
                        "termnorm_gene_name2symbol_train", "--limit", "1"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("termnorm: error: adapter big"), err
    assert "r=32" in lines[0]


def test_hf_and_served_vllm_agree_per_document(tmp_path: Path, smollm2: Path) -> None:
    # The benchmark itself, small: a trained adapter (so that strict scores are not all 0), both
    # engines on the same documents, every per-document difference listed in the JSON.
    out = tmp_path / "engines"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_engines.py"),
                           "--pairs", "6", "--epochs", "15", "--limit", "6",
                           "--tasks", "termnorm_gene_name2symbol_train", "--work", str(tmp_path / "w"),
                           "--out", str(out)], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.with_suffix(".json").read_text())
    assert r["per_task"]["termnorm_gene_name2symbol_train"]["hf_exact_match"] > 0, r["per_task"]
    engines = ["vllm_server", "vllm"] if _lm_eval_vllm_backend() else ["vllm_server"]
    assert sorted(r["agreement"]) == sorted(engines)
    for name in engines:
        ag = r["agreement"][name]
        assert ag["documents"] == 6
        assert ag["same_strict_score"] == ag["documents"], json.dumps(ag["differences"], indent=1)
        assert r["speed"][name]["documents_per_s"] > 0
    assert r["speed"]["hf"]["documents_per_s"] > 0


def _lm_eval_vllm_backend() -> bool:
    from termnorm_eval.harness import vllm_engine

    return vllm_engine.vllm_distribution_problem() is None


TINY_CONFIG = REPO / "finetune" / "recipes" / "study-tiny.yaml"


@pytest.fixture(scope="module")
def tiny256(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from termnorm_eval.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny256"), seed=0, hidden=256, layers=1)


def _strict_per_doc(results_dir: Path) -> dict[tuple[str, int], float]:
    out = {}
    for f in results_dir.rglob("samples_*.jsonl"):
        task = f.name[len("samples_"):].rsplit("_", 1)[0]
        for line in f.read_text().splitlines():
            row = json.loads(line)
            out[(task, int(row["doc_id"]))] = float(row["exact_match"])
    return out


@pytest.mark.parametrize("model_type", ["vllm-server", "vllm"])
def test_the_study_through_real_vllm_scores_as_hf(
        model_type: str, tmp_path: Path, tiny256: Path, small_env: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The tiny study (one GO adapter, memorized in 20 epochs) scored through vLLM: each adapter's
    strict scores equal the hf backend's on the same documents."""
    if model_type == "vllm" and not _lm_eval_vllm_backend():
        pytest.skip("lm-eval's vllm backend cannot find the vllm distribution here")
    out = tmp_path / "s"
    extra = (["--server-args", "--enforce-eager,--max-model-len=512"] if model_type == "vllm-server"
             else ["--model-args", "enforce_eager=True,max_model_len=512"])
    code, _, err = run(["study", "-c", str(TINY_CONFIG), "--model", str(tiny256), "--model-type", model_type,
                        "--epochs", "20", "--no-lexicalization", "--out", str(out), *extra], capsys)
    assert code == 0, err
    vllm_scores = _strict_per_doc(out / "eval-go" / "results")
    assert len(vllm_scores) == 8 and sum(vllm_scores.values()) > 0, vllm_scores  # train: memorized
    hf_out = tmp_path / "hf"
    code, _, err = run(["eval", "--model-args", f"pretrained={tiny256},dtype=float32", "--lora",
                        str(out / "train-go" / "adapter"), "--tasks",
                        "termnorm_go_term2id_train,termnorm_go_term2id_val", "--limit", "4",
                        "--apply-chat-template", "--log-samples", "--output-path", str(hf_out)], capsys)
    assert code == 0, err
    assert _strict_per_doc(hf_out) == vllm_scores
