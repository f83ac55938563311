"""The causal-LM embedding path (tiny model: plumbing, not meaning) and a PEFT adapter on top."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from termnorm_eval.analysis.embedders import CausalLMEmbedder
from termnorm_eval.cli import main
from termnorm_eval.errors import TermnormError

TEXTS = ["GO:0005634", "nucleus", "tumor protein p53", "TP53", "Abnormality of the nervous system"]


@pytest.fixture(scope="module")
def lora_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with non-zero random weights, so it really changes the hidden states."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    out = tmp_path_factory.mktemp("adapter")
    get_peft_model(model, cfg).save_pretrained(out)
    return out


def test_vectors_are_unit_length_and_batch_independent(tiny_model: Path) -> None:
    emb = CausalLMEmbedder(str(tiny_model), device="cpu")
    batched = emb.encode(TEXTS, batch_size=8)
    assert batched.shape[0] == len(TEXTS)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    # One at a time (no padding) must give the same vectors as a padded batch.
    single = np.concatenate([emb.encode([t], batch_size=1) for t in TEXTS])
    assert np.allclose(batched, single, atol=1e-5)
    # Distinct texts get distinct vectors (the pooling really reads the tokens).
    assert (batched @ batched.T)[~np.eye(len(TEXTS), dtype=bool)].max() < 0.9999


def test_adapter_changes_the_embedding(tiny_model: Path, lora_adapter: Path) -> None:
    base = CausalLMEmbedder(str(tiny_model), device="cpu").encode(TEXTS, batch_size=8)
    tuned_emb = CausalLMEmbedder(str(tiny_model), str(lora_adapter), device="cpu")
    tuned = tuned_emb.encode(TEXTS, batch_size=8)
    assert tuned_emb.name == f"{tiny_model.name}+{lora_adapter.name}"
    assert not np.allclose(base, tuned, atol=1e-4)


def test_bad_lm_and_adapter_paths(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(TermnormError, match=r"--adapter .*adapter_config\.json"):
        CausalLMEmbedder(str(tiny_model), str(tmp_path))
    with pytest.raises(TermnormError, match=r"--lm .*cannot load"):
        CausalLMEmbedder(str(tmp_path / "missing-model"))
    with pytest.raises(TermnormError, match="GGUF file not found"):
        CausalLMEmbedder(str(tmp_path / "model.gguf"))


def test_cli_with_lm_and_adapter_on_shipped_split(tiny_model: Path, lora_adapter: Path, tmp_path: Path,
                                                  capsys) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["lexicalization", "-t", "gene", "--limit", "30", "--lm", str(tiny_model),
              "--adapter", str(lora_adapter), "--center", "--out", str(out)])
    assert exc.value.code in (0, None)
    assert "gene name<->symbol" in capsys.readouterr().out
    data = json.loads((out / "alignment.json").read_text())
    name = f"{tiny_model.name}+{lora_adapter.name}"
    assert data["embedders"] == [name] and data["center"] is True
    assert {r["embedder"] for r in data["rows"]} == {name, f"{name} (centered)"}
    data["rows"] = [r for r in data["rows"] if r["embedder"] == name]
    titles = {(r["title"], r["split"]) for r in data["rows"]}
    assert titles == {(t, s) for t in ("gene name<->symbol", "gene name<->HGNC ID", "protein name<->symbol")
                      for s in ("train", "val")}
    assert all(r["n"] == 30 and -1 <= r["random_cos"] <= 1 and 0 < r["mrr"] <= 1 for r in data["rows"])
    assert (out / "alignment.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
