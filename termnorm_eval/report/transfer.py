"""Concept transfer and copying: what a gain is made of (issue 21).

**The cells.** Each mention direction (an ontology's exact synonyms ``synonym2id`` and lay terms
``lay2id``; a gene's alias and previous symbols ``alias2symbol``, ``prev2symbol``) asks the concepts of a
split through another of their words than the label direction it mirrors (term2id, name2symbol) asks.
Per terminology and mention direction, with the label direction beside it, for the training split's
concepts the run's adapter trained (``trained``: its manifest says which; when it cannot, every
document of the _train split, with a footnote) and for the held-out split's unseen concepts:

* its label (memorization; generalization), a new form (concept transfer; an unseen concept's form);
* a new form not near its label (``form_near_label`` false: not mostly the label's words, a respelling
  or small edit of it): transfer through genuinely different words, when the samples say;
* the concepts asked both ways (documents share ``item_id``, the concept's identifier, across the label
  and mention tasks of a terminology): the label and the form on the same concepts, so their gap
  compares like with like (the label task scores every concept, the form task only those with a form,
  a popularity-skewed subset);
* the conditional cell: of those concepts, the ones whose label the fine-tuned run answered right, and
  how many of them it also answers through the form. High there means the adapter learned the concept's
  identifier, not the string's.

Each cell is the strict accuracy of the base run and of a fine-tuned run, with Wilson intervals and the
gain paired on its documents (``compare``'s statistics; a cell on all of a task's documents is its
report row). A run whose adapter trained another terminology (the study's ``cross_eval``) or not the
label direction gets no cells for the pair, and a line that says so.

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
from termnorm_eval.report.roles import MIRRORS

if TYPE_CHECKING:
    from termnorm_eval.report.compare import Report, Row
    from termnorm_eval.report.results import Run, Sample, TaskResult
    from termnorm_eval.report.trained import Trained

# The cells, in display order: per split, what is asked (label or form) of which of its concepts.
CELLS = ("trained_label", "trained_form", "trained_form_far", "trained_both_label", "trained_both_form",
         "trained_form_if_label", "unseen_label", "unseen_form", "unseen_form_far", "unseen_both_label",
         "unseen_both_form")
CELL_SPLIT = {c: "train" if c.startswith("trained_") else "val" for c in CELLS}
LABEL_CELLS = ("trained_label", "trained_both_label", "unseen_label", "unseen_both_label")  # asked by label
FAR_CELLS = ("trained_form_far", "unseen_form_far")  # when the samples say which forms are near the label
CELL_TITLE = {
    "trained_label": "trained concept, its label (memorization)",
    "trained_form": "trained concept, a new form (concept transfer)",
    "trained_form_far": "trained concept, a new form not near its label",
    "trained_both_label": "trained concepts asked both ways: the label",
    "trained_both_form": "trained concepts asked both ways: the form",
    "trained_form_if_label": "trained concept, label answered right: the form (conditional transfer)",
    "unseen_label": "unseen concept, its label (generalization)",
    "unseen_form": "unseen concept, a form",
    "unseen_form_far": "unseen concept, a form not near its label",
    "unseen_both_label": "unseen concepts asked both ways: the label",
    "unseen_both_form": "unseen concepts asked both ways: the form",
}
HIDDEN = "exact_match_hidden"  # the strict score over the documents whose prompt hides the answer
NO_MENTIONS = ("Concept transfer: not shown, no run holds a mention task (synonym2id, lay2id, alias2symbol, "
               "prev2symbol: e.g. --tasks termnorm-mentions beside the label tasks).")
NO_SHOWN_INFO = ("Shown answers: not shown, no run says which prompts show their answer "
                 "(answer_in_prompt: results of a plugin version before it, or study-protocol "
                 "samples of one).")
NONE_SHOWN = "Shown answers: no document of these tasks shows its gold answer in its prompt."
NO_NEAR_INFO = ("Forms near their label: not told apart, the mention tasks' samples do not say which forms "
                "are mostly the label's words, a respelling or small edit of it (form_near_label: results "
                "of a plugin version before it, or no --log_samples).")
NO_TRAINED_RUN = "Concept transfer: no fine-tuned run's adapter trained the concepts of these mention tasks."


@dataclass
class TransferCell(intervals.HasIntervals):
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
    untrained: int | None = None  # documents left out: their concept was not trained (None: not known)
    near: int | None = None  # documents left out: the form is near the label (the far cells)
    notes: list[int] = field(default_factory=list)


@dataclass
class ShownRow(intervals.HasIntervals):
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


@dataclass
class Transfer:
    cells: list[TransferCell]
    shown: list[ShownRow]
    why_no_cells: str | None = None  # one line: why there are no cells
    # runs without cells for a pair: ((family, terminology, mention direction), run label, why)
    left_out: list[tuple[tuple[str, str, str], str, str]] = field(default_factory=list)
    why_no_near: str | None = None  # one line: why some pair has no far cells
    why_no_shown: str | None = None
    shown_also: str | None = None  # beside the rows: tasks with shown documents that have none

    def pairs(self) -> list[tuple[str, str, str]]:
        """(family, terminology, mention direction) of the cells, in order: one table each."""
        return list(dict.fromkeys((c.family, c.key, c.direction) for c in self.cells))


def task_name(family: str, key: str, direction: str, split: str) -> str:
    return f"{family}_{key}_{direction}_{split}"


def _right(s: Sample) -> bool:
    return s.strict >= 1.0


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
    cell.notes += [n for n in tuned.notes if n not in cell.notes]


def _note(report: Report, cell: TransferCell, text: str) -> None:
    n = report.footnotes.add(text)
    if n not in cell.notes:
        cell.notes.append(n)


def _from_ids(report: Report, cell: TransferCell, run: Run, tuned: TaskResult, ids: list[str]) -> None:
    """A cell on some documents of its task: the tuned run's accuracy and, when the task's row pairs
    the runs, the base run's on the same documents and the paired gain."""
    assert tuned.samples is not None
    cell.n = len(ids)
    k = sum(_right(tuned.samples[i]) for i in ids)
    cell.tuned = k / len(ids) if ids else None
    cell.tuned_lo, cell.tuned_hi = intervals.bounds(k, len(ids))
    row = _row(report, cell.task, run.label)
    base = report.base.tasks.get(cell.task)
    if base is None or base.samples is None or row is None or not row.paired:
        for n in (row.notes if row is not None else []):  # the row says why the runs are not comparable
            if n not in cell.notes:
                cell.notes.append(n)
        return
    if not ids:
        return
    pr = _paired(ids, base, tuned)
    cell.base, (cell.base_lo, cell.base_hi) = pr.base, intervals.bounds(pr.k_base, len(ids))
    cell.paired, cell.gained, cell.lost, cell.p_strict = True, pr.gained, pr.lost, pr.p
    cell.delta, cell.delta_lo, cell.delta_hi = pr.delta, pr.lo, pr.hi


def _near(tuned: TaskResult, base: TaskResult | None) -> dict[str, bool] | None:
    """Per document of the tuned run, whether its form is near its label (either run's samples may
    say; the documents are the same); None when some document's is not known."""
    assert tuned.samples is not None
    out = {}
    for i, s in tuned.samples.items():
        near = s.near
        if near is None and base is not None and base.samples is not None and i in base.samples:
            near = base.samples[i].near
        if near is None:
            return None
        out[i] = near
    return out


def _fill(report: Report, cell: TransferCell, run: Run, trained: Trained) -> None:
    """One cell of one fine-tuned run (``CELLS``)."""
    kind = cell.cell.split("_", 1)[1]  # label, form, form_far, both_label, both_form, form_if_label
    split = CELL_SPLIT[cell.cell]
    tuned = run.tasks.get(cell.task)
    base_row = _row(report, cell.task, report.base.label)
    if tuned is None:
        if kind in ("label", "form"):
            _from_rows(cell, base_row, None)
        _note(report, cell, f"{cell.task}: not in {run.label} ({run.where})")
        return
    keep_ids: frozenset[str] | None = None  # the trained concepts; None: every document
    if split == "train":
        if trained.ids is None:
            _note(report, cell, f"{run.label}: trained concepts not known ({trained.why}): all documents of "
                                "the _train split")
        else:
            keep_ids = trained.ids.get(cell.label_direction, frozenset())
    if kind in ("label", "form") and keep_ids is None:
        _from_rows(cell, base_row, _row(report, cell.task, run.label))  # every document: the task's row
        return
    if tuned.samples is None:
        _note(report, cell, f"{cell.task} in {run.label}: this cell needs its samples (--log_samples)")
        return
    ids = list(tuned.samples)
    if keep_ids is not None:
        cell.untrained = sum(1 for i in ids if i not in keep_ids)
        if cell.untrained:
            _note(report, cell, f"{cell.task} in {run.label}: {cell.untrained} of {len(ids)} documents ask "
                                f"about concepts its adapter did not train through {cell.label_direction}: "
                                "left out")
        ids = [i for i in ids if i in keep_ids]
    if kind in ("both_label", "both_form", "form_if_label"):
        other_task = task_name(cell.family, cell.key,
                               cell.direction if kind == "both_label" else cell.label_direction, split)
        other = run.tasks.get(other_task)
        if other is None or other.samples is None:
            _note(report, cell, f"{other_task}: not in {run.label} ({run.where})" if other is None else
                  f"this cell needs the samples of {cell.task} and {other_task} of {run.label} "
                  "(--log_samples)")
            return
        ids = [i for i in ids if i in other.samples]
        if kind == "form_if_label":
            ids = [i for i in ids if _right(other.samples[i])]
    if kind == "form_far":
        near = _near(tuned, report.base.tasks.get(cell.task))
        if near is None:
            _note(report, cell, f"{cell.task} in {run.label}: its samples do not say which forms are near "
                                "their label (form_near_label)")
            return
        cell.near = sum(1 for i in ids if near[i])
        ids = [i for i in ids if not near[i]]
    if kind in ("label", "form") and len(ids) == len(tuned.samples):
        _from_rows(cell, base_row, _row(report, cell.task, run.label))  # nothing left out: the task's row
        return
    _from_ids(report, cell, run, tuned, ids)


def _mention_pairs(report: Report) -> list[tuple[str, str, str]]:
    """(family, terminology, mention direction) that some run scored, in the report's order."""
    return [(f, k, d) for f, k, d in report.pairs() if d in MIRRORS]


def _why_not(run: Run, trained: Trained, key: str, label_dir: str, tasks: list[str]) -> str | None:
    """Why ``run`` gets no cells for a pair (its adapter trained something else); None: it gets them."""
    if trained.terminology is not None and trained.terminology != key:
        return f"its adapter trained {trained.terminology}"
    if trained.ids is not None and label_dir not in trained.ids:
        return f"its adapter trained no {label_dir} pair"
    if not any(t in run.tasks for t in tasks):
        return "it scored none of these tasks"
    return None


def _has_near(report: Report, tasks: list[str]) -> bool:
    """Whether some run's samples of these (mention) tasks say which forms are near their label."""
    return any(s.near is not None for r in (report.base, *report.tuned) for t in tasks
               if t in r.tasks and r.tasks[t].samples for s in (r.tasks[t].samples or {}).values())


def cells(report: Report) -> tuple[list[TransferCell], list[tuple[tuple[str, str, str], str, str]], bool]:
    """The cells; the runs left out (pair, run label, why); whether some pair has no far cells."""
    out: list[TransferCell] = []
    left_out: list[tuple[tuple[str, str, str], str, str]] = []
    no_near = False
    for family, key, direction in _mention_pairs(report):
        label_dir = MIRRORS[direction]
        tasks = [task_name(family, key, d, s) for d in (label_dir, direction) for s in ("train", "val")]
        far = _has_near(report, tasks[2:])
        no_near = no_near or not far
        for run in report.tuned:
            trained = report.trained[run.label]
            why = _why_not(run, trained, key, label_dir, tasks)
            if why is not None:
                left_out.append(((family, key, direction), run.label, why))
                continue
            for name in CELLS:
                if name in FAR_CELLS and not far:
                    continue
                asked = label_dir if name in LABEL_CELLS else direction
                cell = TransferCell(family, key, direction, label_dir, name, run.label,
                                    task_name(family, key, asked, CELL_SPLIT[name]))
                _fill(report, cell, run, trained)
                out.append(cell)
    return out, left_out, no_near


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
    gained, lost = intervals.transitions(before, after)
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
    cs, left_out, no_near = cells(report)
    also = shown_unscored(unscored)
    why_no_cells = None if cs else (NO_TRAINED_RUN if _mention_pairs(report) else NO_MENTIONS)
    return Transfer(cs, rows, why_no_cells=why_no_cells, left_out=left_out,
                    why_no_near=NO_NEAR_INFO if cs and no_near else None,
                    why_no_shown=None if rows else (also or (NONE_SHOWN if known else NO_SHOWN_INFO)),
                    shown_also=also if rows else None)
