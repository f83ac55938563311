"""Time of `termnorm lexicalization`'s default run (every shipped split, all-MiniLM-L6-v2) and what the
length-sorted batching buys, both measured in the same run.

    python benchmarks/bench_lexicalization.py [--batch-size 64] [--limit N]

Prints: distinct texts, model load time, encoding time with length-sorted batches vs batches in
input order (the baseline), their ratio, and the statistics time. No targets are asserted; the
brief asks that the default run finish in minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--limit", type=int, default=None, help="pairs per split (default: all)")
    args = ap.parse_args()

    from termnorm_eval.analysis import lexicalization as lex
    from termnorm_eval.analysis.embedders import SentenceEmbedder

    t0 = time.perf_counter()
    jobs = lex.plan(limit=args.limit)
    texts = list(dict.fromkeys(t for job in jobs for pair in job.pairs for t in pair))
    t1 = time.perf_counter()
    emb = SentenceEmbedder(device="cpu")
    t2 = time.perf_counter()

    sorted_vecs = emb.encode(texts, batch_size=args.batch_size)
    t3 = time.perf_counter()
    # Baseline: the same model and batch size, batches in input order (what a plain loop does).
    plain = np.concatenate([
        emb.model.encode(texts[i : i + args.batch_size], batch_size=args.batch_size, convert_to_numpy=True)
        for i in range(0, len(texts), args.batch_size)
    ])
    plain /= np.linalg.norm(plain, axis=1, keepdims=True)
    t4 = time.perf_counter()
    assert np.allclose(sorted_vecs, plain, atol=1e-4), "length sorting changed the vectors"

    rows, _ = lex.run(jobs, [_Cached(emb.name, texts, sorted_vecs)], batch_size=args.batch_size)
    t5 = time.perf_counter()

    print(f"mappings x splits: {len(jobs)}, distinct texts: {len(texts)}, cpu threads: {os.cpu_count()}")
    print(f"read splits:                 {t1 - t0:7.2f} s")
    print(f"load model:                  {t2 - t1:7.2f} s")
    print(f"encode, length-sorted:       {t3 - t2:7.2f} s  ({len(texts) / (t3 - t2):.0f} texts/s)")
    print(f"encode, input order (base):  {t4 - t3:7.2f} s  ({len(texts) / (t4 - t3):.0f} texts/s)")
    print(f"speed-up of length sorting:  {(t4 - t3) / (t3 - t2):7.2f}x")
    print(f"statistics ({len(rows)} rows):      {t5 - t4:7.2f} s")
    print(f"default run total (load+encode+stats): {t2 - t0 + t3 - t2 + t5 - t4:.1f} s")


class _Cached:
    """Serves already computed vectors, so the statistics are timed alone."""

    def __init__(self, name: str, texts: list[str], vectors: np.ndarray) -> None:
        self.name = name
        self.index = {t: i for i, t in enumerate(texts)}
        self.vectors = vectors

    def encode(self, texts, batch_size, progress=None):
        return self.vectors[[self.index[t] for t in texts]]


if __name__ == "__main__":
    main()
