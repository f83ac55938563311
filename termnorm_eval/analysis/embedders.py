"""Text -> unit vectors, from a sentence-transformers model or from a causal LM's hidden states.

Both embedders return L2-normalised float32 rows, so a dot product is the cosine similarity.
Heavy libraries are imported inside the constructors: ``termnorm --help`` must stay fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from termnorm_eval import embedding_model
from termnorm_eval.embedding_model import ModelChoice, one_line
from termnorm_eval.errors import TermnormError
from termnorm_eval.text import clean_text

Progress = Callable[[int], None]  # called with the number of texts just encoded


class Embedder(Protocol):
    name: str  # how tables and files name this embedding source

    def encode(self, texts: Sequence[str], batch_size: int, progress: Progress | None = None) -> np.ndarray:
        ...


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _length_batches(texts: Sequence[str], batch_size: int) -> tuple[np.ndarray, list[list[str]]]:
    """Batches of similar length (little padding, the main waste on short texts) and the order
    that puts the results back: ``vectors[inverse]`` is in input order. Callers pass ``clean_text``
    texts: a lone surrogate makes the tokenizer raise."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    batches = [[texts[j] for j in order[i : i + batch_size]] for i in range(0, len(texts), batch_size)]
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return inverse, batches


def _auto_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceEmbedder:
    """A sentence-transformers model: any hub id (needs the network or a cache) or a local folder.

    ``model`` None: the same model as the ``alignment`` metric (``TERMNORM_EMBEDDING_MODEL``, else
    the bundled all-MiniLM-L6-v2; see ``termnorm_eval.embedding_model``). A ``ModelChoice`` already
    resolved by another setting (``--embedder``) keeps that setting's name in errors.
    """

    def __init__(self, model: str | ModelChoice | None = None, device: str | None = None) -> None:
        choice = model if isinstance(model, ModelChoice) else embedding_model.resolve(model, "--model")
        self.name = choice.name
        self.model = embedding_model.load(choice, _auto_device(device))

    def encode(self, texts: Sequence[str], batch_size: int, progress: Progress | None = None) -> np.ndarray:
        inverse, batches = _length_batches([clean_text(t) for t in texts], batch_size)
        out = []
        for chunk in batches:
            out.append(self.model.encode(chunk, batch_size=batch_size, convert_to_numpy=True,
                                         show_progress_bar=False))
            if progress:
                progress(len(chunk))
        # renamed in sentence-transformers 6 (the old name warns); keep both for >= 3.0
        get_dim = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        dim = get_dim() or 0
        return _normalise(np.concatenate(out))[inverse] if out else np.zeros((0, dim), np.float32)


class CausalLMEmbedder:
    """The evaluated causal LM itself: mean of the last hidden states over the text's own tokens.

    No BOS/EOS or chat template is added: a token shared by every text would pull all vectors
    together and shrink every gap. A PEFT adapter is merged into the weights so that what is
    embedded is exactly the fine-tuned model. ``lm`` may be a model folder, a hub id, a ``.gguf``
    file (transformers de-quantises it) or a key of ``termnorm_eval.models`` (``smollm2``).
    """

    def __init__(self, lm: str, adapter: str | None = None, device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs: dict[str, Any] = {}
        source = lm
        from termnorm_eval import models

        if lm in models.MODELS and not Path(lm).exists():  # e.g. "smollm2": the prepared default model
            source = str(models.prepare_model(lm))
        elif lm.endswith(".gguf"):
            p = Path(lm)
            if not p.is_file():
                raise TermnormError(f"--lm {lm!r}: GGUF file not found")
            source, kwargs["gguf_file"] = str(p.parent), p.name
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs)
        except Exception as e:
            raise TermnormError(f"--lm {lm!r}: cannot load a causal LM ({one_line(e)})") from e
        if adapter is not None:
            if not (Path(adapter) / "adapter_config.json").is_file():
                raise TermnormError(f"--adapter {adapter!r}: no adapter_config.json (not a PEFT adapter)")
            from peft import PeftModel

            try:
                model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
            except Exception as e:
                raise TermnormError(
                    f"--adapter {adapter!r}: cannot apply it to {lm!r} ({one_line(e)})"
                ) from e
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # Right padding keeps every text at positions 0..n-1 whatever its batch: causal attention
        # never looks at the pads after it, so a text's vector does not depend on its neighbours.
        self.tokenizer.padding_side = "right"
        self.device = _auto_device(device)
        # The decoder stack without the LM head: its output is the final (normed) hidden state,
        # and the vocabulary projection, the costliest layer of a small model, is skipped.
        self.backbone = model.get_decoder().to(self.device).eval()
        lm_name = Path(lm).name or lm
        self.name = f"{lm_name}+{Path(adapter).name}" if adapter else lm_name

    def encode(self, texts: Sequence[str], batch_size: int, progress: Progress | None = None) -> np.ndarray:
        import torch

        inverse, batches = _length_batches([clean_text(t) for t in texts], batch_size)
        out = []
        with torch.inference_mode():
            for chunk in batches:
                enc = self.tokenizer(chunk, padding=True, add_special_tokens=False, return_tensors="pt")
                enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
                hidden = self.backbone(**enc).last_hidden_state.float()
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                out.append(pooled.cpu().numpy())
                if progress:
                    progress(len(chunk))
        return _normalise(np.concatenate(out))[inverse] if out else np.zeros((0, 0), np.float32)
