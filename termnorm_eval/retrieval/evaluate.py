"""Scoring a retriever on the harness's own documents: ``termnorm retrieve eval``.

A retriever answers the X->ID tasks (a label, synonym, lay term, alias, previous symbol, protein
name or approved name in; an identifier or approved symbol out) with its first hit, over every live
concept of the release. The documents are the very ones ``lm_eval`` scores (``dataset.build_docs``),
and the top hit goes through the same ``score_document``: exact and lenient match, popularity
strata and answer validity mean what they mean for a model. Beside them the ranking metrics
(``acc@1``, ``acc@5``, ``recall@10``, ``recall@20``, ``mrr``; each also by popularity stratum).

**What is held out.** The form a document asks is never in the index when it is scored: every entry,
of any concept, whose folded text equals the folded question is masked (``Entries.holdout``). For a
label task that is the label itself (leave-label-out), so the figure is what synonyms, aliases and
near spellings of the label find. Label tasks also report the exact-lookup figures with nothing
held out (``lookup_acc@1``, ``lookup_recall@10``): a dictionary of labels solves the study's
term->ID task, and ``dictionary`` says how often the asked string alone names exactly the gold
concept (for a mention task: how often the form is another entry's text of that concept only).

The output is shaped as the harness's (``retriever-<kind>/results_<stamp>.json`` and
``samples_<task>_<stamp>.jsonl``), so ``termnorm report --retriever OUT`` reads it as one more row,
plus ``retrieval.md`` / ``retrieval.csv`` (task x stratum). No file holds a machine path.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness.dataset import answer_format, build_docs
from termnorm_eval.harness.scoring import score_document
from termnorm_eval.harness.taskgen import FILTER_NAME, task_name
from termnorm_eval.retrieval.search import Ranking, Retriever
from termnorm_eval.retrieval.spec import RetrieverSpec
from termnorm_eval.splits import rag, store
from termnorm_eval.splits.rag import retrievable
from termnorm_eval.terminologies import TASK_VERSION, Direction

FORMAT = "termnorm-retrieval-results/1"
RESULTS_KEY = "termnorm_retrieval"  # the results file's own section: what marks it as ours
MODEL = "termnorm-retriever"  # config.model of the results file
RANKED = 100  # hits kept per query: mrr is 0 beyond
SHOWN = 20  # answers each sample lists
CUTOFFS = {"acc@1": 1, "acc@5": 5, "recall@10": 10, "recall@20": 20}
RANK_METRICS = (*CUTOFFS, "mrr")
LOOKUP_METRICS = ("lookup_acc@1", "lookup_recall@10")
DICTIONARY = "dictionary"
HOLDOUT_RULE = ("every index entry, of any concept, whose folded text equals the folded question is "
                "masked before ranking (leave-one-out; a label task: leave-label-out)")
TABLE_METRICS = ("exact_match", *RANK_METRICS, *LOOKUP_METRICS, DICTIONARY)


@dataclass(frozen=True)
class RetrievalTask:
    name: str
    key: str
    direction: Direction
    split: str


def tasks_of(data_dir: str | Path | None = None) -> dict[str, RetrievalTask]:
    """Every plain task of the data folder, retrievable or not, by name (the checks name both)."""
    out = {}
    for key in store.available(data_dir):
        term = store.terminology(key, data_dir)
        for d in term.all_directions:
            for split in d.splits:
                name = task_name(key, d.name, split)
                out[name] = RetrievalTask(name, key, d, split)
    return out


def select_tasks(patterns: Sequence[str] | None, data_dir: str | Path | None = None) -> list[RetrievalTask]:
    """The retrievable tasks matching ``patterns`` (fnmatch, comma lists allowed; None: all of them; an
    empty list: none). A pattern that names only tasks a retriever cannot answer, or nothing at all,
    is one line."""
    every = tasks_of(data_dir)
    if not every:
        where = "the shipped data" if data_dir is None else f"--data-dir {data_dir}"
        raise TermnormError(f"{where}: no terminology with train and val splits here (a termnorm data build "
                            "or add-ontology output; a user's mention table has no retrieval tasks)")
    if patterns is None:
        patterns = ["*"]
    wanted = [p.strip() for raw in patterns for p in raw.split(",") if p.strip()]
    chosen: dict[str, RetrievalTask] = {}
    for pat in wanted:
        hits = [t for n, t in every.items() if fnmatch.fnmatchcase(n, pat)]
        good = [t for t in hits if retrievable(t.direction)]
        if not hits:
            raise TermnormError(f"--tasks {pat}: matches no termnorm task of this data "
                                "(names are termnorm_<terminology>_<direction>_<split>)")
        if not good:
            raise TermnormError(f"--tasks {pat}: not an X->ID task ({hits[0].name}): a retriever answers "
                                "identifiers and symbols, from labels, forms and names")
        chosen.update((t.name, t) for t in good)
    return [chosen[n] for n in sorted(chosen)]


def _rank(ranking: Ranking, gold: int | None) -> int | None:
    if gold is None:
        return None
    hits = [i for i, c in enumerate(ranking.concepts.tolist()) if c == gold]
    return hits[0] + 1 if hits else None


def _rank_scores(rank: int | None) -> dict[str, float]:
    out = {m: float(rank is not None and rank <= k) for m, k in CUTOFFS.items()}
    out["mrr"] = 0.0 if rank is None else 1.0 / rank
    return out


@dataclass
class TaskScores:
    task: RetrievalTask
    samples: list[dict[str, Any]] = field(default_factory=list)
    total: int | None = None  # the task's documents before --limit (lm-eval's n-samples.original)

    def means(self) -> dict[str, float]:
        """Mean of every numeric metric over the documents that have it (strata: theirs alone)."""
        sums: dict[str, list[float]] = {}
        for s in self.samples:
            for k, v in s["metrics"].items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    sums.setdefault(k, []).append(float(v))
        return {k: sum(v) / len(v) for k, v in sorted(sums.items())}


def score_task(task: RetrievalTask, retriever: Retriever, docs: list[dict[str, Any]],
               progress: Callable[[int], None] | None = None) -> TaskScores:
    """Rank the documents ``docs`` of ``task`` and score them."""
    entries = retriever.entries
    fmt = answer_format(task.direction)
    queries = [str(d["source"]) for d in docs]
    held = retriever.search(queries, holdout=True, k=RANKED, progress=progress)
    label_task = task.direction.mention is None
    looked = retriever.search(queries, holdout=False, k=RANKED) if label_task else None
    out = TaskScores(task)
    for i, (doc, ranking) in enumerate(zip(docs, held, strict=True)):
        gold = entries.concept_of(str(doc["answer"]), fmt)
        answers = [entries.answer(int(c), fmt) for c in ranking.concepts[:SHOWN]]
        top1 = answers[0] if answers else ""
        metrics = {k: v for k, v in score_document(doc, top1).items() if k != "alignment"}
        rank = _rank(ranking, gold)
        ranks = _rank_scores(rank)
        owners = {int(entries.concept[e]) for e in entries.holdout(queries[i])}
        ranks[DICTIONARY] = float(gold is not None and owners == {gold})
        if looked is not None:
            lookup = _rank_scores(_rank(looked[i], gold))
            ranks["lookup_acc@1"], ranks["lookup_recall@10"] = lookup["acc@1"], lookup["recall@10"]
        metrics.update(ranks)
        if doc["stratum"] in store.STRATA:
            metrics.update({f"{m}_{doc['stratum']}": ranks[m] for m in RANK_METRICS})
        out.samples.append({"doc_id": i, "doc": doc, "top1": top1, "rank": rank, "top": answers,
                            "metrics": metrics})
    return out


def _stamp() -> str:
    return datetime.now().strftime("%Y-%m-%dT%H-%M-%S.%f")  # lm_eval's results_<stamp>.json


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def results_files(spec: RetrieverSpec, scored: Sequence[TaskScores], meta: dict[str, Any],
                  stamp: str | None = None) -> dict[str, str]:
    """The results and samples files, by path relative to the output folder."""
    stamp = stamp or _stamp()
    folder = f"retriever-{spec.kind}"
    results, versions, counts = {}, {}, {}
    files: dict[str, str] = {}
    for ts in scored:
        name = ts.task.name
        results[name] = {"alias": name, **{f"{k},{FILTER_NAME}": v for k, v in ts.means().items()}}
        versions[name] = TASK_VERSION
        counts[name] = {"original": ts.total if ts.total is not None else len(ts.samples),
                        "effective": len(ts.samples)}
        files[f"{folder}/samples_{name}_{stamp}.jsonl"] = "".join(_json({
            "doc_id": s["doc_id"], "doc": s["doc"], "target": s["doc"]["answer"], "filter": FILTER_NAME,
            "resps": [[s["top1"]]], "filtered_resps": [s["top1"]], "rank": s["rank"], "top": s["top"],
            **s["metrics"],
        }) + "\n" for s in ts.samples)
    embedder = spec.embedder.name if spec.embedder is not None else ""
    files[f"{folder}/results_{stamp}.json"] = json.dumps({
        "results": results, "versions": versions, "n-samples": counts,
        "config": {"model": MODEL, "model_args": {"retriever": spec.kind, "embedder": embedder,
                                                  "identity": spec.digest()}},
        RESULTS_KEY: {"format": FORMAT, "retriever": spec.identity(), "label": spec.label(),
                      "holdout": HOLDOUT_RULE, **meta},
    }, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return files


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def table_rows(scored: Sequence[TaskScores]) -> list[dict[str, Any]]:
    """One row per task and stratum ("all" first): n and TABLE_METRICS (None where not reported)."""
    rows = []
    for ts in scored:
        groups: dict[str, list[dict[str, Any]]] = {"all": ts.samples}
        for s in ts.samples:
            if s["doc"]["stratum"] in store.STRATA:
                groups.setdefault(s["doc"]["stratum"], []).append(s)
        for stratum in ("all", *store.STRATA):
            docs = groups.get(stratum)
            if not docs:
                continue
            row: dict[str, Any] = {"task": ts.task.name, "stratum": stratum, "n": len(docs)}
            for m in TABLE_METRICS:
                vals = [s["metrics"][m] for s in docs if m in s["metrics"]]
                row[m] = sum(vals) / len(vals) if vals else None
            rows.append(row)
    return rows


def summary_csv(scored: Sequence[TaskScores]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["task", "stratum", "n", *TABLE_METRICS], lineterminator="\n")
    w.writeheader()
    for row in table_rows(scored):
        w.writerow({k: "" if v is None else (f"{v:.6f}" if isinstance(v, float) else v)
                    for k, v in row.items()})
    return buf.getvalue()


def summary_markdown(spec: RetrieverSpec, scored: Sequence[TaskScores], meta: dict[str, Any]) -> str:
    head = ["task", "stratum", "n", "exact %", "acc@1 %", "acc@5 %", "recall@10 %", "recall@20 %",
            "mrr", "lookup acc@1 %", "lookup recall@10 %", "dictionary %"]
    lines = [f"# Retrieval: {spec.label()}", "",
             f"Every live concept of the release is a candidate; held out: {HOLDOUT_RULE}. The lookup "
             "columns (label tasks) hold nothing out: a dictionary of labels answers the study's "
             "term->ID task. `dictionary`: the asked string alone names exactly the gold concept.", "",
             f"{meta['documents']} documents, {meta['queries_per_s']:.0f} queries/s "
             f"({meta['seconds']:.1f} s including index loading).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table_rows(scored):
        cells = [r["task"], r["stratum"], str(r["n"]), _fmt(r["exact_match"]), _fmt(r["acc@1"]),
                 _fmt(r["acc@5"]), _fmt(r["recall@10"]), _fmt(r["recall@20"]),
                 "" if r["mrr"] is None else f"{r['mrr']:.3f}", _fmt(r["lookup_acc@1"]),
                 _fmt(r["lookup_recall@10"]), _fmt(r[DICTIONARY])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def owned(path: Path) -> bool:
    """Whether a folder is an earlier ``retrieve eval`` output (its results carry RESULTS_KEY)."""
    for f in path.glob("retriever-*/results_*.json"):
        try:
            if RESULTS_KEY in json.loads(f.read_text(encoding="utf-8")):
                return True
        except (OSError, ValueError):
            continue
    return False


def _versions() -> dict[str, str]:
    """What made the figures: the packages whose code scores (a results file names no path)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("termnorm-eval", "bm25s", "sentence-transformers", "torch", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def evaluate(spec: RetrieverSpec, tasks: Sequence[RetrievalTask], open_retriever: Callable[[str], Retriever],
             data_dir: str | Path | None = None, limit: int | None = None,
             progress: Callable[[str, int], Callable[[int], None]] | None = None,
             ) -> tuple[list[TaskScores], dict[str, Any]]:
    """Score ``tasks``; ``open_retriever(key)`` gives each terminology's retriever (built or loaded);
    ``progress(task name, documents)`` a callback advanced by queries ranked."""
    start = time.perf_counter()
    scored: list[TaskScores] = []
    searching = 0.0
    indexes: dict[str, dict[str, Any]] = {}
    for task in tasks:
        retriever = open_retriever(task.key)
        indexes[task.key] = {"release": retriever.entries.release, "entries": retriever.entries.digest(),
                             "concepts": len(retriever.entries.ids), "strings": len(retriever.entries.texts)}
        docs = build_docs(task.key, task.direction.name, task.split, data_dir)
        total = len(docs)  # lm-eval's n-samples.original: before --limit
        docs = docs if limit is None else docs[:limit]
        t0 = time.perf_counter()
        bar = progress(task.name, len(docs)) if progress else None
        scored.append(score_task(task, retriever, docs, bar))
        scored[-1].total = total
        searching += time.perf_counter() - t0
    documents = sum(len(ts.samples) for ts in scored)
    manifest = rag.manifest_sha256(data_dir)[:16]
    meta = {"versions": _versions(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "documents": documents, "seconds": round(time.perf_counter() - start, 3),
            "queries_per_s": round(documents / searching, 1) if searching > 0 else 0.0,
            "indexes": indexes, "limit": limit, "data_manifest": manifest}
    return scored, meta
