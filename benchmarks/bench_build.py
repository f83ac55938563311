"""Full split build vs. pronto alone parsing the same OBO files, measured in the same run.

    python benchmarks/bench_build.py [--repeat 3] [--sources DIR]

Target: the whole build (GO + HPO + genes: OBO parse, annotation tables, sampling, checks, atomic
write) costs at most 0.6x the bare pronto parse of go.obo + hp.obo. Also printed: the OBO reader
(``sources.obo.read_obo``) alone against pronto on each file. Runs alternate so that both sides see
the same machine load; the ratio of the best runs and of the medians is printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path


def pronto_only(paths: list[Path], threads: int) -> None:
    import pronto

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in paths:
            pronto.Ontology(str(p), import_depth=0, threads=threads, encoding="utf-8")


def reader_only(path: Path) -> None:
    from termnorm_eval.sources.obo import read_obo

    read_obo(path)


def full_build(sources: Path, out_root: Path) -> dict[str, float]:
    """One build like `termnorm data build`; returns wall seconds per stage."""

    from termnorm_eval.splits.build import build_parameters, build_splits, manifest_for, write_build
    from termnorm_eval.splits.datacard import card_files

    stages: dict[str, float] = {}
    last = ["start", time.perf_counter()]

    def progress(stage: str) -> None:
        now = time.perf_counter()
        stages[last[0]] = stages.get(last[0], 0.0) + now - last[1]
        last[:] = [stage, now]

    built, srcs, _ = build_splits(sources, progress=progress)
    progress("writing")
    params = build_parameters()
    extra = card_files(manifest_for(built, params, srcs))  # the PNG is bytes
    write_build(out_root / "splits", built, params, srcs, force=True, extra_files=extra)
    progress("done")
    return stages


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sources", type=Path, default=None, help="default: the pinned mirror files")
    args = ap.parse_args()

    from termnorm_eval.sources.fetch import default_dest, fetch_mirror

    sources = args.sources or default_dest()
    if args.sources is None:
        fetch_mirror(sources)  # no-op when the files are already there
    obo_files = [sources / "go.obo", sources / "hp.obo"]
    threads = min(4, os.cpu_count() or 1)  # what the build gave pronto when pronto read its OBO files
    # warm-up: imports and page cache, so that neither side pays them in the timed runs
    pronto_only([obo_files[1]], threads)
    reader_only(obo_files[1])

    t_pronto: list[float] = []
    t_build: list[float] = []
    cpu_pronto: list[float] = []
    cpu_build: list[float] = []
    t_read: dict[str, list[tuple[float, float]]] = {p.name: [] for p in obo_files}  # (pronto, reader)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for p in obo_files:
                t = time.perf_counter()
                pronto_only([p], threads)
                t_p = time.perf_counter() - t
                t = time.perf_counter()
                reader_only(p)
                t_read[p.name].append((t_p, time.perf_counter() - t))
            c, t = cpu_seconds(), time.perf_counter()
            pronto_only(obo_files, threads)
            t_pronto.append(time.perf_counter() - t)
            cpu_pronto.append(cpu_seconds() - c)
            c, t = cpu_seconds(), time.perf_counter()
            stages = full_build(sources, Path(tmp))
            t_build.append(time.perf_counter() - t)
            cpu_build.append(cpu_seconds() - c)
            print(f"run {i + 1}: pronto parse {t_pronto[-1]:.2f} s, full build {t_build[-1]:.2f} s",
                  flush=True)
    for name, runs in t_read.items():
        p_med = statistics.median(r[0] for r in runs)
        r_med = statistics.median(r[1] for r in runs)
        print(f"{name}: pronto median {p_med:.2f} s, read_obo median {r_med:.2f} s, "
              f"pronto / read_obo {p_med / r_med:.1f}x")
    print("stages of the last build (wall s): "
          + ", ".join(f"{k} {v:.2f}" for k, v in stages.items() if k != "start"))
    best = min(t_build) / min(t_pronto)
    med = statistics.median(t_build) / statistics.median(t_pronto)
    print(f"pronto alone (go.obo + hp.obo, threads={threads}): best {min(t_pronto):.2f} s, "
          f"median {statistics.median(t_pronto):.2f} s")
    print(f"full build (go + hpo + gene, 1200 records each): best {min(t_build):.2f} s, "
          f"median {statistics.median(t_build):.2f} s")
    print(f"ratio build / pronto: best {best:.2f}x, median {med:.2f}x (target <= 0.6x) "
          f"[{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}]")
    # CPU seconds: the work done, which other load on the machine changes less than wall time.
    print(f"CPU time: pronto median {statistics.median(cpu_pronto):.2f} s, build median "
          f"{statistics.median(cpu_build):.2f} s, ratio "
          f"{statistics.median(cpu_build) / statistics.median(cpu_pronto):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
