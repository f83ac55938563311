"""The answer-validity categories: their names and metric keys (one definition, read everywhere).

Every document's extracted answer falls into exactly one category of its answer kind; the task
emits ``validity_<category>`` = 1.0 for that category and 0.0 for every other category of both
kinds, so each metric's mean is the category's share and the shares of a task, and of a group's
row (the mean of its tasks), sum to 1. ``correct`` is the strict score and ``correct`` +
``lenient_only`` is the lenient score, on every document.

Identifier answers (GO/HPO/HGNC identifiers and gene symbols), in the order a response is tested:

* ``correct`` -- strict match (the study's rule);
* ``lenient_only`` -- right only leniently: an alt_id, a previous symbol, another spelling or an
  identifier inside a sentence;
* ``no_answer`` -- nothing extracted and no identifier of another terminology, or a refusal
  ("None", "unknown", "I don't know");
* ``other_terminology`` -- no identifier of this terminology, but one of another (an HP: ID to a GO
  question);
* ``prompt_example`` -- exactly the example identifier the prompt shows (``e.g. GO:1234567``), or,
  with no identifier in the response, its digits ("... is 1234567.");
* ``near_miss`` -- one digit substituted from the gold identifier (same length), real or not;
* ``wrong_real`` -- a live identifier (or approved/alias symbol) of another concept of the same
  terminology; for GO of the same aspect as the gold term;
* ``wrong_other_aspect`` -- GO only: a live GO identifier of another aspect;
* ``obsolete`` -- exists in the release but is obsolete (GO/HPO obsolete terms, withdrawn HGNC IDs,
  previous symbols of other genes);
* ``nonexistent`` -- well-formed, not in the release at all.

Name answers: ``correct``, ``lenient_only``, ``no_answer``, ``other_concept`` (the exact name or
synonym of another live concept), ``not_a_name`` (not a name in the release).
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "validity_"
ID_CATEGORIES: Final[tuple[str, ...]] = (
    "correct", "lenient_only", "no_answer", "other_terminology", "prompt_example", "near_miss",
    "wrong_real", "wrong_other_aspect", "obsolete", "nonexistent",
)
NAME_CATEGORIES: Final[tuple[str, ...]] = (
    "correct", "lenient_only", "no_answer", "other_concept", "not_a_name",
)
# Display order (and the stacked bars' order): best first, then the kinds of wrong.
CATEGORIES: Final[tuple[str, ...]] = tuple(
    dict.fromkeys(ID_CATEGORIES[:3] + NAME_CATEGORIES[3:] + ID_CATEGORIES[3:])
)
LABELS: Final[dict[str, str]] = {
    "correct": "correct (strict)",
    "lenient_only": "correct only leniently",
    "no_answer": "no answer",
    "other_terminology": "ID of another terminology",
    "prompt_example": "copied the prompt's example",
    "near_miss": "near miss (one digit off)",
    "wrong_real": "real ID of another concept",
    "wrong_other_aspect": "real GO ID of another aspect",
    "obsolete": "obsolete ID or previous symbol",
    "nonexistent": "nonexistent ID or symbol",
    "other_concept": "name of another concept",
    "not_a_name": "not a name in the release",
}
# The study-protocol tasks also emit this: the response is not a JSON object with the asked key.
PARSE_ERROR: Final = "parse_error"


def metric(category: str) -> str:
    """Metric key of a category (``validity_wrong_real``)."""
    if category not in LABELS:
        raise ValueError(f"unknown validity category {category!r}")
    return PREFIX + category


def categories_for(answer_format: str) -> tuple[str, ...]:
    """The categories of an answer format (``curie``/``symbol``: identifiers, ``name``: names)."""
    return NAME_CATEGORIES if answer_format == "name" else ID_CATEGORIES


METRICS: Final[tuple[str, ...]] = tuple(metric(c) for c in CATEGORIES)
