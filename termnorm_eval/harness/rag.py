"""Retrieval-augmented documents and scores (the ``termnorm-rag_*`` tasks).

A RAG document is the plain document of the same task with a block of candidates before the
question::

    Candidate GO terms from a search (the right one may be missing):
    - GO:0000001 mitochondrion inheritance
    - ...
    What is the GO identifier for the GO term "..."? ...
    Answer:

The candidates are the first ``k`` concepts a retriever ranked for the asked form (``splits.rag``:
computed at build time with the form held out), shown in a seeded order (``splits.rag.shown_order``),
never with the gold added: when the retriever missed it, the right answer is not there. Each line
is the answer the task wants and the concept's label, from the release index: ``<id> <label>`` for
identifier answers (genes: ``HGNC:11998 tumor protein p53``, the approved name), ``<symbol>
<approved name>`` for symbol answers (``TP53 tumor protein p53``).

Only ``input`` (what the model reads) changes: ``question`` stays the plain question, so the validity
category ``prompt_example`` keeps its meaning (a picked wrong candidate is a real wrong identifier,
classed as such, not the prompt's example). The ``answer_in_prompt`` score (and ``exact_match_shown``
/ ``_hidden``) judges the prompt the model saw: shown when the question shows the gold or a
candidate line is the gold (the document's own ``answer_in_prompt`` field stays the question's).

Scores (``process_rag_results``): everything ``score_document`` gives, plus

* ``candidate_recall``: the gold is among the shown candidates (the ceiling of a model that only picks);
* ``picked_wrong_candidate``: not lenient-correct, but the answer is one of the candidates;
* ``answered_outside``: not lenient-correct and no candidate.

With ``lenient_match`` the last two sum to 1 on every document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness.scoring import (
    ANSWER_IN_PROMPT,
    ExtractedAnswer,
    extracted_response,
    lenient_match,
    score_document,
    shows_answer,
)
from termnorm_eval.splits import rag as rag_files
from termnorm_eval.terminologies import Direction, Terminology, input_text

CANDIDATES = "candidates"
GOLD_IN_CANDIDATES = "gold_in_candidates"
RETRIEVER = "retriever"
RAG_K = "rag_k"
# the extra document fields and their Arrow types (``dataset.RAG_FEATURE_TYPES``)
FEATURES = {CANDIDATES: ["string"], GOLD_IN_CANDIDATES: "bool", RETRIEVER: "string", RAG_K: "int64"}
CANDIDATE_RECALL = "candidate_recall"
PICKED_WRONG = "picked_wrong_candidate"
OUTSIDE = "answered_outside"
METRICS: tuple[str, ...] = (CANDIDATE_RECALL, PICKED_WRONG, OUTSIDE)
HIGHER_IS_BETTER = {CANDIDATE_RECALL: True, PICKED_WRONG: False, OUTSIDE: False}


@dataclass(frozen=True)
class RagSetting:
    """What a RAG task's documents are made with (hashable: part of the dataset cache key)."""

    candidates: rag_files.Candidates
    k: int


def rag_setting(key: str, direction: Direction, data_dir: str | Path | None,
                metadata: Mapping[str, Any]) -> RagSetting:
    """The candidates and ``k`` of a RAG task from its metadata: ``rag_k`` (1 to ``splits.rag.RANKED``;
    default the candidates' own ``k``) and ``rag_candidates`` (a folder of another retriever's
    candidates, ``termnorm retrieve candidates``; default the data folder's own)."""
    if not rag_files.retrievable(direction):
        raise TermnormError(f"direction {direction.name!r}: no retrieval-augmented task (a retriever "
                            "answers identifiers and symbols, not from an identifier)")
    folder = metadata.get("rag_candidates")
    if folder is not None and (not isinstance(folder, str) or not folder):
        raise TermnormError(f"metadata rag_candidates: expected a folder path, got {folder!r}")
    found = rag_files.locate(key, data_dir, Path(folder).expanduser() if folder else None)
    k = metadata.get(RAG_K)
    if k is None:
        return RagSetting(found, found.k)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= rag_files.RANKED:
        raise TermnormError(f"metadata {RAG_K}: expected an integer from 1 to {rag_files.RANKED}, got {k!r}")
    return RagSetting(found, k)


def header(term: Terminology) -> str:
    noun = "genes" if term.kind == "gene" else "terms"
    return f"Candidate {term.label} {noun} from a search (the right one may be missing):\n"


def candidate_line(concept: str, answer_format: str,
                   display: Mapping[str, tuple[str, str]]) -> tuple[str, str]:
    """(the answer a candidate stands for, its line without the bullet)."""
    symbol, label = display.get(concept, ("", ""))
    answer = symbol if answer_format == "symbol" else concept
    return answer, " ".join(p for p in (answer, label) if p)


def make_rag_doc(doc: dict[str, Any], ranked: Sequence[str], *, k: int, seed: int, term: Terminology,
                 display: Mapping[str, tuple[str, str]], retriever: str) -> dict[str, Any]:
    """The RAG document of a plain one (``dataset.make_doc``): the first ``k`` of ``ranked`` (concept
    ids, best first) in the seeded order, shown before the question; ``display``: the release index's
    symbols and labels (``splits.rag.display_rows``); ``retriever``: its identity digest."""
    shown = rag_files.shown_order(list(ranked[:k]), seed, doc["item_id"], doc["direction"])
    lines = [candidate_line(c, doc["answer_format"], display) for c in shown]
    answers = [a for a, _ in lines]
    listed = "".join(f"- {text}\n" for _, text in lines) if lines else "(no candidates found)\n"
    block = header(term) + listed
    return {
        **doc,
        "input": block + input_text(doc["question"]),
        CANDIDATES: answers,
        GOLD_IN_CANDIDATES: doc["answer"] in answers,
        RETRIEVER: retriever,
        RAG_K: k,
    }


def process_rag_results(doc: dict[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    """``score_document`` plus the RAG shares (module docstring)."""
    response = results[0] if results else ""
    if not isinstance(response, ExtractedAnswer):
        response = extracted_response(response, doc)
    scores = score_document(doc, response)
    # the prompt the model saw shows the gold when its question does or a candidate line is the gold
    shown = shows_answer(doc) or bool(doc[GOLD_IN_CANDIDATES])
    for side in ("shown", "hidden"):
        scores.pop(f"exact_match_{side}", None)
    scores[f"exact_match_{'shown' if shown else 'hidden'}"] = scores["exact_match"]
    scores[ANSWER_IN_PROMPT] = float(shown)
    right = bool(scores["lenient_match"])
    picked = not right and bool(lenient_match(str(response), doc[CANDIDATES], doc["answer_format"]))
    scores[CANDIDATE_RECALL] = float(doc[GOLD_IN_CANDIDATES])
    scores[PICKED_WRONG] = float(picked)
    scores[OUTSIDE] = float(not right and not picked)
    return scores
