"""Answer similarity: mean cosine similarity between the model's answers and the gold answers.

The harness reports it under the metric key ``alignment`` (kept so results stay comparable across
versions). Computed once per task in the harness's aggregation step: every document contributes
``(answer, gold, model_setting)``; the aggregation loads the sentence-transformers model once per
process (cached), encodes the distinct texts in batches and averages the per-document cosines.
An empty answer (nothing extracted) scores 0: there is nothing to compare.

Which model: the task metadata ``embedding_model`` (YAML ``metadata:`` or the harness's
``--metadata '{"embedding_model": ...}'``), else ``TERMNORM_EMBEDDING_MODEL``, else the bundled
all-MiniLM-L6-v2 (``termnorm_eval.embedding_model``). A model that cannot be loaded is an
``EmbeddingModelError`` naming the setting -- never a silent 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from termnorm_eval import embedding_model
from termnorm_eval.embedding_model import METADATA_KEY, EmbeddingModelError
from termnorm_eval.text import clean_text

DEVICE_ENV_VAR = "TERMNORM_EMBEDDING_DEVICE"  # torch device of the metric's model (default: the library's)
BATCH_SIZE = 32  # measured on CPU: larger batches pad more and were slower (111 vs 145 texts/s at 128)

_MODELS: dict[str, Any] = {}  # resolved path or id -> loaded model (one load per process)


def load_model(setting: str = "") -> Any:
    """The sentence-transformers model for a metadata setting ('' = env/default), loaded once per process."""
    choice = embedding_model.resolve(setting or None, f"task metadata {METADATA_KEY}")
    if choice.spec not in _MODELS:
        _MODELS[choice.spec] = embedding_model.load(choice, os.environ.get(DEVICE_ENV_VAR) or None)
    return _MODELS[choice.spec]


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


def mean_answer_similarity(items: Sequence[Any]) -> float:
    """Harness aggregation: mean cosine over all documents of a task (batched)."""
    if not items:
        return float("nan")
    answers, golds, setting = _split(items)
    values = cosines(answers, golds, setting)
    return sum(values) / len(values)


def mean_answer_similarity_one_by_one(items: Sequence[Any]) -> float:
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
