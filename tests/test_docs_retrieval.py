"""The retrieval figures the READMEs quote are the committed results' (benchmarks/results/retrieval:
`termnorm retrieve eval` with bm25 and dense on the shipped splits), and those results are consistent
with the shipped data: one row per X->ID task and split, each results file's means equal to its
summary table."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from termnorm_eval.retrieval.evaluate import select_tasks
from termnorm_eval.splits import rag

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results/retrieval"
KINDS = ("bm25", "dense")


def _table(kind: str) -> dict[str, dict[str, str]]:
    rows = csv.DictReader((RESULTS / kind / "retrieval.csv").open(encoding="utf-8"))
    return {r["task"]: r for r in rows if r["stratum"] == "all"}


def _pct(x: str) -> str:
    return f"{100 * float(x):.1f}"


@pytest.mark.parametrize("kind", KINDS)
def test_the_committed_results_cover_every_x_to_id_task_of_the_shipped_data(kind: str) -> None:
    table = _table(kind)
    assert sorted(table) == [t.name for t in select_tasks(None)]
    (res,) = (RESULTS / kind / f"retriever-{kind}").glob("results_*.json")
    data = json.loads(res.read_text(encoding="utf-8"))
    assert data["termnorm_retrieval"]["data_manifest"] == rag.manifest_sha256()[:16]  # today's data
    for task, row in table.items():
        means = data["results"][task]
        assert int(row["n"]) == data["n-samples"][task]["effective"]
        for m in ("acc@1", "acc@5", "recall@10", "mrr"):
            assert float(row[m]) == pytest.approx(means[f"{m},extract"], abs=1e-6), (task, m)


def test_the_readme_tables_quote_the_committed_results() -> None:
    bm25, dense = _table("bm25"), _table("dense")
    for readme, splits in ((ROOT / "README.md", ("val",)), (RESULTS / "README.md", ("train", "val"))):
        text = readme.read_text(encoding="utf-8")
        seen = 0
        for task, b in bm25.items():
            _, key, direction, split = task.split("_")
            if split not in splits:
                continue
            m = re.search(rf"^\| {key}_{direction} \| {split} \|(.*)$", text, re.M)
            assert m is not None, (readme.name, task)
            cells = [c.strip() for c in m.group(1).split("|")][:-1]
            d = dense[task]
            lookup = _pct(b["lookup_acc@1"]) if b["lookup_acc@1"] else ""
            expected = [b["n"], _pct(b["acc@1"]), _pct(b["acc@5"]), _pct(b["recall@10"]), _pct(d["acc@1"]),
                        _pct(d["acc@5"]), _pct(d["recall@10"]), lookup]
            assert cells == expected, (readme.name, task)
            seen += 1
        assert seen == len([t for t in bm25 if t.rsplit("_", 1)[1] in splits])
