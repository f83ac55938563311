"""The study's lexicalization finding, checked on the shipped splits with the real all-MiniLM-L6-v2.

Gene symbols sit close to their names in embedding space; GO and HPO identifiers (and HGNC IDs)
are no closer to their own term than to any other term.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from termnorm_eval.cli import main
from termnorm_eval.splits import store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("lexicalization")
    with pytest.raises(SystemExit) as exc:
        main(["lexicalization", "--out", str(out)])
    assert exc.value.code in (0, None)
    return json.loads((out / "alignment.json").read_text()), out


def _row(data: dict, title: str, split: str) -> dict:
    (row,) = [r for r in data["rows"] if r["title"] == title and r["split"] == split]
    return row


def test_every_mapping_and_split_is_measured_on_all_pairs(result) -> None:
    data, _ = result
    assert data["embedders"] == ["all-MiniLM-L6-v2"]
    expected = {
        ("GO term<->ID", "go", "name", "id"), ("HPO term<->ID", "hpo", "name", "id"),
        ("gene name<->symbol", "gene", "name", "symbol"), ("gene name<->HGNC ID", "gene", "name", "id"),
        ("protein name<->symbol", "gene", "protein_name", "symbol"),
    }
    for title, key, source, target in expected:
        for split in ("train", "val"):
            recs = store.load_records(key, split)
            n = sum(1 for r in recs if r.get(source) and r.get(target))
            assert _row(data, title, split)["n"] == n > 100
    assert len(data["rows"]) == 2 * len(expected)


@pytest.mark.parametrize("split", ["train", "val"])
def test_gene_symbols_are_lexicalized_and_go_hpo_ids_are_not(result, split: str) -> None:
    data, _ = result
    gene = _row(data, "gene name<->symbol", split)
    protein = _row(data, "protein name<->symbol", split)
    opaque = [_row(data, t, split) for t in ("GO term<->ID", "HPO term<->ID", "gene name<->HGNC ID")]
    # The study's finding: the gene gap is clearly larger, intervals far apart.
    for other in opaque:
        assert gene["gap"] - gene["gap_ci95"] > other["gap"] + other["gap_ci95"] + 0.1
        assert abs(other["gap"]) < 0.02  # an identifier is no closer to its term than to any term
        assert other["top1"] < 0.02 and other["mrr"] < 3 * other["mrr_chance"]
    assert gene["top1"] > 0.2 and gene["mrr"] > 10 * gene["mrr_chance"]
    # Protein names, like gene names, find their symbol.
    assert protein["gap"] > 0.1 and protein["top1"] > 0.2


def test_files_agree_and_png_is_written(result) -> None:
    data, out = result
    with (out / "alignment.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["mapping"], r["split"]) for r in rows] == [(r["mapping"], r["split"]) for r in data["rows"]]
    for c, j in zip(rows, data["rows"], strict=True):
        assert float(c["gap"]) == pytest.approx(j["gap"], abs=1e-6)
        assert int(c["n"]) == j["n"]
    png = (out / "alignment.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left
