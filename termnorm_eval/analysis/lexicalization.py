"""Lexicalization statistics of paired embeddings, and the run over every mapping and split.

For a split of n pairs (a_i, b_i) with unit vectors:
- true cosine: mean of a_i . b_i;
- random cosine: mean of a_i . b_pi(i), pi a derangement drawn with a fixed seed, so every
  random pair really is a wrong pair;
- gap: their difference (paired per i, hence a 95% interval from the per-item differences);
- retrieval a_i -> {b_1..b_n}: rank of b_i = 1 + number of counterparts strictly more similar
  (identical counterpart texts tie and never count against; float noise < 1e-6 is a tie),
  top-1 accuracy and mean reciprocal rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from termnorm_eval.analysis.embedders import Embedder
from termnorm_eval.analysis.mappings import TermMapping, mappings_for
from termnorm_eval.errors import TermnormError
from termnorm_eval.splits import store

TIE_EPS = 1e-6


@dataclass(frozen=True)
class PairStats:
    n: int
    true_cos: float
    random_cos: float
    gap: float
    gap_ci95: float  # half-width of the normal 95% interval of the mean paired difference
    top1: float
    mrr: float
    mrr_chance: float  # MRR of a random ranking, H_n / n: the floor retrieval is judged against


@dataclass(frozen=True)
class LexicalizationRow:
    embedder: str
    terminology: str
    mapping: str  # stable key, e.g. "gene:name<->symbol"
    title: str  # for humans, e.g. "gene name<->symbol"
    source: str
    target: str
    split: str
    n: int
    true_cos: float
    random_cos: float
    gap: float
    gap_ci95: float
    top1: float
    mrr: float
    mrr_chance: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def derangement(n: int, seed: int) -> np.ndarray:
    """A uniformly drawn permutation without fixed points (rejection: ~e draws on average)."""
    if n < 2:
        raise ValueError("a derangement needs at least 2 items")
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == idx):
            return perm


def pair_stats(a: np.ndarray, b: np.ndarray, seed: int = 0, chunk: int = 2048) -> PairStats:
    """Statistics of row-aligned unit vectors ``a`` (sources) and ``b`` (targets)."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two equal (n, d) arrays, got {a.shape} and {b.shape}")
    n = a.shape[0]
    if n < 2:
        raise ValueError("pair statistics need at least 2 pairs")
    true = np.einsum("ij,ij->i", a, b).astype(np.float64)
    rand = np.einsum("ij,ij->i", a, b[derangement(n, seed)]).astype(np.float64)
    diff = true - rand
    ranks = np.empty(n, dtype=np.int64)
    for lo in range(0, n, chunk):  # n x n similarities in row blocks: memory stays bounded
        sims = a[lo : lo + chunk] @ b.T
        rows = np.arange(sims.shape[0])
        # The own score comes from the same product (an einsum rounds differently), and float
        # noise below TIE_EPS is a tie: equal texts must never outrank each other.
        own = sims[rows, lo + rows][:, None]
        ranks[lo : lo + chunk] = 1 + (sims > own + TIE_EPS).sum(axis=1)
    return PairStats(
        n=n,
        true_cos=float(true.mean()),
        random_cos=float(rand.mean()),
        gap=float(diff.mean()),
        gap_ci95=float(1.96 * diff.std(ddof=1) / math.sqrt(n)),
        top1=float((ranks == 1).mean()),
        mrr=float((1.0 / ranks).mean()),
        mrr_chance=float((1.0 / np.arange(1, n + 1)).sum() / n),
    )


@dataclass(frozen=True)
class Job:
    mapping: TermMapping
    split: str
    pairs: list[tuple[str, str]]


def plan(
    data_dir: str | Path | None = None,
    terminologies: Sequence[str] | None = None,
    splits: Sequence[str] = ("train", "val"),
    limit: int | None = None,
    seed: int = 0,
) -> list[Job]:
    """Every (mapping, split) to measure, with its text pairs; ``limit`` samples pairs (seeded)."""
    keys = store.available(data_dir)
    if not keys:
        where = data_dir if data_dir is not None else store.shipped_data_dir()
        raise TermnormError(f"--data-dir {where}: no terminology with train and val splits there")
    if terminologies:
        unknown = [k for k in terminologies if k not in keys]
        if unknown:
            raise TermnormError(
                f"--terminology {', '.join(unknown)}: not in the data (available: {', '.join(keys)})"
            )
        keys = list(dict.fromkeys(terminologies))
    jobs = []
    for key in keys:
        term = store.terminology(key, data_dir)
        for mapping in mappings_for(term):
            for split in splits:
                pairs = mapping.pairs(store.load_records(key, split, data_dir))
                if limit is not None and len(pairs) > limit:
                    rng = np.random.default_rng(seed)
                    pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), limit, replace=False))]
                jobs.append(Job(mapping, split, pairs))
    return jobs


def run(
    jobs: Sequence[Job],
    embedders: Sequence[Embedder],
    batch_size: int = 64,
    seed: int = 0,
    progress_factory: Callable[[str, int], Callable[[int], None]] | None = None,
    center: bool = False,
) -> tuple[list[LexicalizationRow], list[str]]:
    """Measure every job with every embedder. Each distinct text is encoded once per embedder.

    ``center`` adds, per embedder, the same measures on mean-centred vectors (the mean of every
    distinct text of the run). Returns the rows and notes on (mapping, split)s that could not be
    measured (fewer than 2 pairs).
    """
    texts = list(dict.fromkeys(t for job in jobs for pair in job.pairs for t in pair))
    rows: list[LexicalizationRow] = []
    notes: list[str] = []
    index = {t: i for i, t in enumerate(texts)}
    for emb in embedders:
        progress = progress_factory(emb.name, len(texts)) if progress_factory else None
        encoded = emb.encode(texts, batch_size=batch_size, progress=progress)
        spaces = [(emb.name, encoded)]
        if center:
            spaces.append((f"{emb.name} (centered)", centered(encoded)))
        for name, vectors in spaces:
            rows.extend(_measure(name, vectors, index, jobs, seed, notes))
    return rows, notes


def centered(vectors: np.ndarray) -> np.ndarray:
    """Unit vectors after removing their mean: the common direction that dominates a causal LM's
    hidden states (every pair looks similar, ~0.8 cosine) no longer hides the differences."""
    x = vectors - vectors.mean(axis=0, keepdims=True)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _measure(name: str, vectors: np.ndarray, index: dict[str, int], jobs: Sequence[Job], seed: int,
             notes: list[str]) -> list[LexicalizationRow]:
    rows = []
    for job in jobs:
        m = job.mapping
        if len(job.pairs) < 2:
            note = f"{m.title} ({job.split}): {len(job.pairs)} pair(s), not measured"
            if note not in notes:
                notes.append(note)
            continue
        a = vectors[[index[s] for s, _ in job.pairs]]
        b = vectors[[index[t] for _, t in job.pairs]]
        st = pair_stats(a, b, seed=seed)
        rows.append(LexicalizationRow(
            embedder=name, terminology=m.terminology, mapping=m.key, title=m.title,
            source=m.source, target=m.target, split=job.split, **asdict(st),
        ))
    return rows
