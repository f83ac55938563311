"""Concept transfer and copying: what a gain is made of (issue 21).

**The four cells.** Each mention direction (an ontology's exact synonyms ``synonym2id`` and lay
terms ``lay2id``; a gene's alias and previous symbols ``alias2symbol``, ``prev2symbol``) asks the
concepts of a split through another of their words than the label direction it mirrors (term2id,
name2symbol) asks. Per terminology and mention direction, with the label direction beside it:

* trained concept, its label: memorization (the label task's training split);
* trained concept, a form training never showed: concept transfer (the mention task's training split);
* unseen concept, its label: generalization; unseen concept, a form.

Each cell is the strict accuracy of the base run and of a fine-tuned run, with the intervals and
paired gain of the report's rows (``compare``). A fifth cell sharpens concept transfer: the trained
concepts whose label the fine-tuned run answered right (documents share ``item_id``, the concept's
identifier, across the label and mention tasks of a terminology), and how many of them it also
answers through the form; the base run on the same forms beside it, and the gain paired on them.
High there means the adapter learned the concept's identifier, not the string's.

**Shown answers.** A document whose prompt shows its own gold answer (a gene name holding its symbol,
``Sample.shown``) can be answered by copying. Per task with such documents and fine-tuned run: the
strict gain on all documents, without them, and on them alone, each paired when both runs logged
their samples (a document counts as shown when either run's prompt showed it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from termnorm_eval.harness.scoring import ANSWER_IN_PROMPT
from termnorm_eval.report import intervals
from termnorm_eval.terminologies import BUILTIN

if TYPE_CHECKING:
    from termnorm_eval.report.compare import Report, Row
    from termnorm_eval.report.results import Run, Sample, TaskResult

# mention direction -> the label direction it mirrors; a name means the same in every terminology
# (an added ontology's synonym2id and lay2id mirror its term2id)
MIRRORS: dict[str, str] = {d.name: d.label_direction for t in BUILTIN.values() for d in t.mention_directions}
# The cells, in display order: (split, asked by); the conditional one is train, form, label right.
CELLS = ("trained_label", "trained_form", "trained_form_if_label", "unseen_label", "unseen_form")
CELL_SPLIT = {"trained_label": "train", "trained_form": "train", "trained_form_if_label": "train",
              "unseen_label": "val", "unseen_form": "val"}
LABEL_CELLS = ("trained_label", "unseen_label")  # asked by the label; the others through the form
CELL_TITLE = {
    "trained_label": "trained concept, its label (memorization)",
    "trained_form": "trained concept, a new form (concept transfer)",
    "trained_form_if_label": "trained concept, label answered right: the form (conditional transfer)",
    "unseen_label": "unseen concept, its label (generalization)",
    "unseen_form": "unseen concept, a form",
}
HIDDEN = "exact_match_hidden"  # the strict score over the documents whose prompt hides the answer
NO_MENTIONS = ("Concept transfer: not shown, no run holds a mention task (synonym2id, lay2id, alias2symbol, "
               "prev2symbol: e.g. --tasks termnorm-mentions beside the label tasks).")
NO_SHOWN_INFO = ("Shown answers: not shown, no run says which prompts show their answer "
                 "(answer_in_prompt: results of a plugin version before it, or study-protocol "
                 "samples of one).")
NONE_SHOWN = "Shown answers: no document of these tasks shows its gold answer in its prompt."


@dataclass
class TransferCell:
    """One cell for one fine-tuned run: base and tuned strict accuracy and the gain."""

    family: str
    key: str
    direction: str  # the mention direction
    label_direction: str  # the label direction it mirrors
    cell: str  # one of CELLS
    run: str
    task: str  # the task whose documents it scores
    n: int | None = None
    base: float | None = None
    base_lo: float | None = None  # 95% Wilson interval
    base_hi: float | None = None
    tuned: float | None = None
    tuned_lo: float | None = None
    tuned_hi: float | None = None
    delta: float | None = None  # tuned - base, strict
    delta_lo: float | None = None  # 95% exact McNemar-based interval (paired only)
    delta_hi: float | None = None
    p_strict: float | None = None  # McNemar's exact test
    paired: bool = False
    gained: int | None = None
    lost: int | None = None
    notes: list[int] = field(default_factory=list)

    def ci(self, what: str) -> tuple[float, float] | None:
        """The interval of ``base``, ``tuned`` or ``delta``."""
        lo, hi = getattr(self, f"{what}_lo"), getattr(self, f"{what}_hi")
        return None if lo is None or hi is None else (lo, hi)


@dataclass
class ShownRow:
    """One task and fine-tuned run: the strict gain on all documents, without the shown ones, on them."""

    family: str
    key: str
    direction: str
    split: str
    task: str
    run: str
    n: int | None = None  # documents scored
    shown: int | None = None  # of them, whose prompt shows the gold answer (None: not known)
    delta: float | None = None  # on all documents (the report's row)
    delta_lo: float | None = None
    delta_hi: float | None = None
    base_hidden: float | None = None  # strict accuracy without the shown documents
    tuned_hidden: float | None = None
    delta_hidden: float | None = None
    delta_hidden_lo: float | None = None
    delta_hidden_hi: float | None = None
    p_hidden: float | None = None
    delta_shown: float | None = None  # on the shown documents alone
    delta_shown_lo: float | None = None
    delta_shown_hi: float | None = None
    paired: bool = False
    notes: list[int] = field(default_factory=list)

    def ci(self, what: str) -> tuple[float, float] | None:
        lo, hi = getattr(self, f"{what}_lo"), getattr(self, f"{what}_hi")
        return None if lo is None or hi is None else (lo, hi)


@dataclass
class Transfer:
    cells: list[TransferCell]
    shown: list[ShownRow]
    why_no_cells: str | None = None  # one line: why there are no cells
    why_no_shown: str | None = None
    shown_also: str | None = None  # beside the rows: tasks with shown documents that have none

    def pairs(self) -> list[tuple[str, str, str]]:
        """(family, terminology, mention direction) of the cells, in order: one table each."""
        return list(dict.fromkeys((c.family, c.key, c.direction) for c in self.cells))


def task_name(family: str, key: str, direction: str, split: str) -> str:
    return f"{family}_{key}_{direction}_{split}"


def _right(s: Sample) -> bool:
    return s.strict >= 1.0


def _wilson(k: int, n: int) -> tuple[float | None, float | None]:
    ci = intervals.wilson(k, n)
    return (None, None) if ci is None else ci


def _row(report: Report, task: str, run: str) -> Row | None:
    return next((r for r in report.rows if r.task == task and r.run == run), None)


def _from_rows(cell: TransferCell, base: Row | None, tuned: Row | None) -> None:
    """A plain cell: the report's rows of its task (accuracies, intervals, paired gain, notes)."""
    if base is not None:
        cell.base, cell.base_lo, cell.base_hi = base.strict, base.strict_lo, base.strict_hi
        cell.n = base.n
    if tuned is None:
        return
    cell.n = tuned.n if tuned.n is not None else cell.n
    cell.tuned, cell.tuned_lo, cell.tuned_hi = tuned.strict, tuned.strict_lo, tuned.strict_hi
    cell.delta, cell.delta_lo, cell.delta_hi = (tuned.delta_strict, tuned.delta_strict_lo,
                                                tuned.delta_strict_hi)
    cell.p_strict, cell.paired = tuned.p_strict, tuned.paired
    cell.gained, cell.lost = tuned.gained, tuned.lost
    cell.notes = list(tuned.notes)


def _conditional(report: Report, cell: TransferCell, run: Run) -> None:
    """The trained concepts the tuned run answered right by label, asked through the form."""
    label_task = task_name(cell.family, cell.key, cell.label_direction, "train")
    label, form = run.tasks.get(label_task), run.tasks.get(cell.task)
    form_row = _row(report, cell.task, run.label)
    if label is None or form is None:
        missing = cell.task if form is None else label_task
        cell.notes.append(report.footnotes.add(f"{missing}: not in {run.label} ({run.where})"))
        return
    if label.samples is None or form.samples is None:
        cell.notes.append(report.footnotes.add(
            f"conditional transfer needs the samples of {label.task} and {form.task} of {run.label} "
            "(--log_samples)"))
        return
    ids = [i for i, s in label.samples.items() if _right(s) and i in form.samples]
    cell.n = len(ids)
    k = sum(_right(form.samples[i]) for i in ids)
    cell.tuned = k / len(ids) if ids else None
    cell.tuned_lo, cell.tuned_hi = _wilson(k, len(ids))
    base: TaskResult | None = report.base.tasks.get(cell.task)
    if base is None or base.samples is None or form_row is None or not form_row.paired:
        # the form task's row says why the base run is not comparable (or has no samples)
        cell.notes = list(form_row.notes) if form_row is not None else []
        return
    if not ids:
        return
    pr = _paired(ids, base, form)
    cell.base, (cell.base_lo, cell.base_hi) = pr.base, _wilson(pr.k_base, len(ids))
    cell.paired, cell.gained, cell.lost, cell.p_strict = True, pr.gained, pr.lost, pr.p
    cell.delta, cell.delta_lo, cell.delta_hi = pr.delta, pr.lo, pr.hi


def _mention_pairs(report: Report) -> list[tuple[str, str, str]]:
    """(family, terminology, mention direction) that some run scored, in the report's order."""
    return [(f, k, d) for f, k, d in report.pairs() if d in MIRRORS]


def cells(report: Report) -> list[TransferCell]:
    out = []
    for family, key, direction in _mention_pairs(report):
        label_dir = MIRRORS[direction]
        for run in report.tuned:
            for name in CELLS:
                split = CELL_SPLIT[name]
                asked = label_dir if name in LABEL_CELLS else direction
                cell = TransferCell(family, key, direction, label_dir, name, run.label,
                                    task_name(family, key, asked, split))
                if name == "trained_form_if_label":
                    _conditional(report, cell, run)
                else:
                    tuned = _row(report, cell.task, run.label)
                    _from_rows(cell, _row(report, cell.task, report.base.label), tuned)
                    if tuned is None:  # no run scored the task
                        cell.notes.append(report.footnotes.add(f"{cell.task}: in no run"))
                out.append(cell)
    return out


def _shown_ids(runs: Iterable[TaskResult]) -> set[str] | None:
    """Documents shown in any of the runs' prompts; None when some run does not say."""
    out: set[str] = set()
    for tr in runs:
        assert tr.samples is not None
        if any(s.shown is None for s in tr.samples.values()):
            return None
        out |= {i for i, s in tr.samples.items() if s.shown}
    return out


def _has_shown(tr: TaskResult) -> bool | None:
    """Whether some document of the task showed its answer; None: not known."""
    if tr.samples is not None and all(s.shown is not None for s in tr.samples.values()):
        return any(s.shown for s in tr.samples.values())
    share = tr.metrics.get(ANSWER_IN_PROMPT)
    return None if share is None else share > 0


@dataclass(frozen=True)
class _Paired:
    k_base: int  # documents right before
    k_tuned: int
    gained: int
    lost: int
    n: int
    lo: float  # the gain's 95% exact McNemar-based interval
    hi: float
    p: float  # McNemar's exact test

    @property
    def base(self) -> float:
        return self.k_base / self.n

    @property
    def tuned(self) -> float:
        return self.k_tuned / self.n

    @property
    def delta(self) -> float:
        return (self.gained - self.lost) / self.n


def _paired(ids: list[str], b: TaskResult, t: TaskResult) -> _Paired:
    """Both runs' strict scores on ``ids`` (not empty), paired."""
    assert b.samples is not None and t.samples is not None
    before = [_right(b.samples[i]) for i in ids]
    after = [_right(t.samples[i]) for i in ids]
    gained = sum(1 for x, y in zip(before, after, strict=True) if y and not x)
    lost = sum(1 for x, y in zip(before, after, strict=True) if x and not y)
    lo, hi = intervals.mcnemar_interval(gained, lost, len(ids))
    return _Paired(sum(before), sum(after), gained, lost, len(ids), lo, hi,
                   intervals.mcnemar_exact_p(gained, lost))


def _shown_row(report: Report, row: Row, run: Run) -> ShownRow:
    base, tuned = report.base.tasks[row.task], run.tasks[row.task]
    out = ShownRow(row.family, row.key, row.direction, row.split, row.task, run.label, n=row.n,
                   delta=row.delta_strict, delta_lo=row.delta_strict_lo, delta_hi=row.delta_strict_hi,
                   notes=list(row.notes))
    if row.delta_strict is None:
        return out  # not comparable: the row's notes say why
    if row.paired and base.samples is not None and tuned.samples is not None:
        shown = _shown_ids((base, tuned))
        if shown is None:
            out.notes.append(report.footnotes.add(f"{row.task}: which prompts show their answer is not "
                                                  f"known for every document of {run.label} or the base run"))
            return out
        out.paired, out.shown = True, len(shown)
        hidden = [i for i in base.samples if i not in shown]
        shown_ids = [i for i in base.samples if i in shown]
        if hidden:
            h = _paired(hidden, base, tuned)
            out.base_hidden, out.tuned_hidden, out.p_hidden = h.base, h.tuned, h.p
            out.delta_hidden, out.delta_hidden_lo, out.delta_hidden_hi = h.delta, h.lo, h.hi
        if shown_ids:
            sh = _paired(shown_ids, base, tuned)
            out.delta_shown, out.delta_shown_lo, out.delta_shown_hi = sh.delta, sh.lo, sh.hi
        return out
    # no samples on one side: the results files' means over the hidden documents, unpaired
    b_hidden, t_hidden = base.metrics.get(HIDDEN), tuned.metrics.get(HIDDEN)
    share = tuned.metrics.get(ANSWER_IN_PROMPT)
    if share is not None and row.n is not None:
        out.shown = round(share * row.n)
    out.base_hidden, out.tuned_hidden = b_hidden, t_hidden
    if b_hidden is not None and t_hidden is not None:
        out.delta_hidden = t_hidden - b_hidden
    return out


def shown_rows(report: Report) -> tuple[list[ShownRow], bool, list[str]]:
    """Rows of the tasks with a shown document, whether any run told which prompts show it, and the
    tasks with a shown document that no fine-tuned run scored beside the base run (no row)."""
    known = False
    out: list[ShownRow] = []
    unscored: list[str] = []
    runs = [report.base, *report.tuned]
    tasks = list(dict.fromkeys(r.task for r in report.rows))
    for task in tasks:
        has = [_has_shown(r.tasks[task]) for r in runs if task in r.tasks]
        known = known or any(h is not None for h in has)
        if not any(has):
            continue
        before = len(out)
        for run in report.tuned:
            row = _row(report, task, run.label)
            if row is not None and task in run.tasks and task in report.base.tasks:
                out.append(_shown_row(report, row, run))
        if len(out) == before:
            unscored.append(task)
    return out, known, unscored


def shown_unscored(tasks: list[str]) -> str | None:
    """The line for tasks with shown documents that have no row; None when there are none."""
    if not tasks:
        return None
    return (f"Shown answers: {len(tasks)} task(s) show their gold answer in some prompts "
            f"({', '.join(tasks)}), but no fine-tuned run scored them beside the base run: no gain to show.")


def build(report: Report) -> Transfer:
    """The transfer cells and the shown-answer rows of a report whose rows are filled."""
    rows, known, unscored = shown_rows(report)
    cs = cells(report)
    also = shown_unscored(unscored)
    return Transfer(cs, rows, why_no_cells=None if cs else NO_MENTIONS,
                    why_no_shown=None if rows else (also or (NONE_SHOWN if known else NO_SHOWN_INFO)),
                    shown_also=also if rows else None)
