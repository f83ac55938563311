"""Audit of a build's popularity axis: the figures benchmark v2 (issue 11) is measured by.

    python benchmarks/audit_popularity.py [DATA_DIR] [--sources DIR]

DATA_DIR defaults to the shipped splits, --sources to the pinned mirror files. Independent of the
build code: it reads the records and the manifest as JSON, and the release files with its own
plain loops (``is_a`` lines of hp.obo, the GAF's columns), so a bug in the builder cannot hide
behind itself. tests/test_benchmark_v2.py asserts these figures on the shipped build.

Per series (GO: each aspect; HPO; genes):

* ``zero``: share of records with popularity 0;
* ``decided_by_id``: records whose (popularity, secondary) value lies in the range of more than one
  bin (their bin would then depend on the identifier order or on chance);
* ``same_adjacent``: pairs of adjacent bins that each hold one and the same (popularity, secondary);
* ``spearman``: Spearman correlation of bin index and popularity over train + val;
* HPO ``under_root``: share of records below HP:0000118 by ``is_a``;
* genes ``mass_only``: share of records all of whose PMIDs are cited for >= 1,000 genes.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = "HP:0000118"
MASS = 1000


def _records(data_dir: Path, key: str) -> list[dict[str, Any]]:
    out = []
    for split in ("train", "val"):
        with (data_dir / key / f"{split}.jsonl").open(encoding="utf-8") as fh:
            out += [json.loads(line) for line in fh if line.strip()]
    return out


def series(data_dir: Path) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """name -> (records of train + val, per-bin ranges {bin, key_min, key_max} from the manifest)."""
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    out = {}
    for key, t in manifest["terminologies"].items():
        records = _records(data_dir, key)
        strata = sorted(t["bins"][0].get("by_stratum", {}))
        for s in strata or [""]:
            ranges = [{"bin": b["bin"], **(b["by_stratum"][s] if s else b)} for b in t["bins"]]
            out[f"{key} {s}".strip()] = ([r for r in records if not s or r["aspect"] == s], ranges)
    return out


def _edges(b: dict[str, Any]) -> tuple[tuple[float, float], tuple[float, float]]:
    """A bin's lowest and highest (popularity, secondary); builds before v2 record popularity only."""
    if "key_min" in b:
        return tuple(b["key_min"]), tuple(b["key_max"])  # type: ignore[return-value]
    return (b["popularity_min"], -math.inf), (b["popularity_max"], math.inf)


def decided_by_id(records: list[dict[str, Any]], ranges: list[dict[str, Any]]) -> int:
    ranked = [_edges(b) for b in ranges if b.get("label") is None]
    labelled = {b["bin"] for b in ranges if b.get("label") is not None}  # the unannotated bin: by rule
    keys = [(r["popularity"], r.get("popularity_secondary", 0)) for r in records if r["bin"] not in labelled]
    return sum(1 for k in keys if sum(1 for lo, hi in ranked if lo <= k <= hi) != 1)


def same_adjacent(ranges: list[dict[str, Any]]) -> int:
    single = []
    for b in ranges:
        lo, hi = _edges(b)
        single.append(lo if lo[0] == hi[0] and (lo[1] == hi[1] or "key_min" not in b) else None)
    return sum(1 for a, b in itertools.pairwise(single) if a is not None and a == b)


def spearman(records: list[dict[str, Any]]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr([r["bin"] for r in records], [r["popularity"] for r in records]).statistic)


def under_root(records: list[dict[str, Any]], hp_obo: Path, root: str = ROOT) -> float:
    children: dict[str, list[str]] = defaultdict(list)
    current = None
    for line in hp_obo.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            current = None
        elif line.startswith("id: "):
            current = line[4:].strip()
        elif line.startswith("is_a: ") and current:
            children[line[6:].split()[0]].append(current)
    below, stack = set(), [root]
    while stack:
        for c in children[stack.pop()]:
            if c not in below:
                below.add(c)
                stack.append(c)
    return sum(r["id"] in below for r in records) / len(records)


def mass_only(records: list[dict[str, Any]], gaf: Path, hgnc: Path, mass: int = MASS) -> float:
    """Share of gene records whose PMIDs (by symbol or UniProt accession) are all cited for >= ``mass``
    genes (a record with no PMID at all counts too: its popularity cannot come from literature)."""
    accessions = {}
    with hgnc.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        id_col, acc_col = header.index("HGNC ID"), header.index("UniProt ID(supplied by UniProt)")
        for line in fh:
            cols = line.rstrip("\n").split("\t")
            accessions[cols[id_col]] = [a.strip() for a in cols[acc_col].split(",") if a.strip()]
    by_symbol: dict[str, set[str]] = defaultdict(set)
    by_acc: dict[str, set[str]] = defaultdict(set)
    with gzip.open(gaf, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("!"):
                continue
            cols = line.split("\t")
            if "NOT" in cols[3].split("|"):
                continue
            pmids = {x for x in cols[5].split("|") if x.startswith("PMID:")}
            by_symbol[cols[2]] |= pmids
            by_acc[cols[1]] |= pmids
    genes_of: dict[str, int] = defaultdict(int)
    for pmids in by_symbol.values():
        for p in pmids:
            genes_of[p] += 1
    only = 0
    for r in records:
        pmids = set(by_symbol.get(r["symbol"], set()))
        for a in accessions.get(r["id"], []):
            pmids |= by_acc.get(a, set())
        only += all(genes_of[p] >= mass for p in pmids)
    return only / len(records)


def audit(data_dir: Path, sources: Path) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    for name, (records, ranges) in series(data_dir).items():
        f = figures[name] = {
            "records": len(records),
            "zero": sum(r["popularity"] == 0 for r in records) / len(records),
            "decided_by_id": decided_by_id(records, ranges),
            "same_adjacent": same_adjacent(ranges),
            "spearman": spearman(records),
        }
        if name == "hpo":
            f["under_root"] = under_root(records, sources / "hp.obo")
        if name == "gene":
            f["mass_only"] = mass_only(records, sources / "goa_human.gaf.gz",
                                       sources / "hgnc_complete_set.txt")
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_dir", nargs="?", type=Path, default=None, help="default: the shipped splits")
    ap.add_argument("--sources", type=Path, default=None, help="default: the pinned mirror files")
    args = ap.parse_args()
    from termnorm_eval.sources.fetch import default_dest, fetch_mirror
    from termnorm_eval.splits.store import shipped_data_dir

    sources = args.sources or default_dest()
    if args.sources is None:
        fetch_mirror(sources)  # no-op when the files are already there
    data_dir = args.data_dir or shipped_data_dir()
    figures = audit(data_dir, sources)
    print(f"{data_dir}")
    print(f"{'series':8} {'records':>7} {'pop. 0':>7} {'bin by id':>9} {'same adj.':>9} {'Spearman':>8}  "
          "other")
    for name, f in figures.items():
        other = ""
        if "under_root" in f:
            other = f"under {ROOT}: {100 * f['under_root']:.1f}%"
        if "mass_only" in f:
            other = f"popularity only from papers citing >= {MASS} genes: {100 * f['mass_only']:.1f}%"
        print(f"{name:8} {f['records']:>7} {100 * f['zero']:>6.1f}% {f['decided_by_id']:>9} "
              f"{f['same_adjacent']:>9} {f['spearman']:>8.3f}  {other}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
