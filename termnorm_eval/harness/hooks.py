"""The functions the task YAMLs reach through ``!function utils.<name>``.

Each task folder has a thin generated ``utils.py`` that re-exports these and binds its data folder
(``make_loader``). Nothing here registers metrics or filters with the harness: a ``utils.py`` is
loaded by path, possibly several times, and registering twice raises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from termnorm_eval.harness.answer_similarity import mean_answer_similarity
from termnorm_eval.harness.dataset import load_task_dataset
from termnorm_eval.harness.rag import process_rag_results
from termnorm_eval.harness.scoring import ExtractedAnswer, extracted_response, score_document
from termnorm_eval.harness.study_protocol import make_study_hooks
from termnorm_eval.text import clean_text

__all__ = ["alignment", "extract_responses", "make_loader", "make_study_hooks", "process_rag_results",
           "process_results"]


def extract_responses(resps: Sequence[Any], docs: Sequence[dict[str, Any]]) -> list[ExtractedAnswer]:
    """Filter (``function: custom``): per document the extracted answer, carrying the raw text.

    ``resps`` holds one list of generations per document; the first one counts (greedy decoding
    produces one).
    """
    out = []
    for resp, doc in zip(resps, docs, strict=True):
        if isinstance(resp, list) and resp and isinstance(resp[0], str):
            # in place: the harness logs these same lists (--log_samples), and its JSON writer
            # fails on a lone surrogate that an API model passed through
            resp[0] = clean_text(resp[0])
        first = resp[0] if isinstance(resp, (list, tuple)) and resp else resp
        out.append(extracted_response(first if first != [] else "", doc))
    return out


def process_results(doc: dict[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    return score_document(doc, results[0] if results else "")


# Aggregation of the ``alignment`` metric (answer similarity): the task YAMLs name it
# ``utils.alignment``, after the metric key, which stays stable.
alignment = mean_answer_similarity


def make_loader(data_dir: str | Path | None, rag: bool = False) -> Callable[..., Any]:
    """A ``custom_dataset`` function reading the splits of ``data_dir`` (None: the shipped splits); with
    ``rag``, the retrieval-augmented documents of the termnorm-rag_* tasks."""

    def load_dataset(**kwargs: Any) -> Any:
        kwargs.setdefault("data_dir", data_dir)
        kwargs["rag"] = rag  # the family decides, never a --metadata key
        return load_task_dataset(**kwargs)

    return load_dataset
