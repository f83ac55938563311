"""The retrieval arm of the report (issue 22, item 6) on the committed CPU mini-study run
(benchmarks/results/mini_study/rag: SmolLM2-135M and the transfer run's three adapters, plain and with
the shipped bm25 candidates, and bm25 itself on the same documents). `termnorm report` is rerun on the
committed inputs and must give the committed rag.csv; each row's numbers are recounted here from the
samples files (json, not the report's reader), the exact McNemar p from scipy; the README tables
quote rag.csv."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest
from scipy import stats
from termnorm_cli import run

ROOT = Path(__file__).resolve().parents[1]
RAG = ROOT / "benchmarks/results/mini_study/rag"
TRANSFER = ROOT / "benchmarks/results/mini_study/transfer/study-out"


def _samples(folder: Path, task: str) -> dict[str, dict]:
    (f,) = folder.glob(f"*/samples_{task}_*.jsonl")
    return {json.loads(line)["doc"]["item_id"]: json.loads(line) for line in f.read_text().splitlines()}


def _report(tmp: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp / "report"
    rel = RAG.relative_to(ROOT)
    t = TRANSFER.relative_to(ROOT)
    argv = ["report", "--base", str(t / "base/results"), "--base", str(rel / "base")]
    for key in ("go", "hpo", "gene"):
        argv += ["--tuned", str(t / f"eval-{key}/results"), "--tuned", str(rel / f"eval-{key}"),
                 "--label", f"eval-{key}", "--label", f"eval-{key}"]
    argv += ["--retriever", str(rel / "retrieve"), "--out", str(out)]
    cwd = os.getcwd()
    os.chdir(ROOT)  # relative paths, as run.sh gives them
    try:
        code, _, err = run(argv, capsys)
    finally:
        os.chdir(cwd)
    assert code == 0, err
    return out


def test_the_committed_rag_table_is_what_the_report_makes(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = _report(tmp_path, capsys)
    assert (out / "rag.csv").read_text() == (RAG / "report/rag.csv").read_text()
    assert (out / "rag.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "## Retrieval arm: with and without candidates" in md and "![rag.png](rag.png)" in md


def test_each_row_is_recounted_from_the_samples() -> None:
    rows = list(csv.DictReader((RAG / "report/rag.csv").open(encoding="utf-8")))
    assert len(rows) == 32  # 16 tasks x (base, the terminology's adapter)
    for r in rows:
        task = f"{r['terminology']}_{r['direction']}_{r['split']}"
        run_dir = RAG / ("base" if r["role"] == "base" else r["run"])
        plain_dir = TRANSFER / ("base" if r["role"] == "base" else r["run"]) / "results"
        rag = _samples(run_dir, f"termnorm-rag_{task}")
        plain = _samples(plain_dir, f"termnorm_{task}")
        ids = [i for i in rag if i in plain]  # the adapter trained the first 30: every document here
        assert len(ids) == int(r["n"]) == 30
        before = [plain[i]["exact_match"] == 1.0 for i in ids]
        after = [rag[i]["exact_match"] == 1.0 for i in ids]
        gained = sum(1 for b, a in zip(before, after, strict=True) if a and not b)
        lost = sum(1 for b, a in zip(before, after, strict=True) if b and not a)
        assert (int(r["gained"]), int(r["lost"])) == (gained, lost), task
        assert float(r["plain"]) == pytest.approx(sum(before) / 30, abs=1e-6)
        assert float(r["rag"]) == pytest.approx(sum(after) / 30, abs=1e-6)
        p = 1.0 if gained + lost == 0 else stats.binomtest(gained, gained + lost).pvalue
        assert float(r["p_strict"]) == pytest.approx(p, rel=1e-4), task
        shown = [rag[i]["doc"]["gold_in_candidates"] for i in ids]
        assert float(r["ceiling"]) == pytest.approx(sum(shown) / 30, abs=1e-6)
        # the candidates shown are the document's own, the gold among them exactly when the doc says so
        for i in ids:
            doc = rag[i]["doc"]
            assert (doc["answer"] in doc["candidates"]) == doc["gold_in_candidates"]
            assert len(doc["candidates"]) <= 10
        ret = _samples(RAG / "retrieve", f"termnorm_{task}")
        assert float(r["retriever"]) == pytest.approx(sum(ret[i]["acc@1"] for i in ids) / 30, abs=1e-6)


def _pct(x: str) -> str:
    return f"{100 * float(x):.1f}"


def test_the_readmes_rag_tables_are_the_committed_cells() -> None:
    rows = list(csv.DictReader((RAG / "report/rag.csv").open(encoding="utf-8")))
    by = {}
    for r in rows:
        by.setdefault((r["terminology"], r["direction"], r["cell"]), {})[r["role"]] = r
    for readme in (ROOT / "README.md", RAG / "README.md"):
        text = readme.read_text(encoding="utf-8")
        found = 0
        for (key, direction, cell), v in by.items():
            b, t = v["base"], v["tuned"]
            line = re.search(rf"^\| {key} \| {direction} \| {cell} \|(.*)$", text, re.M)
            assert line is not None, (readme, key, direction, cell)
            cells = [c.strip() for c in line.group(1).split("|")]
            assert cells[:6] == [t["n"], _pct(b["plain"]), _pct(b["rag"]), _pct(t["plain"]), _pct(t["rag"]),
                                 f"{100 * float(t['delta']):+.1f}"], (readme, key, direction, cell)
            assert cells[6:8] == [_pct(t["ceiling"]), _pct(t["retriever"])]
            found += 1
        assert found == 16
