"""Strict and lenient see the same answer (issue 20, item 6): a response that is strict-correct is
never lenient-wrong, whatever the gold label holds.

Labels with line breaks, tabs or control characters came verbatim from OBO/JSON ontologies (the
readers now clean them; results and splits built before may still hold them). The name extraction
takes the first line of a response, so an API model answering such a label exactly scored strict
1.0 and lenient 0.0, and the validity shares no longer added up to the lenient score. Responses go
through the hooks the task YAMLs name (the filter, then ``process_results``) on real documents.
"""

from __future__ import annotations

import pytest

from termnorm_eval.harness import validity_names as vn
from termnorm_eval.harness.dataset import build_docs
from termnorm_eval.harness.hooks import extract_responses, make_study_hooks, process_results
from termnorm_eval.harness.study_protocol import study_prompt
from termnorm_eval.terminologies import BUILTIN

# A GO name with each separator an ontology file may carry inside a label.
LABELS = {
    "newline": "nuclear\nenvelope",
    "CRLF": "nuclear\r\nenvelope",
    "tab": "nuclear\tenvelope",
    "U+2028": "nuclear\u2028envelope",
    "U+2029": "nuclear\u2029envelope",
    "NEL": "nuclear\x85envelope",
    "ESC": "nuclear\x1b envelope",
    "trailing newline": "nuclear envelope\n",
}


def _doc(label: str) -> dict:
    """A real GO id2term document whose gold name is ``label`` (as a build before the readers
    cleaned labels could hold it)."""
    doc = dict(build_docs("go", "id2term", "val")[0])
    return doc | {"answer": label, "alternatives": [label]}


def _scores(doc: dict, response: str) -> dict:
    return process_results(doc, extract_responses([[response]], [doc]))


def _consistent(scores: dict) -> None:
    assert scores["exact_match"] <= scores["lenient_match"], scores
    shares = {c: scores[vn.metric(c)] for c in vn.CATEGORIES}
    assert sum(shares.values()) == 1.0
    assert shares["correct"] == scores["exact_match"]
    assert shares["correct"] + shares["lenient_only"] == scores["lenient_match"], scores


@pytest.mark.parametrize("label", LABELS.values(), ids=LABELS.keys())
def test_the_label_answered_verbatim_is_right_both_ways(label: str) -> None:
    doc = _doc(label)
    scores = _scores(doc, label)  # what an API model that copies the label returns
    assert scores["exact_match"] == 1.0 and scores["lenient_match"] == 1.0
    _consistent(scores)
    # the answer the samples show and the answer similarity embeds: the label, not its first line
    assert scores["alignment"][0] == " ".join(label.split())
    upper = _scores(doc, label.upper())  # names: case-insensitive in both scores
    assert upper["exact_match"] == upper["lenient_match"] == 1.0
    one_line = _scores(doc, " ".join(label.split()))  # lenient: whitespace-insensitive
    assert one_line["lenient_match"] == 1.0
    _consistent(one_line)
    first_line = _scores(doc, "nuclear")  # where an hf model's generation stops (at the newline)
    assert first_line["exact_match"] == first_line["lenient_match"] == 0.0
    _consistent(first_line)


def test_a_first_line_answer_followed_by_an_explanation_still_counts_leniently() -> None:
    doc = _doc("nuclear envelope")
    scores = _scores(doc, "Nuclear envelope\nThe double membrane around the nucleus.")
    assert scores["exact_match"] == 0.0 and scores["lenient_match"] == 1.0
    _consistent(scores)


@pytest.mark.parametrize("label", [
    '"Ring" chromosome',  # quotes the extraction strips
    "Name: a label that starts like an answer prefix",
    "The answer is this label",  # read as a sentence "The ... is X."
    "label ending in a period.",
])
def test_labels_the_extraction_reads_differently_are_right_when_answered_verbatim(label: str) -> None:
    scores = _scores(_doc(label), label)
    assert scores["exact_match"] == scores["lenient_match"] == 1.0
    _consistent(scores)


def test_a_symbol_the_extraction_skips_is_right_when_answered_verbatim() -> None:
    """"OK" is an HGNC symbol (the OK blood group gene) and a word the symbol extraction skips."""
    doc = dict(build_docs("gene", "name2symbol", "val")[0])
    doc |= {"answer": "OK", "alternatives": ["OK"]}
    scores = _scores(doc, "OK")
    assert scores["exact_match"] == scores["lenient_match"] == 1.0
    _consistent(scores)


@pytest.mark.parametrize("label", [LABELS["newline"], LABELS["U+2028"], LABELS["tab"]])
def test_study_protocol_json_value_with_the_label(label: str) -> None:
    import json

    doc = _doc(label)
    hooks = make_study_hooks(None)
    key = study_prompt(BUILTIN["go"], "id2term").key
    filtered = hooks.extract_responses([[json.dumps({key: label})]], [doc])
    scores = process_results(doc, filtered)
    assert scores["exact_match"] == scores["lenient_match"] == 1.0 and scores["parse_error"] == 0.0
    _consistent(scores)
