"""The retrieval index build against the embedder's own encode throughput, and queries per second, measured
in the same run, per terminology (HPO, then GO; genes with --keys).

    python benchmarks/bench_retrieval.py [--keys hpo,go] [--repeat 1] [--limit-strings N] [--json]

Target: the dense build (read the release index, make the entries, encode the distinct strings in
shards, save: ``retrieval.cache.open_dense``) reaches >= 0.9x the throughput of the bare bound,
``SentenceTransformer.encode(distinct_texts, batch_size=64, normalize_embeddings=True)`` on the same
strings (model loading included in both). Also printed: the BM25 build (strings/s), queries/s over
every retrievable document (all splits) with leave-one-out for BM25 batched vs the same ranking from
bm25s's per-query ``get_scores`` (the baseline), dense and hybrid, with acc@1 and recall@10 beside; the
growth from HPO to GO (strings ratio vs time ratio). Each phase runs in a child process (its own
peak memory, ``ru_maxrss`` from ``os.wait4``); bound and build alternate, ``--repeat`` times each;
median and best. ``--limit-strings N``: only the N shortest distinct strings of each terminology
(a quick check; accuracies then mean little). ``--json``: benchmarks/results/retrieval_cpu.{json,md}
(no paths). Everything runs in a temporary $TERMNORM_CACHE.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "retrieval_cpu"


# ---------------------------------------------------------------- children (one phase each)


def _entries(key: str, limit: int | None) -> Any:
    """The terminology's entries; with ``limit``, only those whose text is among the ``limit`` shortest
    distinct texts (concepts left without an entry dropped)."""
    import numpy as np

    from termnorm_eval.retrieval import dense
    from termnorm_eval.retrieval.entries import Entries, load_entries

    entries = load_entries(key)
    if limit is None:
        return entries
    keep_texts = set(dense.distinct_texts(entries)[0][:limit])
    keep = [i for i, t in enumerate(entries.texts) if t in keep_texts]
    old_concepts = sorted({int(entries.concept[i]) for i in keep})
    new_of = {c: n for n, c in enumerate(old_concepts)}
    concept = np.asarray([new_of[int(entries.concept[i])] for i in keep], dtype=np.int32)
    by_fold: dict[str, list[int]] = {}
    from termnorm_eval.splits.mentions import fold

    for n, i in enumerate(keep):
        by_fold.setdefault(fold(entries.texts[i]), []).append(n)
    ids = tuple(entries.ids[c] for c in old_concepts)
    symbols = tuple(entries.symbols[c] for c in old_concepts)
    return Entries(
        key=key, release=f"limit{limit:011d}", ids=ids, symbols=symbols,
        labels=tuple(entries.labels[c] for c in old_concepts), concept=concept,
        starts=np.flatnonzero(np.r_[True, np.diff(concept) > 0]).astype(np.int64),
        texts=tuple(entries.texts[i] for i in keep), kinds=tuple(entries.kinds[i] for i in keep),
        by_fold={f: tuple(v) for f, v in by_fold.items()},
        concept_of_id={i: n for n, i in enumerate(ids)},
        concept_of_symbol={s: n for n, s in enumerate(symbols) if s})


def child_bound(key: str, limit: int | None) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    from termnorm_eval import embedding_model
    from termnorm_eval.retrieval import dense

    texts = dense.distinct_texts(_entries(key, limit))[0]
    spec = embedding_model.default_model_path()
    t0 = time.perf_counter()
    model = SentenceTransformer(str(spec), device="cpu")
    model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                 show_progress_bar=False)
    return {"seconds": time.perf_counter() - t0, "strings": len(texts)}


def child_dense_build(key: str, limit: int | None) -> dict[str, Any]:
    import sentence_transformers  # noqa: F401  # imported before the clock, as the bound's

    from termnorm_eval.retrieval import cache
    from termnorm_eval.retrieval import entries as entries_mod
    from termnorm_eval.retrieval.spec import RetrieverSpec

    spec = RetrieverSpec.parse("dense", None)
    spec.identity()  # the model files' digests, cached: not part of a build
    entries_mod._load.cache_clear()
    t0 = time.perf_counter()
    entries = _entries(key, limit)  # reading the release index is part of the build
    scorer = cache.open_dense(spec, entries, device="cpu", force=True, show_progress=False)
    return {"seconds": time.perf_counter() - t0, "strings": int(scorer.vectors.shape[0]),
            "entries": len(entries.texts)}


def child_bm25_build(key: str, limit: int | None) -> dict[str, Any]:
    import bm25s  # noqa: F401  # imported inside bm25.build: before the clock

    from termnorm_eval.retrieval import cache
    from termnorm_eval.retrieval import entries as entries_mod
    from termnorm_eval.retrieval.spec import RetrieverSpec

    entries_mod._load.cache_clear()
    t0 = time.perf_counter()
    entries = _entries(key, limit)
    cache.open_bm25(RetrieverSpec.parse("bm25", None), entries, force=True, show_progress=False)
    return {"seconds": time.perf_counter() - t0, "strings": len(entries.texts)}


def _documents(key: str) -> list[tuple[str, str, str]]:
    """(question, gold answer, answer format) of every retrievable document of ``key``, all splits."""
    from termnorm_eval.harness.dataset import build_docs
    from termnorm_eval.splits import store

    out = []
    for d in store.terminology(key).all_directions:
        if d.answer_kind == "id" and d.source != "id":  # X->ID: an identifier or symbol from a string
            for split in d.splits:
                out += [(str(x["source"]), str(x["answer"]), str(x["answer_format"]))
                        for x in build_docs(key, d.name, split)]
    return out


def _accuracy(entries: Any, docs: list[tuple[str, str, str]], rankings: list[Any]) -> dict[str, float]:
    gold = [entries.concept_of(a, f) for _, a, f in docs]
    top1 = sum(len(r.concepts) > 0 and r.concepts[0] == g for r, g in zip(rankings, gold, strict=True))
    top10 = sum(g in r.concepts[:10].tolist() for r, g in zip(rankings, gold, strict=True))
    return {"acc@1": top1 / len(docs), "recall@10": top10 / len(docs)}


def _timed(fn: Any, repeat: int) -> tuple[list[float], Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def child_queries(key: str, limit: int | None, kinds: list[str], repeat: int) -> dict[str, Any]:
    import numpy as np

    from termnorm_eval.retrieval import cache, rank
    from termnorm_eval.retrieval.search import FLOOR, Retriever, Scorer
    from termnorm_eval.retrieval.spec import RetrieverSpec

    entries = _entries(key, limit)
    docs = _documents(key)
    queries = [q for q, _, _ in docs]
    scorers: dict[str, Scorer] = {"bm25": cache.open_bm25(RetrieverSpec.parse("bm25", None), entries,
                                                          show_progress=False)}
    if "dense" in kinds:
        scorers["dense"] = cache.open_dense(RetrieverSpec.parse("dense", None), entries, device="cpu",
                                            show_progress=False)
    out: dict[str, Any] = {"documents": len(docs)}
    for kind in kinds:
        r = Retriever(RetrieverSpec.parse(kind, None), entries, scorers)
        r.search(queries[:256])  # warm-up (a dense query vector for a non-entry text loads the model)
        times, rankings = _timed(lambda r=r: r.search(queries, holdout=True, k=100), repeat)
        out[kind] = {"seconds": times, "queries_per_s": len(queries) / statistics.median(times),
                     **_accuracy(entries, docs, rankings)}
        if kind == "bm25":  # the baseline: bm25s's own per-query scores, then the same mask, pool, top-k
            scorer = scorers["bm25"]
            sample = queries[: min(len(queries), 1000)]

            def loop(sample: list[str] = sample, scorer: Any = scorer) -> list[Any]:
                res = []
                for q in sample:
                    row = scorer.loop_scores(q)[None, :]
                    rank.mask(row, [entries.holdout(q)])
                    res.append(rank.top_k(rank.pool(row, entries.starts)[0], 100, FLOOR["bm25"]))
                return res

            loop_times, loop_res = _timed(loop, repeat)
            batched = r.search(sample, holdout=True, k=100)
            same = all(np.array_equal(a.concepts, b[0]) for a, b in zip(batched, loop_res, strict=True))
            out["bm25_loop"] = {"seconds": loop_times, "queries": len(sample),
                                "queries_per_s": len(sample) / statistics.median(loop_times),
                                "same_rankings": same}
    return out


def child_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("phase")
    ap.add_argument("key")
    ap.add_argument("--limit-strings", type=int)
    ap.add_argument("--kinds", default="bm25")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--result")
    a = ap.parse_args(argv)
    if a.phase == "bound":
        res = child_bound(a.key, a.limit_strings)
    elif a.phase == "dense_build":
        res = child_dense_build(a.key, a.limit_strings)
    elif a.phase == "bm25_build":
        res = child_bm25_build(a.key, a.limit_strings)
    else:
        res = child_queries(a.key, a.limit_strings, a.kinds.split(","), a.repeat)
    Path(a.result).write_text(json.dumps(res))


# ---------------------------------------------------------------- parent


def run_child(phase: str, key: str, args: argparse.Namespace, cache: Path, *extra: str) -> dict[str, Any]:
    """Run one phase in a child; its result and its peak resident memory (MB)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result = Path(fh.name)
    cmd = [sys.executable, __file__, "--child", phase, key, "--result", str(result), *extra]
    if args.limit_strings:
        cmd += ["--limit-strings", str(args.limit_strings)]
    env = {**os.environ, "TERMNORM_CACHE": str(cache)}
    env.pop("TERMNORM_EMBEDDING_MODEL", None)
    proc = subprocess.Popen(cmd, env=env, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{phase} {key}: child failed ({proc.returncode})")
    out = json.loads(result.read_text())
    result.unlink()
    out["peak_mb"] = round(usage.ru_maxrss / 1024, 1)  # KiB on Linux
    return out


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 3), "best": round(min(xs), 3)}


def measure(key: str, args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    res: dict[str, Any] = {}
    with_dense = key in args.dense_keys.split(",")
    if with_dense:
        bound, build = [], []
        for i in range(args.repeat):  # alternating: both sides see the same machine load
            bound.append(run_child("bound", key, args, cache))
            build.append(run_child("dense_build", key, args, cache))
            print(f"{key} run {i + 1}: bound {bound[-1]['seconds']:.1f} s, dense build "
                  f"{build[-1]['seconds']:.1f} s ({build[-1]['strings']} strings)", flush=True)
        tb = [b["seconds"] for b in bound]
        td = [b["seconds"] for b in build]
        strings = build[0]["strings"]
        res["dense_build"] = {
            "strings": strings, "entries": build[0]["entries"], "bound_s": _stats(tb), "build_s": _stats(td),
            "bound_strings_per_s": round(strings / statistics.median(tb), 1),
            "build_strings_per_s": round(strings / statistics.median(td), 1),
            "ratio_median": round(statistics.median(tb) / statistics.median(td), 3),
            "ratio_best": round(min(tb) / min(td), 3),
            "peak_mb": {"bound": max(b["peak_mb"] for b in bound), "build": max(b["peak_mb"] for b in build)},
        }
    bm = [run_child("bm25_build", key, args, cache) for _ in range(max(3, args.repeat))]
    tbm = [b["seconds"] for b in bm]
    res["bm25_build"] = {"strings": bm[0]["strings"], "seconds": _stats(tbm),
                         "strings_per_s": round(bm[0]["strings"] / statistics.median(tbm), 1),
                         "peak_mb": max(b["peak_mb"] for b in bm)}
    kinds = ["bm25", *(["dense", "hybrid"] if with_dense else [])]
    q = run_child("queries", key, args, cache, "--kinds", ",".join(kinds),
                  "--repeat", str(max(3, args.repeat)))
    res["queries"] = q
    return res


def render_md(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = ["# Retrieval benchmark (CPU)", "",
             f"`{report['command']}`: {m['cpus']} CPUs, load average {m['load_start']:.1f} at the start, "
             f"{m['load_end']:.1f} at the end; Python {m['python']}, torch {m['torch']}, "
             f"sentence-transformers {m['sentence_transformers']}, bm25s {m['bm25s']}; embedder "
             f"all-MiniLM-L6-v2, batch 64."
             + (f" Only the {report['limit_strings']} shortest distinct strings of each terminology."
                if report["limit_strings"] else ""), "",
             "| terminology | entries / distinct strings | bound (encode only) | dense build | "
             "build / bound throughput | BM25 build | peak MB (bound / build / bm25 / queries) |",
             "|---|---|---|---|---|---|---|"]
    for key, r in report["terminologies"].items():
        d, b, q = r.get("dense_build"), r["bm25_build"], r["queries"]
        dense_cells = ("-", "-", "-")
        peaks = "- / -"
        if d:
            dense_cells = (f"{d['bound_s']['median']:.1f} s ({d['bound_strings_per_s']:.0f}/s)",
                           f"{d['build_s']['median']:.1f} s ({d['build_strings_per_s']:.0f}/s)",
                           f"**{d['ratio_median']:.2f}x** median, {d['ratio_best']:.2f}x best")
            peaks = f"{d['peak_mb']['bound']:.0f} / {d['peak_mb']['build']:.0f}"
        bm25_cell = f"{b['seconds']['median']:.2f} s ({b['strings_per_s']:,.0f}/s)"
        distinct = f"{d['strings']:,}" if d else "-"
        peaks += f" / {b['peak_mb']:.0f} / {q['peak_mb']:.0f}"
        lines.append(f"| {key} | {b['strings']:,} / {distinct} | {' | '.join(dense_cells)} | {bm25_cell} | "
                     f"{peaks} |")
    lines += ["", "Queries: every retrievable document (all splits), leave-one-out, top 100; median of "
              "the repeats.", "", "| terminology | documents | retriever | queries/s | acc@1 | recall@10 |",
              "|---|---|---|---|---|---|"]
    for key, r in report["terminologies"].items():
        q = r["queries"]
        for kind in ("bm25", "dense", "hybrid"):
            if kind in q:
                k = q[kind]
                lines.append(f"| {key} | {q['documents']:,} | {kind} | {k['queries_per_s']:,.0f} | "
                             f"{100 * k['acc@1']:.1f}% | {100 * k['recall@10']:.1f}% |")
        lp = q["bm25_loop"]
        lines.append(f"| {key} | {lp['queries']:,} | bm25, bm25s get_scores loop (baseline) | "
                     f"{lp['queries_per_s']:,.0f} | same rankings: {lp['same_rankings']} | |")
    for kind, g in report.get("growth", {}).items():
        lines += ["", f"Growth HPO -> GO, {kind} build: strings x{g['strings']:.2f}, time x{g['time']:.2f}."]
    targets = [f"{k}: {'met' if r['dense_build']['ratio_median'] >= 0.9 else 'missed'}"
               for k, r in report["terminologies"].items() if "dense_build" in r]
    if targets:
        lines += ["", "Target build >= 0.9x the bound's throughput: " + "; ".join(targets) + "."]
    return "\n".join(lines) + "\n"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", default="hpo,go")
    ap.add_argument("--dense-keys", default=None, help="the keys that get the dense phases (default: all; "
                    "'' for none)")
    ap.add_argument("--repeat", type=int, default=1, help="bound/build pairs (BM25 phases: at least 3)")
    ap.add_argument("--limit-strings", type=int, default=None)
    ap.add_argument("--json", action="store_true", help=f"write {RESULTS.relative_to(REPO)}.json and .md")
    args = ap.parse_args()
    if args.dense_keys is None:
        args.dense_keys = args.keys

    from importlib.metadata import version  # no import of torch here: a child's ru_maxrss counts the
    # memory of the process it was forked from

    report: dict[str, Any] = {
        "command": "python benchmarks/bench_retrieval.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "load_start": os.getloadavg()[0],
                    "python": platform.python_version(),
                    "torch": version("torch"), "sentence_transformers": version("sentence-transformers"),
                    "bm25s": version("bm25s")},
        "limit_strings": args.limit_strings, "terminologies": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        for key in args.keys.split(","):
            report["terminologies"][key] = measure(key, args, Path(tmp))
    report["machine"]["load_end"] = os.getloadavg()[0]
    t = report["terminologies"]
    if "hpo" in t and "go" in t:  # strings: entries for BM25, distinct texts for dense
        report["growth"] = {}
        for kind, field in (("bm25", "seconds"), ("dense", "build_s")):
            hpo, go = t["hpo"].get(f"{kind}_build"), t["go"].get(f"{kind}_build")
            if hpo and go:
                report["growth"][kind] = {"strings": go["strings"] / hpo["strings"],
                                          "time": go[field]["median"] / hpo[field]["median"]}
    md = render_md(report)
    print(md)
    if args.json:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.with_suffix(".json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        RESULTS.with_suffix(".md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
