"""Answer extraction and per-document scoring on hostile model outputs."""

from __future__ import annotations

import pickle

import pytest

from termnorm_eval.harness.extraction import answer_line, extract
from termnorm_eval.harness.scoring import (
    ExtractedAnswer,
    extracted_response,
    lenient_match,
    score_document,
    strict_match,
)
from termnorm_eval.terminologies import GENE, GO, HPO

GO_ARGS = ("curie", GO.id_prefix, GO.id_local)
HP_ARGS = ("curie", HPO.id_prefix, HPO.id_local)
HGNC_ARGS = ("curie", GENE.id_prefix, GENE.id_local)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("GO:0005634", "GO:0005634"),
        ("GO_0005634", "GO:0005634"),
        ("go:0005634", "GO:0005634"),
        ("GO: 0005634", "GO:0005634"),
        ("GO0005634", "GO:0005634"),
        (" The GO identifier of nucleus is GO:0005634.", "GO:0005634"),
        ('{"GO_ID": "GO:0005634"}', "GO:0005634"),
        ("```json\n{\"id\": \"go_0005634\"}\n```", "GO:0005634"),
        ("GO:0005634, or maybe GO:0005737", "GO:0005634"),  # first ID counts
        ("GO:0005737 is wrong, GO:0005634 is right", "GO:0005737"),
        ("HP:0001250", ""),  # another ontology's ID is no answer
        ("GO:00056341", ""),  # eight digits: not a GO ID
        ("XGO:0005634", ""),  # glued to a word
        ("", ""),
        ("   \n\t ", ""),
    ],
)
def test_go_ids(text: str, expected: str) -> None:
    assert extract(text, *GO_ARGS) == expected


def test_hpo_json_and_gene_ids() -> None:
    assert extract('{"HPO_ID": "HP:0001250"}', *HP_ARGS) == "HP:0001250"
    assert extract("HPO: HP_0001250", *HP_ARGS) == "HP:0001250"
    assert extract("hgnc:11998", *HGNC_ARGS) == "HGNC:11998"
    assert extract("HGNC:1234567", *HGNC_ARGS) == ""  # local part has at most 6 digits
    assert extract("GO:0005634", *HP_ARGS) == ""


def test_ten_thousand_characters() -> None:
    noise = "lorem ipsum " * 900  # ~10.8k characters
    assert extract(noise + "HP:0001250", *HP_ARGS) == "HP:0001250"
    assert extract("HP:0001250 " + noise, *HP_ARGS) == "HP:0001250"
    assert extract(noise, *HP_ARGS) == ""
    long_name = answer_line("Seizure" + "x" * 10_000)
    assert long_name.startswith("Seizure") and len(long_name) <= 4000
    assert extract("A" * 10_000, "symbol") == ""  # no symbol-like token within the answer head


@pytest.mark.parametrize(
    "text, expected",
    [
        ("TP53", "TP53"),
        (" TP53\n", "TP53"),
        ("The HGNC symbol is TP53.", "TP53"),
        ("Answer: C1orf112", "C1orf112"),
        ('"HLA-A"', "HLA-A"),
        ('{"symbol": "BRCA1"}', "BRCA1"),
        ("BRCA1 (breast cancer 1)", "BRCA1"),
        ("BRCA1, BRCA2", "BRCA1"),
        ("tp53", "tp53"),  # kept as written; lenient compares case-insensitively
        ("the gene", ""),
        ("HGNC", ""),
        # real SmolLM2 chat answers: the symbol after "is", never a word echoed from the question
        ('The official HGNC gene symbol for the human gene "ribosomal protein S28" is RBS28', "RBS28"),
        ('The official HGNC gene symbol for the human gene "cyclin and CBS domain divalent', ""),
        ("The HGNC symbol for the gene encoding the protein D-beta-hydroxybutyrate dehydrogenase,", ""),
        ("The symbol is TP53 (tumor protein p53).", "TP53"),
        ("", ""),
    ],
)
def test_gene_symbols(text: str, expected: str) -> None:
    assert extract(text, "symbol") == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Seizure", "Seizure"),
        (' "Seizure".', "Seizure"),
        ("Answer: Seizure", "Seizure"),
        ("Answer: Name: Seizure\nSecond line", "Seizure"),
        ('{"name": "nucleus"}', "nucleus"),
        ("\n\n  Abnormal   heart\tmorphology \n", "Abnormal heart morphology"),
        ("**Seizure**", "Seizure"),
        ("Id-1 protein", "Id-1 protein"),  # a name that starts like a prefix is kept
        ("tumor protein p53!", "tumor protein p53"),
        ("The approved HGNC name of the human gene BDH1 is BDH1.", "BDH1"),  # real SmolLM2 answer
        ('The name of the HPO term HP:0001250 is "Seizure".', "Seizure"),
        ("Protein is folded", "Protein is folded"),  # not an explanatory sentence: kept whole
        ("", ""),
        ("  \n ", ""),
    ],
)
def test_names(text: str, expected: str) -> None:
    assert extract(text, "name") == expected


def test_unicode() -> None:
    assert extract("Épilepsie « focale »", "name") == "Épilepsie « focale »"
    assert extract("Crise d’épilepsie", "name") == "Crise d’épilepsie"
    assert extract("“Seizure”", "name") == "Seizure"
    assert extract("ＧＯ:0005634", *GO_ARGS) == ""  # full-width letters are not the prefix
    assert extract("GO:0005634 — 核", *GO_ARGS) == "GO:0005634"
    assert extract("\u200bTP53", "symbol") in {"TP53", "\u200bTP53"}  # never crashes


def test_unknown_format_and_non_strings() -> None:
    with pytest.raises(ValueError, match="unknown answer format"):
        extract("x", "smiles")
    with pytest.raises(ValueError, match="id_prefix"):
        extract("GO:0005634", "curie")
    assert extract(None, "name") == ""  # type: ignore[arg-type]


# --- scoring ---------------------------------------------------------------------------------


def test_strict_is_the_studys_rule() -> None:
    assert strict_match(" GO:0034629 \n", "GO:0034629", "id") == 1.0
    assert strict_match("GO0034629", "GO:0034629", "id") == 0.0  # the study counted this wrong
    assert strict_match("go:0034629", "GO:0034629", "id") == 0.0  # IDs are case-sensitive
    assert strict_match("tp53", "TP53", "id") == 0.0
    assert strict_match("The ID is GO:0034629", "GO:0034629", "id") == 0.0
    assert strict_match("  seizure ", "Seizure", "name") == 1.0  # names case-insensitive
    assert strict_match("Seizure.", "Seizure", "name") == 0.0
    assert strict_match("", "Seizure", "name") == 0.0


def test_lenient_accepts_canonical_forms_and_alternatives() -> None:
    assert lenient_match("GO:0034629", ["GO:0034629"], "curie") == 1.0
    assert lenient_match("GO:0000001", ["GO:0034629", "GO:0000001"], "curie") == 1.0  # alt_id
    assert lenient_match("", ["GO:0034629"], "curie") == 0.0
    assert lenient_match("tp53", ["TP53"], "symbol") == 1.0
    assert lenient_match("P53", ["TP53", "P53"], "symbol") == 1.0  # previous symbol
    assert lenient_match("epileptic  seizure", ["Seizure", "Epileptic seizure"], "name") == 1.0
    assert lenient_match("Seizures", ["Seizure"], "name") == 0.0


def _doc(**kw: object) -> dict[str, object]:
    doc = {"answer": "GO:0034629", "alternatives": ["GO:0034629", "GO:0000001"], "answer_kind": "id",
           "answer_format": "curie", "id_prefix": "GO", "id_local": r"\d{7}", "stratum": "mid",
           "embedding_model": ""}
    doc.update(kw)
    return doc


def test_score_document_keys_and_values() -> None:
    doc = _doc()
    scores = score_document(doc, extracted_response("GO0034629", doc))
    assert scores["exact_match"] == 0.0 and scores["lenient_match"] == 1.0
    assert scores["exact_match_mid"] == 0.0
    assert "exact_match_low" not in scores and "exact_match_high" not in scores
    # no question, nothing shown: the hidden class, and the share of shown documents 0
    assert scores["exact_match_hidden"] == 0.0 and "exact_match_shown" not in scores
    assert scores["answer_in_prompt"] == 0.0
    assert scores["alignment"] == ("GO:0034629", "GO:0034629", "")
    right = score_document(doc, extracted_response(" GO:0034629\n", doc))
    assert right["exact_match"] == right["lenient_match"] == right["exact_match_mid"] == 1.0
    # A plain string (e.g. another filter) is extracted on the spot.
    assert score_document(doc, "GO:0000001")["lenient_match"] == 1.0
    assert score_document(doc, "")["exact_match"] == 0.0


def test_extracted_answer_is_a_string_carrying_the_raw_text() -> None:
    ans = extracted_response("  The answer is GO_0034629 ", _doc())
    assert isinstance(ans, str) and ans == "GO:0034629" and str(ans) == "GO:0034629"
    assert ans.raw == "The answer is GO_0034629"
    back = pickle.loads(pickle.dumps(ans))
    assert isinstance(back, ExtractedAnswer) and back == ans and back.raw == ans.raw
