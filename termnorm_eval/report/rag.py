"""The retrieval arm: each run with and without retrieved candidates, on the same documents.

A retrieval-augmented task (``termnorm-rag_*``, ``harness.rag``) asks a plain task's question after
the top-k candidates of a retriever; its documents are the plain task's (same ``item_id``). Per
terminology, direction and split, and per run that scored both families (the base model, each
fine-tuned adapter), a row holds the plain accuracy, the RAG accuracy and the RAG gain paired on the
documents both scored (exact McNemar interval and p, ``intervals``), the ceiling (the share of those
documents whose gold was among the candidates shown: no pick can do better) and, when the results
of the retriever that made the candidates are given (``termnorm report --retriever``; matched by its
identity digest, never another retriever's), its own first-hit accuracy on the same documents.

The cells are issue 21's: the trained concepts asked by their label (memorization) and through a new
form, the unseen concepts by label (generalization) and through a form. A training-split cell of a
fine-tuned run keeps the concepts its adapter trained; the base run's keeps those the fine-tuned runs
of the terminology trained when they agree, so base and tuned rows compare like with like. Where that
is not known, every document, with a note. Fine-tuned + RAG
against base + RAG on all documents is the RAG task's own row of the main tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from termnorm_eval.report import intervals
from termnorm_eval.report.results import PLAIN, RAG, RETRIEVER_IDENTITY
from termnorm_eval.report.roles import MIRRORS

if TYPE_CHECKING:
    from termnorm_eval.report.compare import Report
    from termnorm_eval.report.results import Run, TaskResult

CELL_NAMES = {("label", "train"): "trained label", ("form", "train"): "trained form",
              ("label", "val"): "unseen label", ("form", "val"): "unseen form"}
COLUMNS = ("terminology", "direction", "split", "cell", "run", "role", "n", "plain", "plain_lo", "plain_hi",
           "rag", "rag_lo", "rag_hi", "delta", "delta_lo", "delta_hi", "p_strict", "gained", "lost",
           "ceiling", "retriever", "retriever_label")
NO_RAG = ("Retrieval arm: not shown, no run scored a retrieval-augmented task beside its plain task "
          "(termnorm-rag_*, e.g. --tasks termnorm-rag with the plain tasks).")


@dataclass
class RagRow(intervals.HasIntervals):
    key: str
    direction: str
    split: str
    cell: str
    run: str
    role: str  # base or tuned
    n: int = 0
    plain: float | None = None
    plain_lo: float | None = None
    plain_hi: float | None = None
    rag: float | None = None
    rag_lo: float | None = None
    rag_hi: float | None = None
    delta: float | None = None  # rag - plain, paired on the same documents
    delta_lo: float | None = None
    delta_hi: float | None = None
    p_strict: float | None = None  # exact McNemar
    gained: int | None = None
    lost: int | None = None
    ceiling: float | None = None  # share of the documents whose gold was among the candidates
    retriever: float | None = None  # the reference retriever's first-hit accuracy on them
    retriever_label: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"terminology": self.key, **{c: getattr(self, c) for c in COLUMNS if c != "terminology"}}


def _plain_task(rag_task: str) -> str:
    return PLAIN + rag_task[len(RAG):]


def _own_ids(report: Report, run: Run, key: str, label_direction: str) -> frozenset[str] | None:
    """The concepts fine-tuned ``run`` trained through ``label_direction`` of ``key``; None: not known
    (or it trained another terminology)."""
    t = report.trained.get(run.label)
    if t is None or t.ids is None or (t.terminology is not None and t.terminology != key):
        return None
    return t.ids.get(label_direction, frozenset())


def _trained_ids(report: Report, run: Run, role: str, key: str, label_direction: str
                 ) -> tuple[frozenset[str] | None, str | None]:
    """The documents a training-split cell keeps for ``run``, and a note when it cannot keep the
    trained concepts: a fine-tuned run its own; the base run those the fine-tuned runs of ``key``
    trained, when they agree (else every document: several adapters trained other concepts)."""
    if role == "tuned":
        ids = _own_ids(report, run, key, label_direction)
        return ids, None if ids is not None else f"{run.label}: trained concepts not known: all documents"
    sets = {_own_ids(report, r, key, label_direction) for r in report.tuned}
    sets.discard(None)
    if len(sets) == 1:
        return next(iter(sets)), None
    why = ("the fine-tuned runs trained different concepts" if sets
           else "no fine-tuned run says what it trained")
    return None, f"base: {why}: all documents of the training split"


def _right(samples: Any, i: str) -> bool:
    return bool(samples[i].strict >= 1.0)


def _row(report: Report, run: Run, role: str, rag: TaskResult, plain: TaskResult) -> RagRow | None:
    label_dir = MIRRORS.get(rag.direction, rag.direction)
    kind = "form" if rag.direction in MIRRORS else "label"
    row = RagRow(rag.key, rag.direction, rag.split, CELL_NAMES.get((kind, rag.split), rag.split), run.label,
                 role)
    if rag.samples is None or plain.samples is None:
        row.notes.append(f"{rag.task} / {plain.task} in {run.label}: paired rows need both samples "
                         "(--log_samples)")
        return row
    ids = [i for i in rag.samples if i in plain.samples]
    if rag.split == "train":
        keep, why = _trained_ids(report, run, role, rag.key, label_dir)
        if keep is not None:
            ids = [i for i in ids if i in keep]
        if why is not None:
            row.notes.append(why)
    row.n = len(ids)
    if not ids:
        return row
    before = [_right(plain.samples, i) for i in ids]
    after = [_right(rag.samples, i) for i in ids]
    row.plain, row.rag = sum(before) / len(ids), sum(after) / len(ids)
    row.plain_lo, row.plain_hi = intervals.bounds(sum(before), len(ids))
    row.rag_lo, row.rag_hi = intervals.bounds(sum(after), len(ids))
    row.gained, row.lost = intervals.transitions(before, after)
    row.delta = row.rag - row.plain
    row.delta_lo, row.delta_hi = intervals.mcnemar_interval(row.gained, row.lost, len(ids))
    row.p_strict = intervals.mcnemar_exact_p(row.gained, row.lost)
    shown = [rag.samples[i].in_candidates for i in ids]
    if None not in shown:
        row.ceiling = sum(bool(s) for s in shown) / len(ids)
    # the retriever that made these candidates (its identity digest), never another one
    made_by = {rag.samples[i].retriever for i in ids}
    for ref in report.references:
        r = ref.tasks.get(plain.task)
        if made_by != {ref.model_args.get(RETRIEVER_IDENTITY)}:
            continue
        if r is not None and r.samples is not None and all(i in r.samples for i in ids):
            row.retriever = sum(_right(r.samples, i) for i in ids) / len(ids)
            row.retriever_label = ref.label
            break
    return row


def rows(report: Report) -> list[RagRow]:
    """Every (task, run) that scored a RAG task and its plain task, in the report's task order."""
    out = []
    for run, role in ((report.base, "base"), *((r, "tuned") for r in report.tuned)):
        for task, tr in run.tasks.items():
            if tr.family != RAG:
                continue
            plain = run.tasks.get(_plain_task(task))
            if plain is None:
                continue
            row = _row(report, run, role, tr, plain)
            if row is not None:
                out.append(row)
    order = {(r.task): n for n, r in enumerate(report.rows)}
    out.sort(key=lambda r: (order.get(f"{RAG}_{r.key}_{r.direction}_{r.split}", 0), r.role != "base", r.run))
    return out
