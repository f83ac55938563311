"""Per-document scores of the termnorm tasks (what ``process_results`` returns).

* ``exact_match`` (strict, the study's rule): the raw response, trimmed of surrounding whitespace,
  equals the gold answer -- case-sensitively for identifiers and gene symbols, case-insensitively
  for names. No extraction, no canonicalization: ``GO0034629`` or ``The ID is GO:0034629`` is wrong.
* ``lenient_match``: the *extracted* answer (``answer_of``: see ``extraction``; identifiers in
  canonical form; the whole response when it is itself an accepted answer) equals the gold answer
  or any alternative the record accepts (alt_ids, synonyms, previous symbols, ...). Names and gene
  symbols compare case- and whitespace-insensitively. Whatever strict accepts, lenient accepts.
* ``alignment``: not scored here; each document contributes ``(answer, gold, model_setting)``
  and the aggregation embeds all of them at once (see ``answer_similarity``).
* ``exact_match_<low|mid|high>``: the strict score again, emitted only under the document's
  popularity stratum, so its mean is the strict accuracy within that third of the split (a document
  without popularity, a user's mention, emits none).
* ``exact_match_shown`` / ``exact_match_hidden``: the strict score again, emitted only under
  whether the prompt the model saw shows the gold answer (``answer_shown``: the document's
  ``answer_in_prompt`` for its question; the study family's own prompt is judged itself), so a
  gain can be read without the documents a model may answer by copying.
* ``answer_in_prompt``: 1.0 when the prompt shows the gold answer, on every document: the share of
  such documents.
* ``validity_<category>``: which kind of answer it was (``validity``): 1.0 for its category, 0.0
  for every other one of both answer kinds.
* ``parse_error`` (study-protocol tasks only): the response was no JSON object with the asked key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from termnorm_eval.harness.extraction import extract
from termnorm_eval.harness.validity import validity_metrics
from termnorm_eval.harness.validity_names import PARSE_ERROR
from termnorm_eval.splits.store import STRATA
from termnorm_eval.text import clean_text, normalize_text

ANSWER_IN_PROMPT = "answer_in_prompt"  # the document field and the metric (its share)


def strict_match(response: str, gold: str, answer_kind: str) -> float:
    """The study's exact match: trimmed response vs gold; names case-insensitive."""
    got, want = response.strip(), gold.strip()
    if answer_kind == "name":
        # casefold() maps a character to 1-3 characters, so a response over 3x the gold's length can
        # never equal it: skip folding a hostile megabyte (same result, bounded cost).
        if len(got) > 3 * len(want):
            return 0.0
        return float(got.casefold() == want.casefold())
    return float(got == want)


def lenient_match(answer: str, alternatives: Sequence[str], answer_format: str) -> float:
    """Extracted (canonical) answer vs the gold answer and every accepted alternative."""
    if not answer:
        return 0.0
    if answer_format == "curie":
        return float(answer in alternatives)
    norm = normalize_text(answer)
    return float(any(norm == normalize_text(a) for a in alternatives))


def answer_shown(text: str, answer: str, answer_format: str) -> bool:
    """The gold ``answer`` appears in ``text`` (a prompt) as a whole token: not inside a longer run of
    letters and digits ("subunit BCL7A" shows BCL7A, "BCL7AB" does not). Identifiers (CURIEs) as
    written; gene symbols and names case-insensitively, as the lenient score compares them (copying
    "Nek7" from "Serine/threonine-protein kinase Nek7" is a lenient NEK7)."""
    if not answer:
        return False
    # a match needs the answer as a substring (ASCII case folded for names): most prompts fail this
    # cheaply, before a pattern is compiled per answer (IGNORECASE also matches non-ASCII look-alikes
    # such as the Kelvin sign, so the shortcut applies to ASCII text only)
    if answer_format == "curie":
        if answer not in text:
            return False
    elif text.isascii() and answer.isascii() and answer.lower() not in text.lower():
        return False
    flags = 0 if answer_format == "curie" else re.IGNORECASE
    return re.search(rf"(?<![^\W_]){re.escape(answer)}(?![^\W_])", text, flags) is not None


def shows_answer(doc: dict[str, Any], prompt: str | None = None) -> bool:
    """Whether the prompt the model saw shows the document's gold answer: the document's own flag for
    its question, or ``prompt`` (the study family's, which shows examples of its own) judged itself."""
    if prompt is None and ANSWER_IN_PROMPT in doc:
        return bool(doc[ANSWER_IN_PROMPT])
    text = (doc.get("question") or "") if prompt is None else prompt
    return answer_shown(text, doc["answer"], doc["answer_format"])


def answer_of(text: str, doc: dict[str, Any]) -> str:
    """The answer ``text`` gives: ``extract()`` of it, unless the whole trimmed text is itself an
    accepted answer that the extraction does not return.

    The extraction reads a response as an answer line (its first line, without quotes, "Name:" or a
    "The ... is" lead), which a label answered verbatim may not survive: "nuclear\nenvelope" (labels
    of older builds kept an ontology's line breaks), a label in quotes, the HGNC symbol "OK". The
    strict score compares the whole trimmed text; taking the whole text as the answer here makes the
    lenient score, the answer similarity and the validity category see what strict saw, so a
    strict-correct response is never lenient-wrong.
    """
    fmt, alternatives = doc["answer_format"], doc["alternatives"]
    answer = extract(text, fmt, doc.get("id_prefix", ""), doc.get("id_local", ""))
    whole = text.strip()
    # Only a text of about an accepted answer's length can be one: a long response is never
    # normalized here (a hostile megabyte costs nothing).
    if not whole or whole == answer or len(whole) > 4 * max(map(len, alternatives), default=0) + 64:
        return answer
    if lenient_match(answer, alternatives, fmt):
        return answer
    line = clean_text(" ".join(whole.split()))
    return line if lenient_match(line, alternatives, fmt) else answer


class ExtractedAnswer(str):
    """The filter's output: the extracted answer (what samples show) carrying the raw response.

    A ``str`` so that logged samples and any string-based tooling see the extracted answer; the
    trimmed raw text rides along in ``.raw`` for the strict score.
    """

    raw: str
    # Study-protocol tasks: True when the response is no JSON object with the asked key (the
    # study's parse error); None for the plain tasks, which ask for no JSON.
    parse_error: bool | None
    # The prompt the model saw when it is not the document's question (the study protocol's), so
    # that copying an identifier it shows is told apart from a real wrong answer.
    shown: str | None

    def __new__(cls, answer: str, raw: str, parse_error: bool | None = None,
                shown: str | None = None) -> ExtractedAnswer:
        obj = super().__new__(cls, answer)
        obj.raw = raw
        obj.parse_error = parse_error
        obj.shown = shown
        return obj

    def __reduce__(self) -> tuple[Any, ...]:  # survives pickling (multi-process gathers)
        return (ExtractedAnswer, (str(self), self.raw, self.parse_error, self.shown))


def extracted_response(response: Any, doc: dict[str, Any]) -> ExtractedAnswer:
    """The filter's output for one response: the answer it gives (``answer_of``), with the trimmed
    raw text."""
    raw = "" if response is None else str(response)
    return ExtractedAnswer(answer_of(raw, doc), raw.strip())


def score_document(doc: dict[str, Any], response: Any) -> dict[str, Any]:
    """All per-document metric values. ``response`` is the filter's output, or a plain string."""
    if not isinstance(response, ExtractedAnswer):  # e.g. a user-replaced filter: extract here
        response = extracted_response(response, doc)
    raw, answer = response.raw, str(response)
    strict = strict_match(raw, doc["answer"], doc["answer_kind"])
    lenient = lenient_match(answer, doc["alternatives"], doc["answer_format"])
    scores: dict[str, Any] = {
        "exact_match": strict,
        "lenient_match": lenient,
        "alignment": (answer, doc["answer"], doc.get("embedding_model") or ""),
    }
    if doc["stratum"] in STRATA:  # a document without popularity (a user's mention) has none
        scores[f"exact_match_{doc['stratum']}"] = strict
    scores.update(validity_metrics(doc, raw, answer, strict, lenient, response.shown))
    shown = shows_answer(doc, response.shown)
    scores[f"exact_match_{'shown' if shown else 'hidden'}"] = strict
    scores[ANSWER_IN_PROMPT] = float(shown)
    if response.parse_error is not None:
        scores[PARSE_ERROR] = float(response.parse_error)
    return scores
