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
* ``near_miss`` -- one digit substituted from the gold identifier (same length), real or not, unless
  it is an is_a relative of the gold (below);
* ``wrong_other_aspect`` -- GO only: a live GO identifier of another aspect;
* ``wrong_parent``, ``wrong_child``, ``wrong_ancestor`` (an ancestor that is not a parent),
  ``wrong_descendant``, ``wrong_sibling`` (shares an is_a parent with the gold, neither ancestor nor
  descendant), ``wrong_unrelated`` -- ontologies whose release index has the is_a parents (GO, HPO,
  added ontologies): a live identifier of another term (an alt_id: of the term it stands for), by its
  is_a relation to the gold term in the same release. A relative is classed so even when it is one
  digit off the gold (terms made together got neighbouring numbers); an unrelated one stays a
  ``near_miss``;
* ``wrong_real`` -- a live identifier of another concept where there is no hierarchy (HGNC
  identifiers; an index of an earlier build, without parents), or an approved/alias symbol of
  another gene;
* ``obsolete`` -- exists in the release but is obsolete (GO/HPO obsolete terms, withdrawn HGNC IDs,
  previous symbols of other genes);
* ``nonexistent`` -- well-formed, not in the release at all.

Name answers: ``correct``, ``lenient_only``, ``no_answer``, ``other_concept`` (the exact name or
synonym of another live concept), ``not_a_name`` (not a name in the release).

``hierarchy_credit`` (``CREDIT``), emitted with the categories: 1.0 for a strict-correct answer, 0.5
when the response is, by the strict rule (trimmed, exactly), the identifier of an is_a parent or child
of the gold term (``CLOSE_CATEGORIES``), else 0. Graded like the strict score, so that a parent in a
sentence never earns more than the gold in a sentence (which strict scores 0). Where no answer can be
a parent or child (names, gene symbols and identifiers, an index without parents) it is the strict
score: a group row then averages every task, as ``exact_match`` does, and is never below it.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "validity_"
# The is_a relations of a wrong live identifier to the gold term (ontologies with parents).
CLOSE_CATEGORIES: Final[tuple[str, ...]] = ("wrong_parent", "wrong_child")
HIERARCHY_CATEGORIES: Final[tuple[str, ...]] = (
    *CLOSE_CATEGORIES, "wrong_ancestor", "wrong_descendant", "wrong_sibling", "wrong_unrelated",
)
ID_CATEGORIES: Final[tuple[str, ...]] = (
    "correct", "lenient_only", "no_answer", "other_terminology", "prompt_example", "near_miss",
    *HIERARCHY_CATEGORIES, "wrong_real", "wrong_other_aspect", "obsolete", "nonexistent",
)
NAME_CATEGORIES: Final[tuple[str, ...]] = (
    "correct", "lenient_only", "no_answer", "other_concept", "not_a_name",
)
# Display order (and the stacked bars' order): best first (a parent or child right after the right
# answers: wrong, but close), then the kinds of wrong.
CATEGORIES: Final[tuple[str, ...]] = tuple(
    dict.fromkeys(ID_CATEGORIES[:2] + HIERARCHY_CATEGORIES[:-1] + ID_CATEGORIES[2:3] + NAME_CATEGORIES[3:]
                  + ID_CATEGORIES[3:])
)
LABELS: Final[dict[str, str]] = {
    "correct": "correct (strict)",
    "lenient_only": "correct only leniently",
    "no_answer": "no answer",
    "other_terminology": "ID of another terminology",
    "prompt_example": "copied the prompt's example",
    "near_miss": "near miss (one digit off)",
    "wrong_parent": "is_a parent of the gold term",
    "wrong_child": "is_a child of the gold term",
    "wrong_ancestor": "other ancestor of the gold term",
    "wrong_descendant": "other descendant of the gold term",
    "wrong_sibling": "sibling of the gold term (same parent)",
    "wrong_unrelated": "real ID of an unrelated term",
    "wrong_real": "real ID of another concept",
    "wrong_other_aspect": "real GO ID of another aspect",
    "obsolete": "obsolete ID or previous symbol",
    "nonexistent": "nonexistent ID or symbol",
    "other_concept": "name of another concept",
    "not_a_name": "not a name in the release",
}
# Partial credit for the gold's is_a parent or child (higher is better; see the module's docstring).
CREDIT: Final = "hierarchy_credit"
CLOSE_CREDIT: Final = 0.5
# The study-protocol tasks also emit this: the response is not a JSON object with the asked key.
PARSE_ERROR: Final = "parse_error"


def metric(category: str) -> str:
    """Metric key of a category (``validity_wrong_real``)."""
    if category not in LABELS:
        raise ValueError(f"unknown validity category {category!r}")
    return PREFIX + category


def categories_for(answer_format: str, hierarchy: bool | None = None) -> tuple[str, ...]:
    """The categories of an answer format (``curie``/``symbol``: identifiers, ``name``: names).

    ``hierarchy``: for identifiers, True leaves out ``wrong_real`` (an ontology whose index has the
    is_a parents), False the relations (genes, an index without parents); None keeps both (what a
    document of either kind may fall into)."""
    if answer_format == "name":
        return NAME_CATEGORIES
    if hierarchy is None:
        return ID_CATEGORIES
    drop = {"wrong_real"} if hierarchy else set(HIERARCHY_CATEGORIES)
    return tuple(c for c in ID_CATEGORIES if c not in drop)


METRICS: Final[tuple[str, ...]] = tuple(metric(c) for c in CATEGORIES)
