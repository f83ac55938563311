"""Dense retrieval: each distinct entry text embedded once (sentence-transformers, L2-normalised), a
query scored by the dot product (cosine) with every text.

The build encodes the distinct texts sorted by length (little padding, the main waste on short
strings) in shards of ``SHARD`` texts. Each finished shard is written at once to ``<index>.partial/``
beside the index folder, with ``plan.json`` saying what the shards are of: a build stopped by Ctrl-C
(or a crash) continues from them, a build of another plan starts over. The index folder itself holds
``vectors.npy`` (distinct texts x dimension, float32) and ``text_row.npy`` (entry -> its row).

A query that is an entry's text (every built-in question is) reuses that text's vector; any other
(a user's mention) is encoded with the index's own model, loaded on first need.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from termnorm_eval import atomic
from termnorm_eval.analysis.embedders import Progress, SentenceEmbedder
from termnorm_eval.retrieval.entries import Entries

SHARD = 8192  # texts per shard: a Ctrl-C loses at most this much work (~15 s of MiniLM on 2 cores)
BATCH = 64  # texts per forward pass
PLAN_FORMAT = "termnorm-retrieval-shards/1"
VECTORS, TEXT_ROW = "vectors.npy", "text_row.npy"
FILES = (VECTORS, TEXT_ROW)


def distinct_texts(entries: Entries) -> tuple[list[str], np.ndarray]:
    """The distinct entry texts, shortest first (stable: entry order among equal lengths), and the row
    of each entry's text."""
    texts = sorted(dict.fromkeys(entries.texts), key=len)
    row = {t: i for i, t in enumerate(texts)}
    text_row = np.fromiter((row[t] for t in entries.texts), dtype=np.int32, count=len(entries.texts))
    return texts, text_row


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def partial_folder(index_folder: Path) -> Path:
    """Where the shards of an unfinished build wait (``atomic.recover`` never touches this name)."""
    return index_folder.with_name(index_folder.name + ".partial")


class DenseScorer:
    """Entry scores of queries from the vectors of the distinct entry texts."""

    def __init__(self, vectors: np.ndarray, text_row: np.ndarray, texts: Sequence[str],
                 encoder: Callable[[], SentenceEmbedder]) -> None:
        self.vectors = vectors
        self.text_row = text_row
        self.row_of = {t: i for i, t in enumerate(texts)}
        self._make_encoder = encoder
        self._encoder: SentenceEmbedder | None = None
        self.encoded = 0  # queries that had to be encoded (no entry has their text)

    def query_vectors(self, queries: Sequence[str]) -> np.ndarray:
        out = np.empty((len(queries), self.vectors.shape[1]), dtype=np.float32)
        missing = []
        for i, q in enumerate(queries):
            row = self.row_of.get(q)
            if row is None:
                missing.append(i)
            else:
                out[i] = self.vectors[row]
        if missing:
            if self._encoder is None:
                self._encoder = self._make_encoder()
            out[missing] = self._encoder.encode([queries[i] for i in missing], batch_size=BATCH)
            self.encoded += len(missing)
        return out

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """(len(queries), n_entries) float32 cosine similarities."""
        by_text = self.query_vectors(queries) @ self.vectors.T
        return by_text[:, self.text_row]


def load(folder: Path, entries: Entries, encoder: Callable[[], SentenceEmbedder]) -> DenseScorer:
    """The index in ``folder``; a ValueError when its arrays do not fit ``entries``."""
    vectors = np.load(folder / VECTORS, allow_pickle=False)
    text_row = np.load(folder / TEXT_ROW, allow_pickle=False)
    texts, expected = distinct_texts(entries)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts) or not np.array_equal(text_row, expected):
        raise ValueError(f"vectors {vectors.shape} / text rows {text_row.shape} for {len(texts)} distinct "
                         f"texts of {len(entries.texts)} entries")
    return DenseScorer(vectors, text_row, texts, encoder)


def build(entries: Entries, embedder: SentenceEmbedder, identity: dict[str, Any],
          stage: Path, partial: Path, *, shard_size: int = SHARD, progress: Progress | None = None,
          on_start: Callable[[int, int], None] | None = None) -> DenseScorer:
    """Encode the distinct texts into ``stage`` (``vectors.npy``, ``text_row.npy``), shard by shard
    through ``partial``; ``progress(n)`` after each batch of ``n`` texts encoded, ``on_start(total,
    done)`` once the texts already encoded (earlier shards) are known."""
    texts, text_row = distinct_texts(entries)
    plan = {"format": PLAN_FORMAT, "entries": entries.digest(), "texts": len(texts), "shard_size": shard_size,
            "identity": identity}
    plan_file = partial / "plan.json"
    if partial.exists():
        try:
            same = json.loads(plan_file.read_text(encoding="utf-8")) == plan
        except (OSError, ValueError):
            same = False
        if not same:  # shards of another build: useless here
            shutil.rmtree(partial)
    if not partial.exists():
        partial.mkdir(parents=True)
        atomic.write_json(plan_file, plan)
    n_shards = math.ceil(len(texts) / shard_size)
    names = [partial / f"shard-{i:05d}.npy" for i in range(n_shards)]
    done = [p.is_file() for p in names]
    if any(done):
        print(f"termnorm: {partial.name}: continuing: {sum(done)} of {n_shards} shards done", file=sys.stderr)
    chunks = [texts[i * shard_size: (i + 1) * shard_size] for i in range(n_shards)]
    if on_start is not None:
        on_start(len(texts), sum(len(chunk) for chunk, d in zip(chunks, done, strict=True) if d))
    parts = []
    for chunk, path, finished in zip(chunks, names, done, strict=True):
        part = _read_shard(path, len(chunk)) if finished else None
        if part is None:
            part = embedder.encode(chunk, batch_size=BATCH, progress=progress)
            atomic.write_file(path, _npy(part))
        parts.append(part)
    vectors = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
    for name, array in ((VECTORS, vectors), (TEXT_ROW, text_row)):
        with open(stage / name, "wb") as fh:  # straight to the file: vectors are 200 MB for GO
            np.save(fh, array, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
    return DenseScorer(vectors, text_row, texts, lambda: embedder)


def _read_shard(path: Path, rows: int) -> np.ndarray | None:
    """A finished shard, or None when it cannot be used (then it is encoded again)."""
    try:
        part = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return part if part.ndim == 2 and part.shape[0] == rows and part.dtype == np.float32 else None
