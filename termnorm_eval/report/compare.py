"""Base run vs fine-tuned runs: accuracies, gains, item transitions and the popularity effect.

A delta is computed only when both sides scored the same documents under the same task version;
anything else becomes "n/a" with a footnote that says why, never a number that compares two
different things.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field

from termnorm_eval.report.results import LENIENT, STRICT, Run, TaskResult
from termnorm_eval.terminologies import BUILTIN, SPLITS

SPLIT_ROLE = {"train": "memorization", "val": "generalization"}


class Footnotes:
    """Numbered reasons for gaps; the same text always gets the same number."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, text: str) -> int:
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text) + 1


@dataclass
class Row:
    """One run on one task (terminology x direction x split)."""

    key: str
    direction: str
    split: str
    run: str
    role: str  # "base" or "tuned"
    task: str
    n: int | None = None
    strict: float | None = None
    lenient: float | None = None
    delta_strict: float | None = None  # tuned - base: memorization gain (train), generalization (val)
    delta_lenient: float | None = None
    gained: int | None = None  # wrong in base, right after tuning (strict)
    lost: int | None = None
    kept_correct: int | None = None
    kept_wrong: int | None = None
    rho: float | None = None  # Spearman: popularity vs strict correctness
    rho_p: float | None = None
    has_samples: bool = False  # with samples and rho None: rho is undefined (a constant side)
    notes: list[int] = field(default_factory=list)

    def note(self, n: int) -> None:
        if n not in self.notes:
            self.notes.append(n)


@dataclass
class Report:
    base: Run
    tuned: list[Run]
    rows: list[Row]
    footnotes: Footnotes
    warnings: list[str]
    # (terminology, direction, split, run label) -> popularity bin -> (documents, strict accuracy)
    by_bin: dict[tuple[str, str, str, str], dict[int, tuple[int, float]]]

    def pairs(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys((r.key, r.direction) for r in self.rows))


def _order(key: str, direction: str) -> tuple[int, str, int, str]:
    """Built-in terminologies first in their own order, then the rest alphabetically."""
    keys = list(BUILTIN)
    if key in BUILTIN:
        dirs = [d.name for d in BUILTIN[key].directions]
        return (keys.index(key), key, dirs.index(direction) if direction in dirs else 99, direction)
    return (len(keys), key, 0, direction)


def spearman(samples_pop: list[int], correct: list[float]) -> tuple[float | None, float | None]:
    """Spearman's rho (scipy); None when undefined (fewer than 3 documents, or a constant side)."""
    from scipy.stats import spearmanr

    if len(correct) < 3 or len(set(correct)) < 2 or len(set(samples_pop)) < 2:
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = spearmanr(samples_pop, correct)
    rho, p = float(res.statistic), float(res.pvalue)
    return (None, None) if math.isnan(rho) else (rho, p)


def _fill(row: Row, tr: TaskResult, run: Run, notes: Footnotes) -> None:
    row.n = tr.n
    row.strict = tr.metrics.get(STRICT)
    row.lenient = tr.metrics.get(LENIENT)
    if row.lenient is None:
        row.note(notes.add(f"{LENIENT} not reported in {run.label} ({run.path.name}): "
                           "an older plugin version?"))
    if tr.samples:
        row.has_samples = True
        pts = [(s.popularity, s.strict) for s in tr.samples.values() if s.popularity is not None]
        row.rho, row.rho_p = spearman([p for p, _ in pts], [c for _, c in pts])


def _comparable(base: TaskResult, tuned: TaskResult, run: Run, notes: Footnotes) -> int | None:
    """None when a delta is meaningful, else the footnote number saying why not."""
    if base.version != tuned.version:
        return notes.add(f"{tuned.task}: task version {tuned.version} in {run.label} but {base.version} in "
                         "the base run (different plugin versions): no delta")
    if base.samples is not None and tuned.samples is not None:
        if set(base.samples) != set(tuned.samples):
            return notes.add(f"{tuned.task}: {run.label} scored other documents than the base run "
                             f"({len(tuned.samples)} vs {len(base.samples)}; different --limit or data): "
                             "no delta")
        changed = [i for i, s in base.samples.items() if tuned.samples[i].answer != s.answer]
        if changed:
            return notes.add(f"{tuned.task}: gold answers differ between the runs for {len(changed)} "
                             f"document(s), e.g. {changed[0]} (different data releases): no delta")
        return None
    if base.n != tuned.n or base.n_total != tuned.n_total:
        return notes.add(f"{tuned.task}: {run.label} scored {tuned.n} of {tuned.n_total} documents, "
                         f"the base run {base.n} of {base.n_total} (different --limit or data): no delta")
    return None


def build(base: Run, tuned: list[Run]) -> Report:
    notes = Footnotes()
    warns: list[str] = []
    for run in tuned:
        if run.model != base.model:
            warns.append(f"{run.label}: base model {run.model} differs from the base run's {base.model}")
        if not run.adapter:
            warns.append(f"{run.label}: no peft= adapter in its model_args (a merged model?)")
        if run.filter != base.filter:
            warns.append(f"{run.label}: filter {run.filter!r} vs base {base.filter!r}")
    if base.adapter:
        warns.append(f"base run has an adapter (peft={base.adapter}): is it really the base model?")

    tasks = sorted({t for r in (base, *tuned) for t in r.tasks},
                   key=lambda t: (*_order(*_task_kd(base, tuned, t)), SPLITS.index(t.rsplit("_", 1)[1])))
    rows: list[Row] = []
    by_bin: dict[tuple[str, str, str, str], dict[int, tuple[int, float]]] = {}
    for task in tasks:
        key, direction = _task_kd(base, tuned, task)
        split = task.rsplit("_", 1)[1]
        b = base.tasks.get(task)
        base_row = Row(key, direction, split, base.label, "base", task)
        if b is None:
            base_row.note(notes.add(f"{task}: not in the base run ({base.path.name}): no delta"))
        else:
            _fill(base_row, b, base, notes)
        rows.append(base_row)
        for run in tuned:
            t = run.tasks.get(task)
            row = Row(key, direction, split, run.label, "tuned", task)
            rows.append(row)
            if t is None:
                row.note(notes.add(f"{task}: not in {run.label} ({run.path.name})"))
                continue
            _fill(row, t, run, notes)
            if b is None:
                row.note(notes.add(f"{task}: not in the base run ({base.path.name}): no delta"))
                continue
            why = _comparable(b, t, run, notes)
            if why is not None:
                row.note(why)
                continue
            if row.strict is not None and base_row.strict is not None:
                row.delta_strict = row.strict - base_row.strict
            if row.lenient is not None and base_row.lenient is not None:
                row.delta_lenient = row.lenient - base_row.lenient
            if b.samples is not None and t.samples is not None:
                before = {i: s.strict >= 1.0 for i, s in b.samples.items()}
                after = {i: s.strict >= 1.0 for i, s in t.samples.items()}
                row.gained = sum(1 for i in before if not before[i] and after[i])
                row.lost = sum(1 for i in before if before[i] and not after[i])
                row.kept_correct = sum(1 for i in before if before[i] and after[i])
                row.kept_wrong = sum(1 for i in before if not before[i] and not after[i])
            else:
                row.note(notes.add("item counts need --log_samples on both runs"))
    for run in (base, *tuned):
        for tr in run.tasks.values():
            if not tr.samples:
                continue
            bins: dict[int, list[float]] = defaultdict(list)
            for s in tr.samples.values():
                if s.bin is not None:
                    bins[s.bin].append(s.strict)
            by_bin[(tr.key, tr.direction, tr.split, run.label)] = {
                k: (len(v), sum(v) / len(v)) for k, v in sorted(bins.items())
            }
    return Report(base, tuned, rows, notes, warns, by_bin)


def _task_kd(base: Run, tuned: list[Run], task: str) -> tuple[str, str]:
    for run in (base, *tuned):
        if task in run.tasks:
            return run.tasks[task].key, run.tasks[task].direction
    raise KeyError(task)


def summary(report: Report) -> list[dict[str, object]]:
    """Per terminology x direction x tuned run: memorization and generalization gains."""
    out = []
    for key, direction in report.pairs():
        for run in report.tuned:
            rec: dict[str, object] = {"terminology": key, "direction": direction, "run": run.label}
            for split in SPLITS:
                row = next((r for r in report.rows if (r.key, r.direction, r.split, r.run) ==
                            (key, direction, split, run.label)), None)
                role = SPLIT_ROLE.get(split, split)
                rec[f"{role}_strict"] = row.delta_strict if row else None
                rec[f"{role}_lenient"] = row.delta_lenient if row else None
                rec[f"{role}_notes"] = list(row.notes) if row else []
            out.append(rec)
    return out
