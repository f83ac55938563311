"""The retrieval index cache (issue 22, items 1 and "Bad input"): keyed on the release and the retriever's
identity, refused in one line when it is another's, built atomically, a Ctrl-C during a dense build
continued by the next run; bad --retriever / --embedder values are one line."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.retrieval import cache, dense
from termnorm_eval.retrieval.entries import Entries, load_entries
from termnorm_eval.retrieval.search import Retriever, open_retriever
from termnorm_eval.retrieval.spec import RetrieverSpec
from termnorm_eval.splits import release_index as ri
from termnorm_eval.splits import store

BM25 = RetrieverSpec.parse("bm25", None)


@pytest.fixture(autouse=True)
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("TERMNORM_CACHE", str(root))
    monkeypatch.delenv("TERMNORM_EMBEDDING_MODEL", raising=False)
    return root


def _one_line(exc: pytest.ExceptionInfo[TermnormError], *parts: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and all(p in msg for p in parts), msg
    return msg


def _hpo_as(release: str) -> Entries:
    """The shipped HPO's entries, named as another release would be."""
    return Entries.from_rows("hpo", release, ri.read_rows(store.index_path("hpo")))


def test_folder_moves_with_release_and_identity(cache_root: Path, tmp_path: Path) -> None:
    hpo = load_entries("hpo")
    folder = cache.index_folder(BM25, hpo)
    assert folder == cache_root / "retrieval" / f"hpo-{hpo.release}" / f"bm25-{BM25.digest()}"
    ident = json.dumps(BM25.identity(), sort_keys=True, separators=(",", ":"))
    assert BM25.digest() == hashlib.sha256(ident.encode()).hexdigest()[:12]
    assert cache.index_folder(BM25, _hpo_as("0" * 16)) != folder
    minilm = RetrieverSpec.parse("dense", None)
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "config.json").write_text("{}")
    elsewhere = RetrieverSpec.parse("dense", str(other))
    folders = {cache.index_folder(s, hpo) for s in (BM25, minilm, elsewhere)}
    assert len(folders) == 3
    assert minilm.identity()["embedder"] == "all-MiniLM-L6-v2"
    assert "model.safetensors" in minilm.identity()["files"]
    assert str(tmp_path) not in json.dumps(elsewhere.identity())  # never a path
    assert RetrieverSpec.parse("hybrid", None).label() == "hybrid (bm25 + all-MiniLM-L6-v2)"


def test_built_once_then_loaded(cache_root: Path) -> None:
    r = open_retriever(BM25, "hpo", show_progress=False)
    folder = cache.index_folder(BM25, r.entries)
    meta = json.loads((folder / cache.META).read_text())
    assert meta["identity"] == BM25.identity() and meta["index_digest"] == r.entries.release
    assert meta["entries"] == {"digest": r.entries.digest(), "count": len(r.entries.texts)}
    assert set(meta["sources"]) == {"hp.obo", "phenotype.hpoa"}
    assert str(cache_root) not in (folder / cache.META).read_text()
    stamp = (folder / cache.META).stat().st_mtime_ns
    again = open_retriever(BM25, "hpo", show_progress=False)
    assert (folder / cache.META).stat().st_mtime_ns == stamp  # loaded, not rebuilt
    q = ["Kidney inflammation", "Abnormality of the kidney"]
    for a, b in zip(r.search(q), again.search(q), strict=True):
        assert np.array_equal(a.concepts, b.concepts)
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no stage, no lock left
    open_retriever(BM25, "hpo", show_progress=False, force=True)
    assert (folder / cache.META).stat().st_mtime_ns != stamp


def test_an_index_of_another_release_is_refused(cache_root: Path) -> None:
    real = cache.index_folder(BM25, load_entries("hpo"))
    open_retriever(BM25, "hpo", show_progress=False)
    other = _hpo_as("0123456789abcdef")
    shutil.copytree(real, cache.index_folder(BM25, other))
    with pytest.raises(TermnormError) as exc:
        cache.open_bm25(BM25, other, show_progress=False)
    _one_line(exc, "index of another release or retriever", "0123456789abcdef", "--force")


def test_an_index_copied_from_another_key_is_refused(cache_root: Path) -> None:
    open_retriever(BM25, "hpo", show_progress=False)
    go = load_entries("go")
    shutil.copytree(cache.index_folder(BM25, load_entries("hpo")), cache.index_folder(BM25, go))
    with pytest.raises(TermnormError) as exc:
        open_retriever(BM25, "go", show_progress=False)
    _one_line(exc, "index of another release or retriever (built for hpo release", "asked: go release")
    open_retriever(BM25, "go", show_progress=False, force=True).search(["nucleus"])  # --force replaces it


def test_an_index_of_another_retriever_is_refused(cache_root: Path) -> None:
    hpo = load_entries("hpo")
    open_retriever(BM25, "hpo", show_progress=False)
    minilm = RetrieverSpec.parse("dense", None)
    shutil.copytree(cache.index_folder(BM25, hpo), cache.index_folder(minilm, hpo))
    with pytest.raises(TermnormError) as exc:
        open_retriever(minilm, "hpo", show_progress=False)  # refused before any model is loaded
    _one_line(exc, "index of another release or retriever", "bm25", "dense (all-MiniLM-L6-v2)")


def test_a_damaged_index_is_refused(cache_root: Path) -> None:
    folder = cache.index_folder(BM25, load_entries("hpo"))
    open_retriever(BM25, "hpo", show_progress=False)
    (folder / "data.csc.index.npy").unlink()
    with pytest.raises(TermnormError) as exc:
        open_retriever(BM25, "hpo", show_progress=False)
    _one_line(exc, str(folder), "damaged retrieval index", "--force")
    (folder / cache.META).unlink()
    with pytest.raises(TermnormError) as exc:
        open_retriever(BM25, "hpo", show_progress=False)
    _one_line(exc, "not a retrieval index (no meta.json)")


def test_a_build_in_progress_elsewhere_is_one_line(cache_root: Path, lock_holder) -> None:
    folder = cache.index_folder(BM25, load_entries("hpo"))
    lock_holder(folder)
    with pytest.raises(TermnormError) as exc:
        open_retriever(BM25, "hpo", show_progress=False)
    _one_line(exc, "in use by pid")
    assert not folder.exists()


@pytest.mark.parametrize(("kind", "embedder", "expected"), [
    ("foo", None, "--retriever foo: not a retriever (choose bm25, dense, hybrid)"),
    ("bm25", "/some/model", "--embedder /some/model: only the dense and hybrid retrievers embed"),
    ("dense", "/missing/model", "--embedder /missing/model: not a folder"),
    ("hybrid", "sentence-transformers/all-MiniLM-L6-v2", "--embedder sentence-transformers/all-MiniLM-L6-v2: "
                                                         "not a folder"),
])
def test_bad_retriever_options_are_one_line(kind: str, embedder: str | None, expected: str) -> None:
    with pytest.raises(TermnormError) as exc:
        RetrieverSpec.parse(kind, embedder)
    _one_line(exc, expected)


def test_an_embedder_chosen_by_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERMNORM_EMBEDDING_MODEL", "some-org/some-model")
    with pytest.raises(TermnormError) as exc:
        RetrieverSpec.parse("dense", None)
    _one_line(exc, "environment variable TERMNORM_EMBEDDING_MODEL='some-org/some-model': not a folder")


def test_a_folder_without_a_model_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.txt").write_text("not a model")
    with pytest.raises(TermnormError) as exc:
        RetrieverSpec.parse("dense", str(tmp_path / "notes"))
    _one_line(exc, f"--embedder {tmp_path / 'notes'}: not a sentence-transformers model folder")


@pytest.mark.slow  # imports torch and sentence-transformers
def test_a_garbage_embedder_folder_is_one_line_and_writes_nothing(cache_root: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "config.json").write_text("{not json")
    (garbage / "model.safetensors").write_bytes(b"\x00" * 64)
    spec = RetrieverSpec.parse("dense", str(garbage))
    with pytest.raises(TermnormError) as exc:
        open_retriever(spec, "hpo", show_progress=False)
    _one_line(exc, f"--embedder '{garbage}': cannot load embedding model", "config.json")
    assert not (cache_root / "retrieval").exists()


def _subset() -> Entries:
    """The first 250 live HPO concepts (about 700 strings): real texts, a build of seconds."""
    rows = ri.read_rows(store.index_path("hpo"))
    live = [r for r in rows if r[1] == "live"][:250]
    return Entries.from_rows("hpo", "subset0000000000", live)


@pytest.mark.slow
def test_ctrl_c_during_a_dense_build_is_continued(cache_root: Path, monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    entries = _subset()
    spec = RetrieverSpec.parse("dense", None)
    texts, _ = dense.distinct_texts(entries)
    shard = 128
    assert len(texts) > 3 * shard
    folder = cache.index_folder(spec, entries)
    encoded = [0]

    def interrupt_in_third_shard(n: int) -> None:
        encoded[0] += n
        if encoded[0] > 2 * shard:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.open_dense(spec, entries, show_progress=False, progress=interrupt_in_third_shard,
                         shard_size=shard)
    assert not folder.exists()  # no half index at the final name
    partial = dense.partial_folder(folder)
    assert sorted(p.name for p in partial.iterdir()) == ["plan.json", "shard-00000.npy", "shard-00001.npy"]
    assert sorted(p.name for p in folder.parent.iterdir()) == [partial.name]  # no stage, no lock

    encoded[0] = 0
    resumed = cache.open_dense(spec, entries, show_progress=False, progress=lambda n: encoded.__setitem__(
        0, encoded[0] + n), shard_size=shard)
    assert encoded[0] == len(texts) - 2 * shard  # the two finished shards were not encoded again
    assert folder.is_dir() and not partial.exists()

    monkeypatch.setenv("TERMNORM_CACHE", str(tmp_path / "clean"))
    clean = cache.open_dense(spec, entries, show_progress=False, shard_size=shard)
    assert np.array_equal(resumed.text_row, clean.text_row)
    assert np.allclose(resumed.vectors, clean.vectors, atol=1e-6)

    monkeypatch.setenv("TERMNORM_CACHE", str(cache_root))
    loaded = cache.open_dense(spec, entries, show_progress=False)
    assert np.array_equal(loaded.vectors, resumed.vectors)
    scores = loaded.scores([entries.labels[3], "kidney problem"])
    assert scores.shape == (2, len(entries.texts)) and loaded.encoded == 1  # a label reuses its vector

    # hybrid: the reciprocal rank fusion of the two rankings, ties by concept index
    bm25_scorer = cache.open_bm25(BM25, entries, show_progress=False)
    scorers = {"bm25": bm25_scorer, "dense": loaded}
    queries = [entries.labels[i] for i in range(0, 250, 10)]
    fused = Retriever(RetrieverSpec.parse("hybrid", None), entries, scorers).search(queries, k=20)
    parts = [Retriever(RetrieverSpec.parse(k, None), entries, scorers).search(queries, k=100)
             for k in ("bm25", "dense")]
    for i, ranking in enumerate(fused):
        score = {}
        for part in parts:
            for r, c in enumerate(part[i].concepts.tolist(), start=1):
                score[c] = score.get(c, 0.0) + 1 / (60 + r)
        assert ranking.concepts.tolist() == sorted(score, key=lambda c: (-score[c], c))[:20]
