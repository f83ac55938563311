"""Prefix and id-shape inference of add-ontology (real CL ids, plus hand-made mixes for edge cases)."""

from __future__ import annotations

import re

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.ontology.infer import (
    choose_prefix,
    example_id,
    id_prefix,
    infer_id_local,
    prefix_counts,
)


@pytest.fixture(scope="module")
def cl_ids() -> list[str]:
    from termnorm_eval.sources.mirrors import extract
    from termnorm_eval.sources.obo import read_obo

    path, _ = extract("cl.obo")
    return [t.id for t in read_obo(path).terms]


def test_id_prefix_forms() -> None:
    assert id_prefix("CL:0000000") == "CL"
    assert id_prefix("NCBITaxon:9606") == "NCBITaxon"
    assert id_prefix("part_of") == "(no prefix)"
    assert id_prefix("http://purl.obolibrary.org/obo/CL_0000000") == "(no prefix)"
    assert id_prefix(":123") == "(no prefix)"


def test_real_cl_prefix_is_inferred(cl_ids: list[str]) -> None:
    choice = choose_prefix(cl_ids, None, "cl.obo")
    assert choice.prefix == "CL" and choice.inferred
    assert choice.terms == choice.total == len(cl_ids) == 2230
    assert "CL (inferred): 2230 of 2230" in choice.describe()


def test_dominant_prefix_among_imports(cl_ids: list[str]) -> None:
    ids = cl_ids + [f"PATO:{i:07d}" for i in range(500)] + ["part_of"]
    choice = choose_prefix(ids, None, "x.obo")
    assert (choice.prefix, choice.terms, choice.total) == ("CL", 2230, 2731)
    assert choice.counts == {"CL": 2230, "PATO": 500, "(no prefix)": 1}
    assert "other prefixes: PATO 500, (no prefix) 1" in choice.describe()


def test_no_dominant_prefix_asks_for_prefix(cl_ids: list[str]) -> None:
    ids = cl_ids + [f"PATO:{i:07d}" for i in range(2000)]
    with pytest.raises(TermnormError, match=r"x\.obo: no prefix dominates.*CL 2230, PATO 2000.*--prefix"):
        choose_prefix(ids, None, "x.obo")
    choice = choose_prefix(ids, "PATO", "x.obo")
    assert (choice.prefix, choice.inferred, choice.terms) == ("PATO", False, 2000)


def test_given_prefix_must_occur(cl_ids: list[str]) -> None:
    with pytest.raises(TermnormError, match="no \\[Term\\] id has the prefix UBERON"):
        choose_prefix(cl_ids, "UBERON", "cl.obo")
    with pytest.raises(TermnormError, match="did you mean CL"):
        choose_prefix(cl_ids, "cl", "cl.obo")
    assert choose_prefix(cl_ids, "CL:", "cl.obo").prefix == "CL"  # a trailing colon is forgiven


def test_unprefixed_ids_only() -> None:
    with pytest.raises(TermnormError, match="PREFIX:LOCAL"):
        choose_prefix(["part_of", "is_a"], None, "x.obo")


def test_id_local_shapes(cl_ids: list[str]) -> None:
    locals_ = [i.split(":", 1)[1] for i in cl_ids]
    assert infer_id_local(locals_) == r"\d{7}"
    assert infer_id_local(["1", "22", "333"]) == r"\d+"
    assert infer_id_local(["C1234", "C99"]) == r"C\d+"
    assert infer_id_local(["abc_1", "X2"]) == r"[A-Za-z0-9_.]+"


def test_example_id_is_well_formed_and_not_a_real_term(cl_ids: list[str]) -> None:
    locals_ = [i.split(":", 1)[1] for i in cl_ids]
    ex = example_id("CL", locals_, set(cl_ids))
    assert re.fullmatch(r"CL:\d{7}", ex) and ex not in cl_ids
    taken = {"CL:1234567"}
    assert example_id("CL", ["0000001"], taken) == "CL:9876543"


def test_prefix_counts() -> None:
    assert prefix_counts(["A:1", "A:2", "B:1", "x"]) == {"A": 2, "B": 1, "(no prefix)": 1}
