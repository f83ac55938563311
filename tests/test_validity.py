"""Answer validity: hand-picked responses of every category through the real filter and metrics.

The responses go through the task hooks the YAMLs name (``extract_responses`` then
``process_results``), on documents of the shipped splits, classified against the shipped release
indexes (real GO 2019, HPO 2025 and HGNC releases).
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import validity_names as vn
from termnorm_eval.harness.dataset import build_docs
from termnorm_eval.harness.hooks import extract_responses, process_results
from termnorm_eval.splits import release_index as ri
from termnorm_eval.splits.store import shipped_data_dir


def _index(key: str) -> ri.ReleaseIndex:
    return ri.load(shipped_data_dir() / key / ri.FILE_NAME)


def category(doc: dict, response: str) -> str:
    filtered = extract_responses([[response]], [doc])
    scores = process_results(doc, filtered)
    kinds = vn.categories_for(doc["answer_format"])
    # every category of both kinds (groups average them over the same documents), 0 where it
    # does not apply
    assert {k for k in scores if k.startswith(vn.PREFIX)} == set(vn.METRICS)
    hits = [c for c in vn.CATEGORIES if scores[vn.metric(c)] == 1.0]
    assert len(hits) == 1 and hits[0] in kinds and sum(scores[m] for m in vn.METRICS) == 1.0, scores
    # correct is the strict score; correct + lenient_only the lenient score
    assert scores[vn.metric("correct")] == scores["exact_match"]
    assert scores[vn.metric("correct")] + scores[vn.metric("lenient_only")] == scores["lenient_match"]
    return hits[0]


def _doc(key: str, direction: str, pick=lambda d: True) -> dict:
    return next(d for d in build_docs(key, direction, "val") if pick(d))


def _ids(key: str, status: str, where=lambda i, idx: True) -> str:
    idx = _index(key)
    return next(i for i, s in sorted(idx.status.items()) if s == status and where(i, idx))


def test_go_identifier_answers_of_every_category() -> None:
    idx = _index("go")
    doc = _doc("go", "term2id", lambda d: idx.aspect.get(d["item_id"]) == "CC")
    gold = doc["answer"]
    same_aspect = _ids("go", "live", lambda i, x: x.aspect.get(i) == "CC" and _unrelated(x, gold, i))
    other_aspect = _ids("go", "live", lambda i, x: x.aspect.get(i) == "BP")
    obsolete = _ids("go", "obsolete")
    alt_of_other = _ids("go", "alt", lambda i, x: _unrelated(x, gold, x.concept(i)))
    digit = "1" if gold[-1] != "1" else "2"
    near = gold[:-1] + digit
    unused = next(f"GO:{n:07d}" for n in range(9_999_999, 0, -1) if f"GO:{n:07d}" not in idx.status)
    cases = {
        gold: "correct",
        f"  {gold}\n": "correct",  # trimmed, as the study compares
        f"The GO identifier is {gold}.": "lenient_only",
        gold.replace(":", "_"): "lenient_only",
        # GO has an is_a hierarchy: a live term of the same aspect is classed by its relation to the
        # gold (test_validity_hierarchy.py has every relation)
        same_aspect: "wrong_unrelated" if not _one_digit(same_aspect, gold) else "near_miss",
        other_aspect: "wrong_other_aspect",
        alt_of_other: ("wrong_unrelated" if idx.aspect.get(idx.concept(alt_of_other)) == "CC"
                       else "wrong_other_aspect"),
        obsolete: "obsolete",
        unused: "nonexistent",
        near: "near_miss",
        "GO:1234567": "prompt_example",  # the example the prompt shows
        "The GO identifier for this term is 1234567.": "prompt_example",  # its digits (SmolLM2's habit)
        "The GO identifier is 12345678.": "no_answer",  # other digits are not the example
        "HP:0001250": "other_terminology",
        "MONDO:0005071": "other_terminology",
        "None": "no_answer",
        '{"GO_ID": "None"}': "no_answer",
        '{"GO_ID": ': "no_answer",  # unparseable JSON, no identifier in it
        "I'm sorry, I don't know this term.": "no_answer",
        "": "no_answer",
        "Answer: 12": "no_answer",  # not an identifier of another terminology either
    }
    got = {r: category(doc, r) for r in cases}
    assert got == cases


def _unrelated(idx: ri.ReleaseIndex, gold: str, term: str) -> bool:
    """Neither the same term, an is_a ancestor or descendant of it, nor a sibling."""
    return (term != gold and term not in idx.ancestors(gold) and gold not in idx.ancestors(term)
            and set(idx.parents_of(gold)).isdisjoint(idx.parents_of(term)))


def _one_digit(a: str, b: str) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1


def test_an_alt_id_of_the_gold_term_is_lenient_and_alt_ids_of_others_are_real() -> None:
    idx = _index("go")
    alts = {idx.primary[a]: a for a in sorted(idx.primary) if idx.status[a] == "alt"}
    doc = next(d for d in build_docs("go", "term2id", "train") + build_docs("go", "term2id", "val")
               if d["item_id"] in alts)
    assert category(doc, alts[doc["item_id"]]) == "lenient_only"


def test_hpo_and_hgnc_identifiers() -> None:
    hpo = _doc("hpo", "term2id")
    assert category(hpo, "HP:1234567") == "prompt_example"
    assert category(hpo, _ids("hpo", "obsolete", lambda i, x: not _one_digit(i, hpo["answer"]))) == "obsolete"
    assert category(hpo, "GO:0005634") == "other_terminology"
    gold = hpo["answer"]
    live = _ids("hpo", "live", lambda i, x: _unrelated(x, gold, i) and not _one_digit(i, gold))
    assert category(hpo, live) == "wrong_unrelated"  # HPO has no aspects; its is_a hierarchy: no relative
    gene_doc = _doc("gene", "name2id", lambda d: d["answer"] != "HGNC:11998")
    assert category(gene_doc, "HGNC:11998") == "wrong_real"  # HGNC has no hierarchy
    gene = _doc("gene", "name2id")
    withdrawn = _ids("gene", "obsolete", lambda i, x: not _one_digit(i, gene["answer"]))
    assert category(gene, withdrawn) == "obsolete"
    assert category(gene, "HGNC:12345") == "prompt_example"
    assert category(gene, "HGNC:99999999") == "no_answer"  # too many digits: no HGNC identifier at all


def test_gene_symbol_answers() -> None:
    idx = _index("gene")
    doc = _doc("gene", "name2symbol", lambda d: d["answer"] != "TP53")
    # a previous symbol that no live gene uses now (keys are folded: the lookup ignores case)
    previous_only = next(s for s in sorted(idx.previous)
                         if s.isalnum() and s[0].isalpha() and not ri.owners(idx.symbols, s))
    assert category(doc, doc["answer"]) == "correct"
    assert category(doc, doc["answer"].lower()) == "lenient_only"
    assert category(doc, "TP53") == "wrong_real"
    assert category(doc, previous_only.upper()) == "obsolete"
    assert category(doc, "QQQZZZ9") == "nonexistent"
    assert category(doc, "None") == "no_answer"
    assert category(doc, "HP:0001250") == "other_terminology"


def test_name_answers() -> None:
    doc = _doc("go", "id2term", lambda d: d["answer"].casefold() != "nucleus")
    assert category(doc, doc["answer"]) == "correct"
    assert category(doc, doc["answer"].upper() + ".") == "lenient_only"
    assert category(doc, "nucleus") == "other_concept"
    assert category(doc, "Nucleus.") == "other_concept"
    assert category(doc, "a thing that does not exist in GO") == "not_a_name"
    assert category(doc, "None") == "no_answer"
    assert category(doc, '{"GO_term": "unknown"}') == "no_answer"
    gene = _doc("gene", "symbol2name", lambda d: d["answer"] != "tumor protein p53")
    assert category(gene, "tumor protein p53") == "other_concept"


@pytest.mark.parametrize(("key", "direction"),
                         [("go", "term2id"), ("gene", "name2symbol"), ("hpo", "id2term")])
def test_random_responses_keep_the_invariants(key: str, direction: str) -> None:
    """Shares of a task sum to one; correct = exact_match and correct + lenient_only = lenient."""
    docs = build_docs(key, direction, "val")
    golds = [d["answer"] for d in docs]
    rng = random.Random(0)
    for doc in docs[:150]:
        r = rng.choice([rng.choice(golds), doc["answer"], f"It is {doc['answer']}", "no idea", ""])
        category(doc, r)


def test_a_data_folder_without_an_index_gets_no_validity_metrics(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for p in shipped_data_dir().rglob("*"):
        if p.is_file() and p.name != ri.FILE_NAME:
            dest = data / p.relative_to(shipped_data_dir())
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(p.read_bytes())
    doc = build_docs("go", "term2id", "val", data_dir=data)[0]
    assert doc["release"] == ""
    scores = process_results(doc, extract_responses([["GO:1234567"]], [doc]))
    assert not any(k.startswith(vn.PREFIX) for k in scores) and scores["exact_match"] == 0.0


def test_documents_name_the_index_that_classifies_them() -> None:
    doc = build_docs("hpo", "term2id", "val")[0]
    path = shipped_data_dir() / "hpo" / ri.FILE_NAME
    assert doc["release"] == ri.digest_of(path) == _index("hpo").digest


def test_index_holds_the_whole_release() -> None:
    """Not just the 1,200 sampled records: every live and obsolete id, alt_ids, names, symbols."""
    go, hpo, gene = _index("go"), _index("hpo"), _index("gene")
    manifest = json.loads((shipped_data_dir() / "manifest.json").read_text())
    for key, idx in (("go", go), ("hpo", hpo), ("gene", gene)):
        counts = manifest["terminologies"][key]["release_index"]
        assert len(idx.status) == counts["live"] + counts["obsolete"] + counts["alt"]
    assert go.status["GO:0005634"] == "live" and go.aspect["GO:0005634"] == "CC"
    assert "GO:0005634" in ri.owners(go.names, "Nucleus")
    assert hpo.status["HP:0001250"] == "live" and "HP:0001250" in ri.owners(hpo.names, "seizure")
    assert ri.owners(gene.symbols, "TP53") == ("HGNC:11998",)
    assert len(go.status) > 45_000 and len(gene.status) > 45_000


def test_index_knows_the_is_a_hierarchy_of_the_release() -> None:
    """Each live GO/HPO term's is_a parents, from the same release as the records (item 7 of issue 21)."""
    from termnorm_eval.sources import mirrors
    from termnorm_eval.sources.obo import read_obo
    from termnorm_eval.splits.hierarchy import descendants

    go, hpo, gene = _index("go"), _index("hpo"), _index("gene")
    hp_terms = read_obo(mirrors.extract("hp.obo")[0]).terms
    assert hpo.parents_of("HP:0001250") == ("HP:0012638",)  # Seizure is_a Abnormal nervous system physiology
    assert hpo.parents_of("HP:0002279") == ("HP:0012638",)  # an alt_id of Seizure: its term's parents
    assert {"HP:0000118", "HP:0000001"} <= hpo.ancestors("HP:0001250")  # up to the root
    # "below" asked upwards: every descendant of Phenotypic abnormality has it among its ancestors
    below = descendants(hp_terms, "HP:0000118")
    assert below == {i for i in hpo.parents if "HP:0000118" in hpo.ancestors(i)}
    live = {t.id: t.parents for t in hp_terms if not t.obsolete}
    assert {i: hpo.parents_of(i) for i in live} == live
    # nucleus is_a intracellular membrane-bounded organelle
    assert go.parents_of("GO:0005634") == ("GO:0043231",)
    assert "GO:0005575" in go.ancestors("GO:0005634")  # cellular_component
    assert hpo.parents_of("HP:0000001") == () and gene.parents_of("HGNC:11998") == () and not gene.parents
    manifest = json.loads((shipped_data_dir() / "manifest.json").read_text())
    assert manifest["terminologies"]["hpo"]["release_index"]["is_a"] == sum(len(p) for p in live.values())


def test_index_of_an_earlier_build_without_parents_still_loads(tmp_path: Path) -> None:
    """An add-ontology output written before the parents column: every lookup but the hierarchy."""
    text = gzip.decompress((shipped_data_dir() / "hpo" / ri.FILE_NAME).read_bytes()).decode()
    old = tmp_path / ri.FILE_NAME
    without = "".join("\t".join(line.split("\t")[:7]) + "\n" for line in text.splitlines())  # parents on
    old.write_bytes(gzip.compress(without.encode()))
    idx, new = ri.load(old), _index("hpo")
    assert idx.status == new.status and idx.names == new.names and idx.parents == {}
    assert idx.ancestors("HP:0001250") == set()


def test_malformed_index_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / ri.FILE_NAME
    good = gzip.decompress((shipped_data_dir() / "hpo" / ri.FILE_NAME).read_bytes()).decode()
    lines = good.splitlines()
    lines[3] = "HP:0000003\tsomething\t\t\t\t\t"
    bad.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(TermnormError, match=rf"{bad}:4: malformed release index row"):
        ri.load(bad)
    bad.write_bytes(b"not gzip")
    with pytest.raises(TermnormError, match="not a release index"):
        ri.load(bad)


def test_study_prompt_examples_are_prompt_examples() -> None:
    """The study's prompt shows other example IDs than ours: copying one of them is prompt_example,
    and our example (not shown there) is judged as an identifier like any other."""
    from termnorm_eval.harness.hooks import make_study_hooks

    hooks = make_study_hooks(None)
    doc = _doc("go", "term2id")
    shown = hooks.doc_to_text(doc)
    assert "GO:0008150" in shown and "GO:1234567" not in shown

    def study(response: str) -> str:
        scores = process_results(doc, hooks.extract_responses([[response]], [doc]))
        return next(k for k, v in scores.items() if k.startswith(vn.PREFIX) and v == 1.0)

    assert study('{"GO_ID": "GO:0008150"}') == vn.metric("prompt_example")
    assert study('{"GO_ID": "GO:1234567"}') == vn.metric("nonexistent")
    assert study("not JSON at all") == vn.metric("no_answer")
