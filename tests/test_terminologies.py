"""The shared contract: directions render prompts, identifiers are found in every spelling."""

import time

import pytest

from termnorm_eval.terminologies import (
    BUILTIN,
    GENE,
    GO,
    HPO,
    id_pattern,
    ontology_terminology,
    terminology_from_dict,
)


@pytest.mark.parametrize(
    "text", ["GO:0005634", "go:0005634", "GO_0005634", "GO: 0005634", "GO0005634", "x (GO:0005634)."]
)
def test_go_id_regex_finds_every_spelling(text: str) -> None:
    m = GO.id_regex.search(text)
    assert m is not None and GO.canonical_id(m.group(1)) == "GO:0005634"


def test_id_regex_rejects_other_ontology_and_longer_numbers() -> None:
    assert HPO.id_regex.search("GO:0005634") is None
    assert GO.id_regex.search("GO:00056341") is None  # 8 digits is not a GO id
    assert GO.id_regex.search("ALGO:0005634") is None


def test_id_regex_is_the_linear_identifier_pattern() -> None:
    assert GO.id_regex is id_pattern("GO", r"\d{7}")  # one definition, shared with extraction
    # The old separator \s*[:_]?\s* was quadratic in the whitespace run: 10x the run cost ~100x.
    def cost(n: int) -> float:
        text = "GO" + " " * n + "x"
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            assert GO.id_regex.search(text) is None
            best = min(best, time.perf_counter() - t0)
        return best

    assert cost(20_000) / cost(2_000) < 40  # linear: about 10
    assert GO.id_regex.search("GO" + " " * 20_000 + ":  0005634").group(1) == "0005634"


def test_kind_is_gene_only_for_the_gene_terminology() -> None:
    assert [t.kind for t in BUILTIN.values()] == ["ontology", "ontology", "gene"]
    assert ontology_terminology("cl", "CL", "CL").kind == "ontology"
    # The manifest spelling (split manifests store it) is unchanged.
    assert GENE.to_dict()["kind"] == "gene" and GO.to_dict()["kind"] == "ontology"


def test_every_direction_has_five_templates_and_renders() -> None:
    rec = {"id": "HGNC:11998", "name": "tumor protein p53", "symbol": "TP53",
           "protein_name": "Cellular tumor antigen p53"}
    for d in GENE.directions:
        assert len(d.templates) == 5
        for v in range(5):
            assert str(rec[d.source]) in d.prompt(rec, GENE, v)
    assert GENE.direction("name2symbol").answer(rec) == "TP53"


def test_alternatives_include_lenient_fields_once() -> None:
    rec = {"id": "GO:0005634", "name": "nucleus", "alt_ids": ["GO:0005634", "GO:0000001"],
           "synonyms": ["cell nucleus"]}
    assert GO.direction("term2id").alternatives(rec) == ["GO:0005634", "GO:0000001"]
    assert GO.direction("id2term").alternatives(rec) == ["nucleus", "cell nucleus"]


def test_spec_round_trip() -> None:
    for t in BUILTIN.values():
        assert terminology_from_dict(t.to_dict()) is t
    with pytest.raises(KeyError):
        GO.direction("name2symbol")


# --- mention directions (issue 21) -----------------------------------------------------------------

def test_mention_directions_mirror_a_label_direction() -> None:
    """The API later stages build on: label directions stay ``directions``; each mention direction
    says its kind and the label direction it mirrors, reads the dotted source mentions.<kind>, and
    keeps that label direction's gold and lenient fields."""
    want = {"go": {"synonym2id": ("synonym", "term2id")},
            "hpo": {"synonym2id": ("synonym", "term2id"), "lay2id": ("lay", "term2id")},
            "gene": {"alias2symbol": ("alias", "name2symbol"), "prev2symbol": ("prev", "name2symbol")}}
    for key, term in BUILTIN.items():
        assert all(d.mention is None and d.mirrors is None for d in term.directions)
        assert {d.name: (d.mention, d.mirrors) for d in term.mention_directions} == want[key]
        assert term.all_directions == term.directions + term.mention_directions
        for d in term.mention_directions:
            label = term.direction(d.mirrors)
            assert term.direction(d.name) is d and d.label_direction == label.name == label.label_direction
            assert d.source == f"mentions.{d.mention}"
            assert (d.target, d.answer_kind, d.lenient_fields) == (label.target, label.answer_kind,
                                                                   label.lenient_fields)
            assert len(d.templates) == 5 and d.splits == ("train", "val")
    # an ontology asks a synonym with the label's own prompts: only the words asked about change
    assert GO.direction("synonym2id").templates == GO.direction("term2id").templates


def test_mention_kinds_agree_with_the_split_build() -> None:
    from finetune.config import FORM_KINDS
    from termnorm_eval.terminologies import MENTION_DIRECTIONS

    kinds = {d.mention: d.name for t in BUILTIN.values() for d in t.mention_directions}
    assert kinds == MENTION_DIRECTIONS
    assert ("label", *MENTION_DIRECTIONS) == FORM_KINDS


def test_mention_direction_reads_the_recorded_form() -> None:
    rec = {"id": "HGNC:9995", "symbol": "RHAG", "name": "Rh associated glycoprotein",
           "prev_symbols": ["RH50A", "RH50"], "alias_symbols": ["CD241"],
           "mentions": {"alias": "CD241", "prev": "RH50A"}}
    prev = GENE.direction("prev2symbol")
    assert prev.applies_to(rec) and prev.source_value(rec) == "RH50A" and prev.answer(rec) == "RHAG"
    assert prev.prompt(rec, GENE).startswith(
        'What is the current official HGNC gene symbol of the human gene whose previous symbol is "RH50A"?')
    assert GENE.direction("alias2symbol").prompt(rec, GENE, 4).startswith('"CD241" is an alias symbol')
    assert not GENE.direction("alias2symbol").applies_to({**rec, "mentions": {"prev": "RH50A"}})
    assert not GO.direction("synonym2id").applies_to({"id": "GO:0005634", "name": "nucleus", "mentions": {}})


def test_echoing_the_asked_form_is_not_a_lenient_answer() -> None:
    """Lenient answers are the label direction's minus the asked form: the previous symbol asked
    about (in any case or spacing the lenient score forgives) is no answer; the other one still is."""
    rec = {"id": "HGNC:9995", "symbol": "RHAG", "prev_symbols": ["RH50A", "RH50"],
           "mentions": {"alias": "CD241", "prev": "rh50a "}}
    assert GENE.direction("name2symbol").alternatives({**rec, "name": "x"}) == ["RHAG", "RH50A", "RH50"]
    assert GENE.direction("prev2symbol").alternatives(rec) == ["RHAG", "RH50"]
    assert GENE.direction("alias2symbol").alternatives(rec) == ["RHAG", "RH50A", "RH50"]
    go = {"id": "GO:0005634", "alt_ids": ["GO:0000001"], "mentions": {"synonym": "cell nucleus"}}
    assert GO.direction("synonym2id").alternatives(go) == ["GO:0005634", "GO:0000001"]


def test_added_ontology_gets_the_mention_directions_its_manifest_lists() -> None:
    from termnorm_eval.terminologies import with_mention_kinds

    plain = ontology_terminology("cl", "CL", "CL")
    assert plain.mention_directions == ()
    both = ontology_terminology("cl", "CL", "CL", mention_kinds={"lay": {"train": 0, "val": 4},
                                                                 "synonym": {"train": 5, "val": 6}})
    assert [(d.name, d.splits) for d in both.mention_directions] == [
        ("synonym2id", ("train", "val")), ("lay2id", ("val",))]  # no train task: no form there
    added = with_mention_kinds(plain, {"synonym": {"train": 1, "val": 1}})
    assert added.direction("synonym2id").mirrors == "term2id"
    assert with_mention_kinds(GO, {}) is GO  # built-in terminologies keep their own
    assert terminology_from_dict(plain.to_dict(), {"synonym": {"train": 1, "val": 0}}).direction(
        "synonym2id").splits == ("train",)
    with pytest.raises(ValueError, match="'alias' is no ontology mention kind"):
        ontology_terminology("cl", "CL", "CL", mention_kinds={"alias": {"train": 1}})


def test_store_reads_an_added_ontologys_mention_kinds(tmp_path) -> None:
    import json

    from termnorm_eval.errors import TermnormError
    from termnorm_eval.splits import store

    spec = ontology_terminology("cl", "CL", "CL").to_dict()
    (tmp_path / "manifest.json").write_text(json.dumps({"terminologies": {"cl": {
        "spec": spec, "mention_kinds": {"synonym": {"train": 3, "val": 2}}}}}))
    assert [d.name for d in store.terminology("cl", tmp_path).all_directions] == ["term2id", "id2term",
                                                                                   "synonym2id"]
    (tmp_path / "manifest.json").write_text(json.dumps({"terminologies": {"cl": {
        "spec": spec, "mention_kinds": ["synonym"]}}}))
    with pytest.raises(TermnormError, match=r"manifest.json: terminologies.cl: mention_kinds must be an obj"):
        store.terminology("cl", tmp_path)
