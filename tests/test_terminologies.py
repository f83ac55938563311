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
