"""Hierarchy-aware wrong answers in real lm_eval output and in `termnorm report` (issue 21, item 7).

A model that answers the gold term's is_a parent, child or grandparent is a model served on
127.0.0.1 (an OpenAI-compatible chat server in a thread) that answers each prompt from a table made
here out of the shipped release index. `termnorm eval` scores it with lm-eval's
local-chat-completions through the real task YAMLs, filter and process_results; `termnorm report`
reads the results and samples files lm_eval wrote.
"""

from __future__ import annotations

import csv
import json
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from termnorm_cli import run

from termnorm_eval.cli import main
from termnorm_eval.harness import taskgen
from termnorm_eval.harness import validity_names as vn
from termnorm_eval.harness.dataset import build_docs
from termnorm_eval.report import render
from termnorm_eval.splits import release_index as ri
from termnorm_eval.splits.store import shipped_data_dir

pytest.importorskip("tenacity", reason="the api extra is not installed: pip install '.[api]'")
pytest.importorskip("aiohttp", reason="the api extra is not installed: pip install '.[api]'")
pytestmark = pytest.mark.slow

F = taskgen.FILTER_NAME
LIMIT = 8
KEYS = ("hpo", "go")
TASKS = [taskgen.task_name(k, "term2id", "val") for k in KEYS]


@contextmanager
def serve(answer: Callable[[str], str]) -> Iterator[str]:
    """A chat-completions server answering each prompt with ``answer(prompt)``; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._send({"object": "list", "data": [{"id": "m"}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
            message = {"role": "assistant", "content": answer(prompt)}
            self._send({"id": "x", "object": "chat.completion",
                        "choices": [{"index": 0, "finish_reason": "stop", "message": message}]})

        def _send(self, obj: object) -> None:
            data = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1/chat/completions"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _unrelated(idx: ri.ReleaseIndex, gold: str) -> str:
    """A live term of the gold's aspect that is no relative of it (and not one digit off)."""
    family = idx.ancestors(gold) | {gold}
    return next(t for t, s in sorted(idx.status.items()) if s == "live" and t not in family
                and idx.aspect.get(t, "") == idx.aspect.get(gold, "") and gold not in idx.ancestors(t)
                and set(idx.parents_of(t)).isdisjoint(idx.parents_of(gold))
                and sum(a != b for a, b in zip(t, gold, strict=False)) > 1)


def _plan() -> dict[str, dict[str, tuple[str, str, float]]]:
    """Per run, per prompt: (response, expected category, expected hierarchy credit)."""
    plan: dict[str, dict[str, tuple[str, str, float]]] = {"base": {}, "tuned": {}}
    for key in KEYS:
        idx = ri.load(shipped_data_dir() / key / ri.FILE_NAME)
        for i, doc in enumerate(build_docs(key, "term2id", "val")[:LIMIT]):
            gold = doc["answer"]
            parent = idx.parents_of(gold)[0]
            grand = next(iter(idx.parents_of(parent)), None)
            plan["base"][doc["input"]] = (_unrelated(idx, gold), "wrong_unrelated", 0.0)
            plan["tuned"][doc["input"]] = [
                (gold, "correct", 1.0),
                (parent, "wrong_parent", 0.5),
                (f"The identifier is {parent}.", "wrong_parent", 0.0),  # strict rule: no credit
                (grand, "wrong_ancestor", 0.0) if grand and grand not in idx.parents_of(gold)
                else (parent, "wrong_parent", 0.5),
            ][i % 4]
    return plan


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("hierarchy-runs")
    plan = _plan()
    for name, table in plan.items():
        def answer(prompt: str, table: dict[str, tuple[str, str, float]] = table) -> str:
            return next((r for q, (r, _, _) in table.items() if q in prompt), "None")

        with serve(answer) as url:
            args = f"model=m,base_url={url},num_concurrent=1,max_retries=1,tokenizer_backend=None"
            try:  # in-process, as test_harness_groups runs it (a module fixture has no capsys)
                main(["eval", "--model", "local-chat-completions", "--model-args", args,
                      "--tasks", ",".join(TASKS), "--apply-chat-template", "--limit", str(LIMIT),
                      "--output-path", str(root / name), "--log-samples"])
            except SystemExit as e:
                assert not e.code, e.code
    return {"root": root, "plan": plan}


def test_real_results_hold_the_relations_and_the_credit(runs: dict) -> None:
    root, plan = runs["root"], runs["plan"]
    for name in ("base", "tuned"):
        (res_file,) = (root / name).rglob("results_*.json")
        res = json.loads(res_file.read_text())["results"]
        for task in TASKS:
            path = next((root / name).rglob(f"samples_{task}_*.jsonl"))
            samples = [json.loads(x) for x in path.read_text().splitlines()]
            assert len(samples) == LIMIT
            for s in samples:
                _, category, credit = plan[name][s["doc"]["input"]]
                assert s[vn.metric(category)] == 1.0 and s[vn.CREDIT] == credit, (task, s["resps"])
                assert math.isclose(sum(s[m] for m in vn.METRICS), 1.0)
            row = res[task]
            assert math.isclose(sum(row[f"{m},{F}"] for m in vn.METRICS), 1.0)
            want = sum(plan[name][s["doc"]["input"]][2] for s in samples) / LIMIT
            assert row[f"{vn.CREDIT},{F}"] == pytest.approx(want)
            assert row[f"{vn.metric('wrong_real')},{F}"] == 0.0  # GO and HPO have the hierarchy


def test_report_shows_the_relations_and_the_credit_before_and_after(
        runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = runs["root"]
    out = tmp_path / "rep"
    code, printed, err = run(["report", "--base", str(root / "base"), "--tuned", str(root / "tuned"),
                              "--label", "closer", "--out", str(out)], capsys)
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    assert {v["task"] for v in rep["validity"]} == set(TASKS)
    for v in rep["validity"]:
        assert "wrong_parent" in v["shares"] and "wrong_real" not in v["shares"]
        assert math.isclose(sum(v["shares"].values()), 1.0, abs_tol=1e-6)
        if v["run"] == "closer":
            assert v["shares"]["wrong_parent"] > 0 and v["shares"]["correct"] > 0
        else:
            assert v["shares"]["wrong_unrelated"] == 1.0
    rows = {(r["task"], r["role"]): r for r in csv.DictReader((out / "report.csv").open())}
    for task in TASKS:
        base, tuned = rows[(task, "base")], rows[(task, "tuned")]
        assert float(base["credit"]) == 0.0 and float(tuned["credit"]) > float(tuned["strict"])
        assert float(tuned["close"]) >= 0.5  # parents (bare or in a sentence) in half the answers
        lo, hi = float(tuned["delta_credit_lo"]), float(tuned["delta_credit_hi"])
        assert lo <= float(tuned["delta_credit"]) <= hi  # 8 documents: a wide interval
    md = (out / "report.md").read_text()
    assert "## Wrong but close: is_a parent or child" in md and "### HPO term2id" in md
    assert vn.LABELS["wrong_parent"] + " %" in md and vn.LABELS["wrong_real"] + " %" not in md
    assert "Wrong but close: GO term2id" in printed and render.CREDIT_HEAD[5] in printed
    png = (out / "validity.png").read_bytes()
    assert png.startswith(b"\x89PNG")
