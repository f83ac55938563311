"""Mention tasks' documents and the answer shown in the prompt (issue 21, items 2 and 3), on the
shipped splits."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from termnorm_eval.harness import study_protocol as sp
from termnorm_eval.harness import taskgen
from termnorm_eval.harness.dataset import build_docs, load_task_dataset
from termnorm_eval.harness.scoring import ExtractedAnswer, answer_shown, score_document
from termnorm_eval.splits import store
from termnorm_eval.terminologies import BUILTIN, SPLITS
from termnorm_eval.text import normalize_text

REPO = Path(__file__).resolve().parent.parent
MENTION_TASKS = [(t.key, d.name, s) for t in BUILTIN.values() for d in t.mention_directions for s in d.splits]
EVERY_TASK = [(t.key, d.name, s) for t in BUILTIN.values() for d in t.all_directions for s in d.splits]


@functools.cache
def _built(key: str, direction: str, split: str) -> tuple[dict[str, Any], ...]:
    return tuple(build_docs(key, direction, split))


def _docs(key: str, direction: str, split: str) -> list[dict[str, Any]]:
    return list(_built(key, direction, split))


@pytest.mark.parametrize(("key", "direction", "split"), MENTION_TASKS)
def test_one_document_per_concept_with_a_form_of_the_kind(key: str, direction: str, split: str) -> None:
    d = BUILTIN[key].direction(direction)
    records = [r for r in store.load_records(key, split) if d.mention in r["mentions"]]
    docs = _docs(key, direction, split)
    labels = {x["item_id"]: x for x in _docs(key, str(d.mirrors), split)}
    assert [doc["item_id"] for doc in docs] == [r["id"] for r in records]  # store order, nothing else
    assert len(docs) == store.read_manifest()["terminologies"][key]["mention_kinds"][d.mention][split]
    for doc, r in zip(docs, records, strict=True):
        form = r["mentions"][d.mention]
        assert doc["source"] == form and f'"{form}"' in doc["question"]  # the asked form, recorded
        assert doc["answer"] == (r["id"] if key != "gene" else r["symbol"])
        assert doc["direction"] == direction
        assert doc["answer_format"] == ("symbol" if key == "gene" else "curie")
        # lenient: the label task's answers, never the asked form itself
        assert all(normalize_text(a) != normalize_text(form) for a in doc["alternatives"])
        label = labels[doc["item_id"]]
        assert set(doc["alternatives"]) == {a for a in label["alternatives"]
                                             if normalize_text(a) != normalize_text(form)}


def test_echoing_the_asked_previous_symbol_scores_nothing() -> None:
    """prev2symbol: the asked previous symbol is lenient-correct in name2symbol (it is one of the
    gene's previous symbols) but no answer to the question that shows it."""
    docs = _docs("gene", "prev2symbol", "train")
    doc = next(x for x in docs if x["source"] in _prev_symbols(x["item_id"]))
    echo = score_document(doc, doc["source"])
    assert echo["exact_match"] == 0.0 and echo["lenient_match"] == 0.0
    assert score_document(doc, doc["answer"])["lenient_match"] == 1.0
    named = next(x for x in _docs("gene", "name2symbol", "train") if x["item_id"] == doc["item_id"])
    assert score_document(named, doc["source"])["lenient_match"] == 1.0  # the label task accepts it
    # a gene with two previous symbols: the one not asked is still a lenient answer
    two = next(x for x in docs if len(_prev_symbols(x["item_id"])) > 1)
    other = next(p for p in _prev_symbols(two["item_id"]) if p != two["source"])
    assert score_document(two, other)["lenient_match"] == 1.0


def _prev_symbols(gene_id: str) -> list[str]:
    return next(r["prev_symbols"] for r in store.load_records("gene", "train") if r["id"] == gene_id)


# --- the answer shown in the prompt ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "answer", "fmt", "shown"), [
    ('"BAF chromatin remodeling complex subunit BCL7A"', "BCL7A", "symbol", True),
    ('"Serine/threonine-protein kinase Nek7"', "NEK7", "symbol", True),  # as the lenient score compares
    ('"Vesicle-trafficking protein SEC22a"', "SEC22A", "symbol", True),
    ('"BCL7AB subunit"', "BCL7A", "symbol", False),  # not a whole token
    ('"subunit XBCL7A"', "BCL7A", "symbol", False),
    ('"T-cell receptor"', "T", "symbol", True),  # a hyphen ends a token
    ('"HLA-A antigen"', "HLA-A", "symbol", True),
    ("What is GO:0005634? e.g. GO:1234567", "GO:0005634", "curie", True),
    ("What is GO:00056341?", "GO:0005634", "curie", False),
    ("What is go:0005634?", "GO:0005634", "curie", False),  # identifiers as written
    ("What is the name of the GO term GO:0005634?", "nucleus", "name", False),
    ('"Nucleus envelope"', "nucleus", "name", True),
    ('"nucleus"', "", "name", False),
])
def test_answer_shown_is_a_whole_token(text: str, answer: str, fmt: str, shown: bool) -> None:
    assert answer_shown(text, answer, fmt) is shown


def test_gene_names_and_protein_names_that_contain_their_symbol() -> None:
    """The issue's counts: 29 of 600 training gene names and 61 protein names show their symbol."""
    counts = {d: sum(doc["answer_in_prompt"] for doc in _docs("gene", d, "train"))
              for d in ("name2symbol", "protein2symbol")}
    assert counts == {"name2symbol": 29, "protein2symbol": 61}
    bcl7a = next(x for x in _docs("gene", "name2symbol", "val") if x["answer"] == "BCL7A")
    assert bcl7a["answer_in_prompt"] is True and "subunit BCL7A" in bcl7a["question"]


def test_every_document_says_whether_its_prompt_shows_the_answer() -> None:
    for key, direction, split in EVERY_TASK:
        for doc in _docs(key, direction, split):
            shown = answer_shown(doc["question"], doc["answer"], doc["answer_format"])
            assert doc["answer_in_prompt"] is shown, (key, direction, split, doc["item_id"])


def test_shown_and_hidden_scores_split_the_documents() -> None:
    docs = _docs("gene", "name2symbol", "train")
    shown = next(x for x in docs if x["answer_in_prompt"])
    hidden = next(x for x in docs if not x["answer_in_prompt"])
    a = score_document(shown, shown["answer"])
    assert a["exact_match_shown"] == 1.0 and "exact_match_hidden" not in a and a["answer_in_prompt"] == 1.0
    b = score_document(hidden, "nothing")
    assert b["exact_match_hidden"] == 0.0 and "exact_match_shown" not in b and b["answer_in_prompt"] == 0.0


def test_study_prompt_is_judged_itself() -> None:
    """The study's GO prompt shows GO:0008150, GO:0003674 and GO:0005575 as examples: a document
    whose gold is one of them has its answer shown there, though not in the plain question."""
    hooks = sp.make_study_hooks(None)
    roots = ("GO:0008150", "GO:0003674", "GO:0005575")
    docs = [x for x in _docs("go", "term2id", "train") if x["answer"] in roots]
    assert docs and not any(x["answer_in_prompt"] for x in docs)
    for doc in docs:
        prompt = hooks.doc_to_text(doc)
        response = ExtractedAnswer("x", "x", False, prompt)
        scores = score_document(doc, response)
        assert scores["answer_in_prompt"] == 1.0 and "exact_match_shown" in scores
    plain = score_document(docs[0], "x")
    assert plain["answer_in_prompt"] == 0.0 and "exact_match_hidden" in plain


def test_form_near_label_flags_forms_that_overlap_their_label() -> None:
    """Mention documents whose form is part of a label string, holds one, shares most of its words with
    one, is a small edit of one, or a UK spelling or plural of the label: concept transfer through them
    may be string overlap. Label documents: never."""
    def flagged(key: str, direction: str, split: str) -> dict[str, bool]:
        return {d["source"]: d["form_near_label"] for d in _docs(key, direction, split)}

    for key, direction, split in EVERY_TASK:
        docs = _docs(key, direction, split)
        assert all(isinstance(d["form_near_label"], bool) for d in docs)
        if BUILTIN[key].direction(direction).mention is None:
            assert not any(d["form_near_label"] for d in docs), (key, direction)
    prev, alias = flagged("gene", "prev2symbol", "train"), flagged("gene", "alias2symbol", "train")
    assert prev["CD97"] and prev["MARCH8"]  # ADGRE5's protein "CD97 antigen", MARCHF8's "... MARCH8"
    assert alias["L27A"] and alias["CYREN-1"]  # RPL27A's "60S ribosomal protein L27a"; holds CYREN
    assert not alias["CD241"]  # RHAG's alias (the example): no label word
    # small edits of a label string (folded similarity >= NEAR_RATIO), which no synonym type says
    assert alias["BMP-1"] and alias["TAC3R"] and prev["RPS17L"]  # BMP1, TACR3, RPS17
    go = flagged("go", "synonym2id", "train")
    assert go["fibrinogen"]  # of "fibrinogen complex"
    assert go["chronological cell ageing"] and go["N-acetylglucosamine 6-O-sulphotransferase activity"]
    assert not go["HDAC complex"]  # histone deacetylase complex: other words
    hpo = flagged("hpo", "synonym2id", "train")
    assert hpo["Autistic behaviour"] and hpo["Retinal hemorrhages"]  # uk_spelling, plural_form
    assert not hpo["Renal aplasia"]  # Renal agenesis's synonym
    # rewordings: most of the form's words are the label's (word order, one word changed)
    assert go["outer kinetochore of condensed chromosome"] and hpo["Congenital retinal fold"]
    assert not go["Wolffian body development"]  # mesonephros development: other words
    # every mention task keeps a third or more of its documents asking other words (the far cells)
    for key, direction, split in MENTION_TASKS:
        docs = _docs(key, direction, split)
        assert sum(not d["form_near_label"] for d in docs) > len(docs) / 3, (key, direction, split)


def test_shown_counts_in_tasks_readme_are_the_data() -> None:
    """tasks/README.md's table of documents, shown answers and near-label forms per task equals the
    shipped data."""
    text = (REPO / "tasks" / "README.md").read_text(encoding="utf-8")
    row = re.compile(r"^\| `termnorm_([a-z0-9]+_[a-z0-9]+)_\*` \|.*$", re.M)
    rows = {m.group(1): m.group(0) for m in row.finditer(text)}
    hooks = sp.make_study_hooks(None)
    want = {}
    for t in BUILTIN.values():
        for d in t.all_directions:
            cells = []
            for split in SPLITS:
                docs = _docs(t.key, d.name, split)
                plain = sum(x["answer_in_prompt"] for x in docs)
                study = sum(answer_shown(hooks.doc_to_text(x), x["answer"], x["answer_format"]) for x in docs)
                # "documents / shown"; the study prompt's count in parentheses where it differs
                cells.append(f"{len(docs)} / {plain}" + ("" if plain == study else f" ({study})"))
            # mention documents asking a form near the label, train / val; label tasks "–"
            near = [sum(x["form_near_label"] for x in _docs(t.key, d.name, s)) for s in SPLITS]
            cells.append("–" if d.mention is None else f"{near[0]} / {near[1]}")
            want[f"{t.key}_{d.name}"] = "| " + " | ".join(cells) + " |"
    assert set(rows) == set(want)
    for k, cells in want.items():
        assert cells in rows[k], (k, rows[k], cells)


def test_every_task_yaml_lists_the_shown_metrics() -> None:
    for name in (taskgen.TEMPLATE_FILE, taskgen.STUDY_TEMPLATE_FILE):
        text = (REPO / "tasks" / name).read_text(encoding="utf-8")
        for metric in ("exact_match_shown", "exact_match_hidden", "answer_in_prompt"):
            assert f"- metric: {metric}\n" in text
    assert taskgen.HIGHER_IS_BETTER["answer_in_prompt"] is False
    assert taskgen.HIGHER_IS_BETTER["exact_match_hidden"] is True


def test_custom_dataset_carries_the_new_fields() -> None:
    dd = load_task_dataset(terminology="hpo", direction="lay2id")
    assert set(dd) == set(SPLITS)
    row = dd["val"][0]
    rec = next(r for r in store.load_records("hpo", "val") if "lay" in r["mentions"])
    assert row["item_id"] == rec["id"] and row["source"] == rec["mentions"]["lay"]
    assert row["answer_in_prompt"] is False and row["form_near_label"] is False
    assert json.dumps(row)  # plain values, as the samples log writes them


def test_readme_task_table_counts_are_the_data() -> None:
    """The README's task table: documents per split of every mention direction, and protein2symbol's."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for t in BUILTIN.values():
        for d in t.mention_directions:
            train, val = (len(_docs(t.key, d.name, s)) for s in SPLITS)
            assert f"`{d.name}` {train} / {val}" in text, (t.key, d.name)
    train, val = (len(_docs("gene", "protein2symbol", s)) for s in SPLITS)
    assert f"`protein2symbol` ({train} / {val}:" in text
    # and the sentence on forms near their label
    for words, key, direction in (("GO synonyms", "go", "synonym2id"), ("HPO synonyms", "hpo", "synonym2id"),
                                  ("lay terms", "hpo", "lay2id"), ("aliases", "gene", "alias2symbol"),
                                  ("previous symbols", "gene", "prev2symbol")):
        train, val = (sum(x["form_near_label"] for x in _docs(key, direction, s)) for s in SPLITS)
        assert f"{words}\n{train} / {val}" in text or f"{words} {train} / {val}" in text, words


@pytest.mark.parametrize(("doc", "why"), [
    ({"terminology": "mycorpus", "direction": "mention2id"}, "(a user's mentions are all test items)"),
    # an added ontology whose lay terms are all in val: its lay2id task has no training split either
    ({"terminology": "cl", "direction": "lay2id"}, "(no concept of the training split has a form of this "
                                                   "kind: every document is a held-out one)"),
])
def test_few_shot_refusal_says_why_there_is_no_training_split(doc: dict[str, str], why: str) -> None:
    from termnorm_eval.errors import TermnormError
    from termnorm_eval.harness.fewshot import NoFewshotSampler

    sampler = NoFewshotSampler([doc], rnd=0)
    assert sampler.sample(0) == []
    with pytest.raises(TermnormError) as e:
        sampler.sample(2, eval_doc=doc)
    task = f"termnorm_{doc['terminology']}_{doc['direction']}"
    assert str(e.value) == (f"{task}: --num_fewshot 2: these tasks have no training split to draw examples "
                            f"from {why}; run them zero-shot")
