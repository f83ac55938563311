"""Lexicalization statistics, mappings and the command's error handling (fast: no real model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from termnorm_eval.analysis.files import write_all
from termnorm_eval.analysis.lexicalization import Job, derangement, pair_stats, plan, run
from termnorm_eval.analysis.mappings import mappings_for
from termnorm_eval.cli import main
from termnorm_eval.errors import TermnormError
from termnorm_eval.terminologies import BUILTIN, ontology_terminology


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("n", [2, 3, 7, 100, 1000])
def test_derangement_moves_every_item_and_is_seeded(n: int) -> None:
    perm = derangement(n, seed=3)
    assert sorted(perm.tolist()) == list(range(n))
    assert not np.any(perm == np.arange(n))
    assert np.array_equal(perm, derangement(n, seed=3))


def test_derangement_needs_two_items() -> None:
    with pytest.raises(ValueError):
        derangement(1, seed=0)


def test_identical_pairs_align_perfectly() -> None:
    a = _unit(np.random.default_rng(0).normal(size=(50, 32)))
    st = pair_stats(a, a.copy())
    assert st.true_cos == pytest.approx(1.0, abs=1e-5)
    assert st.top1 == 1.0 and st.mrr == 1.0
    assert st.random_cos < 0.5 and st.gap > 0.5
    assert st.mrr_chance == pytest.approx(sum(1 / k for k in range(1, 51)) / 50)


def test_unrelated_pairs_have_no_gap() -> None:
    rng = np.random.default_rng(1)
    a, b = _unit(rng.normal(size=(400, 64))), _unit(rng.normal(size=(400, 64)))
    st = pair_stats(a, b)
    assert abs(st.gap) < 2 * st.gap_ci95 + 1e-9
    assert st.top1 < 0.05


def test_retrieval_rank_counts_only_strictly_closer_counterparts() -> None:
    # Targets 0 and 1 are the same vector (the same text twice): a tie never counts against.
    a = _unit(np.array([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0]]))
    b = _unit(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    st = pair_stats(a, b)
    assert st.top1 == 1.0 and st.mrr == 1.0
    # Swapping the last two targets puts the right counterpart of items 1 and 2 at rank 2 or 3.
    st2 = pair_stats(a, b[[0, 2, 1]])
    assert st2.top1 == pytest.approx(1 / 3)


def test_mappings_come_from_the_direction_registry() -> None:
    got = {m.key: m.title for t in BUILTIN.values() for m in mappings_for(t)}
    assert got == {
        "go:name<->id": "GO term<->ID",
        "hpo:name<->id": "HPO term<->ID",
        "gene:name<->symbol": "gene name<->symbol",
        "gene:name<->id": "gene name<->HGNC ID",
        "gene:protein_name<->symbol": "protein name<->symbol",
    }
    # An ontology added with add-ontology gets term<->ID without code changes.
    cl = ontology_terminology("cl", "CL", "CL")
    assert [(m.key, m.title) for m in mappings_for(cl)] == [("cl:name<->id", "CL term<->ID")]


def test_pairs_skip_records_missing_a_side() -> None:
    (protein,) = [m for m in mappings_for(BUILTIN["gene"]) if m.source == "protein_name"]
    recs = [
        {"symbol": "TP53", "protein_name": "Cellular tumor antigen p53"},
        {"symbol": "XYZ1", "protein_name": None},
        {"symbol": "ABC2", "protein_name": "   "},
    ]
    assert protein.pairs(recs) == [("Cellular tumor antigen p53", "TP53")]


class _Lexical:
    """A stand-in embedder: bag of characters, so texts sharing letters are close."""

    name = "chars"

    def encode(self, texts, batch_size, progress=None):
        out = np.zeros((len(texts), 128), np.float32)
        for i, t in enumerate(texts):
            for ch in t.lower():
                out[i, ord(ch) % 128] += 1
        if progress:
            progress(len(texts))
        return _unit(out + 1e-6)


def test_run_encodes_each_text_once_and_reports_unmeasurable_splits() -> None:
    (m,) = mappings_for(ontology_terminology("xo", "XO", "XO"))
    jobs = [Job(m, "train", [("alpha", "alpha"), ("beta", "beta"), ("gamma", "gamma")]),
            Job(m, "val", [("delta", "XO:1")])]
    seen: list[int] = []
    rows, notes = run(jobs, [_Lexical()], progress_factory=lambda name, total: seen.append(total) or
                      (lambda k: None))
    assert seen == [5]  # alpha, beta, gamma, delta, XO:1
    assert [(r.split, r.n, r.top1) for r in rows] == [("train", 3, 1.0)]
    assert notes == ["XO term<->ID (val): 1 pair(s), not measured"]


def _xo_data(root, names=("a",)):
    """A minimal data folder of an added ontology (bad-input and plumbing cases only)."""
    d = root / "xo"
    d.mkdir(parents=True)
    for split in ("train", "val"):
        lines = [json.dumps({"id": f"XO:{i}", "name": f"{n} {split}"}) for i, n in enumerate(names)]
        (d / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (root / "manifest.json").write_text(json.dumps(
        {"terminologies": {"xo": {"spec": {"key": "xo", "label": "XO", "id_prefix": "XO"}}}}))
    return root


def test_plan_rejects_unknown_terminology_and_empty_data_dir(tmp_path) -> None:
    with pytest.raises(TermnormError, match="no terminology with train and val"):
        plan(tmp_path)
    _xo_data(tmp_path)
    with pytest.raises(TermnormError, match="--terminology nope"):
        plan(tmp_path, ["nope"])
    job_train, job_val = plan(tmp_path, ["xo"])
    assert job_train.pairs == [("a train", "XO:0")] and job_train.mapping.title == "XO term<->ID"
    assert job_val.split == "val" and job_val.pairs == [("a val", "XO:0")]


def test_write_all_leaves_no_temporary_files(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("old")
    paths = write_all(tmp_path, {"a.txt": "new", "b.bin": b"\x00\x01"})
    assert [p.name for p in paths] == ["a.txt", "b.bin"]
    assert (tmp_path / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]
    with pytest.raises(TermnormError, match="not a folder"):
        write_all(tmp_path / "a.txt", {"x": "y"})


def _cli_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("termnorm: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_cli_user_errors_are_one_line(tmp_path, capsys) -> None:
    assert "--adapter needs --lm" in _cli_error(["lexicalization", "--adapter", str(tmp_path)], capsys)
    assert "--split test" in _cli_error(["lexicalization", "--split", "test"], capsys)
    assert "--data-dir" in _cli_error(["lexicalization", "--data-dir", str(tmp_path / "none")], capsys)


def test_cli_missing_model_names_the_option(tmp_path, capsys) -> None:
    data = _xo_data(tmp_path / "data", names=("a", "b", "c"))
    err = _cli_error(["lexicalization", "--data-dir", str(data), "--model", str(tmp_path / "no-model")],
                     capsys)
    assert "--model" in err and "no-model" in err


def test_center_adds_measures_on_mean_centred_vectors() -> None:
    from termnorm_eval.analysis.lexicalization import centered

    rng = np.random.default_rng(2)
    # A shared offset makes every pair look alike; centring removes exactly that.
    x = _unit(rng.normal(size=(200, 16)) + 8.0)
    c = centered(x)
    assert np.allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)
    assert (x @ x.T).mean() > 0.9 and abs((c @ c.T)[~np.eye(200, dtype=bool)].mean()) < 0.05

    (m,) = mappings_for(ontology_terminology("xo", "XO", "XO"))
    jobs = [Job(m, "train", [("alpha", "alpha"), ("beta", "beta"), ("gamma", "gamma")])]
    rows, _ = run(jobs, [_Lexical()], center=True)
    assert [r.embedder for r in rows] == ["chars", "chars (centered)"]
    assert rows[1].top1 == 1.0


def test_old_command_name_still_runs_with_a_one_line_note(tmp_path, capsys, monkeypatch) -> None:
    """`termnorm alignment` (the old name) is a hidden alias: same options, same files, one note."""
    import termnorm_eval.analysis.embedders as embedders

    monkeypatch.setattr(embedders, "SentenceEmbedder", lambda model=None, device=None: _Lexical())
    data = _xo_data(tmp_path / "data", names=("alpha", "beta", "gamma"))
    outputs = {}
    for command in ("lexicalization", "alignment"):
        out = tmp_path / command
        with pytest.raises(SystemExit) as exc:
            main([command, "--data-dir", str(data), "--out", str(out)])
        assert exc.value.code == 0
        notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("termnorm: note:")]
        assert len(notes) == (command == "alignment")
        outputs[command] = json.loads((out / "alignment.json").read_text())
        assert sorted(p.name for p in out.iterdir()) == ["alignment.csv", "alignment.json", "alignment.png"]
    assert "lexicalization" in notes[0]
    new, old = outputs["lexicalization"], outputs["alignment"]
    assert new["rows"] == old["rows"] and len(new["rows"]) == 2

    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    assert "lexicalization" in listed and "alignment" not in listed
