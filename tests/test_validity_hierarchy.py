"""Hierarchy-aware wrong answers (issue 21, item 7): a live identifier of another GO/HPO term is
classed by its is_a relation to the gold term, and ``hierarchy_credit`` gives half a point for the
gold's parent or child.

Hand-picked terms of the shipped releases (HPO 2025, GO 2019), their real relatives read from the
shipped release index, through the task hooks the YAMLs name (``extract_responses`` then
``process_results``)."""

from __future__ import annotations

import gzip
from pathlib import Path

from termnorm_eval.harness import validity_names as vn
from termnorm_eval.harness.dataset import build_docs
from termnorm_eval.harness.hooks import extract_responses, make_study_hooks, process_results
from termnorm_eval.splits import release_index as ri
from termnorm_eval.splits.store import shipped_data_dir

CREDIT = vn.CREDIT


def _index(key: str) -> ri.ReleaseIndex:
    return ri.load(shipped_data_dir() / key / ri.FILE_NAME)


def _doc(key: str, item: str, direction: str = "term2id", data_dir: Path | None = None) -> dict:
    return next(d for s in ("val", "train") for d in build_docs(key, direction, s, data_dir=data_dir)
                if d["item_id"] == item)


def scored(doc: dict, response: str, hooks=None) -> tuple[str, float]:
    """The document's one category and its hierarchy credit, with the invariants every document keeps."""
    extract = hooks.extract_responses if hooks else extract_responses
    scores = process_results(doc, extract([[response]], [doc]))
    assert {k for k in scores if k.startswith(vn.PREFIX)} == set(vn.METRICS)  # every category, always
    hits = [c for c in vn.CATEGORIES if scores[vn.metric(c)] == 1.0]
    assert len(hits) == 1 and sum(scores[m] for m in vn.METRICS) == 1.0, scores
    assert hits[0] in vn.categories_for(doc["answer_format"])
    assert scores[vn.metric("correct")] == scores["exact_match"]
    credit = scores[CREDIT]
    # full credit is the strict score; half a point only for a parent or child
    assert credit == scores["exact_match"] or (credit == 0.5 and hits[0] in vn.CLOSE_CATEGORIES)
    return hits[0], credit


# Azoospermia (an HPO val document) and its relatives in the 2025 release
HPO_GOLD = "HP:0000027"
HPO_KIN = {
    "HP:0008669": "wrong_parent",  # Abnormal spermatogenesis
    "HP:0011961": "wrong_child",  # Non-obstructive azoospermia
    "HP:0000025": "wrong_ancestor",  # Functional abnormality of male internal genitalia (grandparent)
    "HP:0034812": "wrong_descendant",  # Spermiation failure (a child of the child)
    "HP:0000798": "wrong_sibling",  # Oligozoospermia: the same parent
    "HP:0001250": "wrong_unrelated",  # Seizure
}


def _check_relatives(idx: ri.ReleaseIndex, gold: str, kin: dict[str, str]) -> None:
    """The hand-picked terms are what their names say, in the shipped index."""
    for term, what in kin.items():
        assert idx.status[term] == "live", term
        rel = {"wrong_parent": term in idx.parents_of(gold),
               "wrong_child": gold in idx.parents_of(term),
               "wrong_ancestor": term in idx.ancestors(gold) and term not in idx.parents_of(gold),
               "wrong_descendant": gold in idx.ancestors(term) and gold not in idx.parents_of(term),
               "wrong_sibling": bool(set(idx.parents_of(gold)) & set(idx.parents_of(term)))
               and term not in idx.ancestors(gold) and gold not in idx.ancestors(term)}
        if what == "wrong_unrelated":
            assert not any(rel.values()) and term != gold, term
        else:
            assert rel[what], (term, what)


def test_hpo_wrong_answers_by_their_is_a_relation_to_the_gold() -> None:
    idx = _index("hpo")
    _check_relatives(idx, HPO_GOLD, HPO_KIN)
    doc = _doc("hpo", HPO_GOLD)
    got = {t: scored(doc, t) for t in HPO_KIN}
    assert got == {t: (c, 0.5 if c in ("wrong_parent", "wrong_child") else 0.0) for t, c in HPO_KIN.items()}
    assert scored(doc, HPO_GOLD) == ("correct", 1.0)
    # the partial credit follows the strict rule: the bare identifier, as the gold must be given
    assert scored(doc, "The HPO identifier is HP:0008669.") == ("wrong_parent", 0.0)
    assert scored(doc, f"The HPO identifier is {HPO_GOLD}.") == ("lenient_only", 0.0)
    assert scored(doc, " HP:0011961\n") == ("wrong_child", 0.5)  # trimmed, as strict compares
    # what is not a live term is classed as before
    assert scored(doc, "HP:1234567") == ("prompt_example", 0.0)
    assert scored(doc, "HP:9999999") == ("nonexistent", 0.0)
    assert scored(doc, "HP:0000028") == ("near_miss", 0.0)  # one digit off, no relative


def test_go_relatives_and_another_aspect() -> None:
    idx = _index("go")
    gold = "GO:0000291"  # nuclear-transcribed mRNA catabolic process, exonucleolytic (BP, val)
    kin = {"GO:0000956": "wrong_parent", "GO:0034427": "wrong_child", "GO:0006402": "wrong_ancestor",
           "GO:0070478": "wrong_descendant", "GO:0000184": "wrong_sibling", "GO:0006915": "wrong_unrelated"}
    _check_relatives(idx, gold, kin)
    assert {idx.aspect[t] for t in (gold, *kin)} == {"BP"} and idx.aspect["GO:0005634"] == "CC"
    doc = _doc("go", gold)
    assert {t: scored(doc, t)[0] for t in kin} == kin
    assert scored(doc, "GO:0005634") == ("wrong_other_aspect", 0.0)  # nucleus: another aspect first
    assert scored(doc, "GO:0000956") == ("wrong_parent", 0.5)


def test_a_relative_one_digit_off_the_gold_is_classed_by_the_relation() -> None:
    """8% of the GO/HPO gold terms' parents and children differ from them in one digit (terms made
    together got neighbouring numbers): the relation says more than the typo it might be."""
    hpo = _doc("hpo", "HP:0000037")
    assert "HP:0000032" in _index("hpo").parents_of("HP:0000037")
    assert scored(hpo, "HP:0000032") == ("wrong_parent", 0.5)
    go = _doc("go", "GO:0000322")
    assert "GO:0000322" in _index("go").parents_of("GO:0000324")
    assert scored(go, "GO:0000324") == ("wrong_child", 0.5)


def test_an_alt_id_of_a_relative_stands_for_it_without_the_credit() -> None:
    """An alt_id is classed by the term it stands for (as before); like the gold's own alt_id, which
    strict does not accept, it earns no credit."""
    idx = _index("hpo")
    alts = {idx.primary[a]: a for a in sorted(idx.primary) if idx.status[a] == "alt"}
    doc, parent = next((d, p) for d in build_docs("hpo", "term2id", "val")
                       for p in idx.parents_of(d["item_id"]) if p in alts)
    assert scored(doc, alts[parent]) == ("wrong_parent", 0.0)
    assert scored(doc, parent)[1] == 0.5


def test_study_protocol_json_answer_of_the_parent() -> None:
    hooks = make_study_hooks(None)
    doc = _doc("hpo", HPO_GOLD)
    assert scored(doc, '{"HPO_ID": "HP:0008669"}', hooks) == ("wrong_parent", 0.5)
    assert scored(doc, '{"HPO_ID": "HP:0000025"}', hooks) == ("wrong_ancestor", 0.0)


def test_genes_and_names_keep_their_categories_and_get_the_strict_score() -> None:
    """No hierarchy for HGNC; names are not judged by relation: their credit is the strict score, so
    a group row of hierarchy_credit averages every task like exact_match does."""
    gene = next(d for d in build_docs("gene", "name2id", "val") if d["answer"] != "HGNC:11998")
    assert scored(gene, "HGNC:11998") == ("wrong_real", 0.0)  # TP53's ID
    assert scored(gene, gene["answer"]) == ("correct", 1.0)
    symbol = next(d for d in build_docs("gene", "name2symbol", "val") if d["answer"] != "TP53")
    assert scored(symbol, "TP53") == ("wrong_real", 0.0)
    name = _doc("hpo", HPO_GOLD, "id2term")
    assert scored(name, "Abnormal spermatogenesis") == ("other_concept", 0.0)  # the parent's name
    assert scored(name, name["answer"]) == ("correct", 1.0)


def test_an_index_without_parents_classes_as_before(tmp_path: Path) -> None:
    """A data folder built before the parents column: wrong_real, never a guessed relation."""
    data = tmp_path / "data"
    for p in shipped_data_dir().rglob("*"):
        if p.is_file():
            dest = data / p.relative_to(shipped_data_dir())
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(p.read_bytes())
    index = data / "hpo" / ri.FILE_NAME
    text = gzip.decompress(index.read_bytes()).decode()
    before_parents = "".join("\t".join(line.split("\t")[:7]) + "\n" for line in text.splitlines())
    index.write_bytes(gzip.compress(before_parents.encode()))
    doc = _doc("hpo", HPO_GOLD, data_dir=data)
    assert doc["release"] == ri.digest_of(index) and not ri.load(index).parents
    for term in HPO_KIN:  # the grandparent HP:0000025 is one digit off the gold: a near miss as before
        want = "near_miss" if term == "HP:0000025" else "wrong_real"
        assert scored(doc, term) == (want, 0.0), term
    assert scored(doc, HPO_GOLD) == ("correct", 1.0)


def test_mention_tasks_class_wrong_answers_by_the_same_hierarchy() -> None:
    """A synonym or lay term asks for the same gold ID: its parent is a parent there too."""
    idx = _index("hpo")
    for direction in ("synonym2id", "lay2id"):
        doc = next(d for d in build_docs("hpo", direction, "val") if idx.parents_of(d["item_id"]))
        parent = idx.parents_of(doc["item_id"])[0]
        assert scored(doc, parent) == ("wrong_parent", 0.5), direction
    child = {p: c for c in sorted(_index("go").parents, reverse=True) for p in _index("go").parents_of(c)}
    go = next(d for d in build_docs("go", "synonym2id", "val") if d["item_id"] in child)
    assert scored(go, child[go["item_id"]]) == ("wrong_child", 0.5)
