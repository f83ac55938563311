"""Base run vs fine-tuned runs: accuracies, gains, item transitions and the popularity effect.

A delta is computed only when both sides scored the same documents under the same task version;
anything else becomes "n/a" with a footnote that says why, never a number that compares two
different things. Every accuracy gets a 95% Wilson interval; every gain with logged samples on
both sides gets a 95% exact McNemar-based interval and McNemar's exact p (``intervals``); without
samples the delta is the unpaired difference of the two accuracies, with a footnote. Ontology
identifier tasks also get their hierarchy credit (strict, half a point for the gold's is_a parent or
child), its share of parent/child answers, and its gain with a paired interval (``intervals``).
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from termnorm_eval.harness.validity_names import CATEGORIES, CLOSE_CATEGORIES, categories_for, metric
from termnorm_eval.report import intervals, rag, roles, transfer
from termnorm_eval.report.results import LENIENT, STRICT, Run, TaskResult
from termnorm_eval.report.trained import Trained, of_run
from termnorm_eval.terminologies import ALL_SPLITS, BUILTIN, SPLITS


class Footnotes:
    """Numbered reasons for gaps; the same text always gets the same number."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, text: str) -> int:
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text) + 1


@dataclass
class Row(intervals.HasIntervals):
    """One run on one task (family x terminology x direction x split)."""

    key: str
    direction: str
    split: str
    run: str
    role: str  # "base", "tuned" or REFERENCE (a retriever's row: no delta)
    task: str
    family: str = "termnorm"
    n: int | None = None
    strict: float | None = None
    lenient: float | None = None
    strict_lo: float | None = None  # 95% Wilson interval
    strict_hi: float | None = None
    lenient_lo: float | None = None
    lenient_hi: float | None = None
    delta_strict: float | None = None  # tuned - base (measures: ``roles.ROLE`` of a label task's split)
    delta_lenient: float | None = None
    paired: bool = False  # the deltas' intervals and p-values come from per-document pairs
    delta_strict_lo: float | None = None  # 95% exact McNemar-based interval
    delta_strict_hi: float | None = None
    p_strict: float | None = None  # McNemar's exact test
    delta_lenient_lo: float | None = None
    delta_lenient_hi: float | None = None
    p_lenient: float | None = None
    gained: int | None = None  # wrong in base, right after tuning (strict)
    lost: int | None = None
    kept_correct: int | None = None
    kept_wrong: int | None = None
    lenient_gained: int | None = None
    lenient_lost: int | None = None
    # hierarchy_credit: strict + 0.5 for a bare parent/child ID (None: not reported); its interval is
    # the mean of the 97.5% intervals of its two 0/1 halves (intervals.credit_interval)
    credit: float | None = None
    credit_lo: float | None = None
    credit_hi: float | None = None
    close: float | None = None  # share of answers that are an is_a parent or child of the gold
    delta_credit: float | None = None
    delta_credit_lo: float | None = None  # paired (needs samples with hierarchy_credit on both sides)
    delta_credit_hi: float | None = None
    rho: float | None = None  # Spearman: popularity vs strict correctness
    rho_p: float | None = None
    has_samples: bool = False  # with samples and rho None: rho is undefined (a constant side)
    notes: list[int] = field(default_factory=list)

    def note(self, n: int) -> None:
        if n not in self.notes:
            self.notes.append(n)

    @property
    def strict_gain_unclear(self) -> bool:
        """The strict gain's paired interval includes 0."""
        return intervals.includes_zero(self.ci("delta_strict"))


@dataclass(frozen=True)
class BinScore:
    n: int
    strict: float
    lo: float  # 95% Wilson interval
    hi: float


@dataclass
class ValidityRow:
    """Answer-validity shares of one run on one task (None: not in its results file)."""

    family: str
    key: str
    direction: str
    split: str
    task: str
    run: str
    role: str
    shares: dict[str, float] | None
    parse_error: float | None
    notes: list[int] = field(default_factory=list)


REFERENCE = "reference"
Pair = tuple[str, str, str]  # (family, terminology, direction): one table of the report


@dataclass
class Report:
    base: Run
    tuned: list[Run]
    rows: list[Row]
    footnotes: Footnotes
    warnings: list[str]
    # (family, terminology, direction, split, run label) -> popularity bin -> strict accuracy
    by_bin: dict[tuple[str, str, str, str, str], dict[int, BinScore]]
    validity: list[ValidityRow] = field(default_factory=list)  # empty: no run has validity metrics
    validity_categories: dict[Pair, tuple[str, ...]] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)  # the files make_report wrote, if any
    # labels vs mentions and gains without shown answers (``transfer``), made from the rows
    transfer: transfer.Transfer | None = None
    # per fine-tuned run label: what its adapter trained (``trained``)
    trained: dict[str, Trained] = field(default_factory=dict)
    references: list[Run] = field(default_factory=list)  # retrievers shown beside the runs
    # each run with and without retrieved candidates (``rag``), made from the runs once
    rag_rows: list[rag.RagRow] = field(default_factory=list)

    def pairs(self) -> list[Pair]:
        return list(dict.fromkeys((r.family, r.key, r.direction) for r in self.rows))


def _order(key: str, direction: str) -> tuple[int, str, int, str]:
    """Built-in terminologies first in their own order, then the rest alphabetically."""
    keys = list(BUILTIN)
    if key in BUILTIN:
        dirs = [d.name for d in BUILTIN[key].all_directions]
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


def _fill(row: Row, tr: TaskResult, run: Run, notes: Footnotes, warns: list[str]) -> None:
    row.n = tr.n
    row.strict = tr.metrics.get(STRICT)
    row.lenient = tr.metrics.get(LENIENT)
    if row.lenient is None:
        row.note(notes.add(f"{LENIENT} not reported in {run.label} ({tr.file.name}): "
                           "an older plugin version?"))
    if tr.also_in:
        files = ", ".join(str(f) for f in [*tr.also_in, tr.file])
        row.note(notes.add(f"{tr.task}: in {len(tr.also_in) + 1} results files of {run.label} ({files}); "
                           f"the newest, {tr.file}, is used"))
    # k = accuracy x n (a mean of 0/1 scores): the interval is always around the number shown
    if row.strict is not None:
        row.strict_lo, row.strict_hi = intervals.bounds(row.strict * (row.n or 0), row.n)
    if row.lenient is not None:
        row.lenient_lo, row.lenient_hi = intervals.bounds(row.lenient * (row.n or 0), row.n)
    _fill_credit(row, tr)
    if tr.samples and row.strict is not None:
        mean = sum(s.strict for s in tr.samples.values()) / len(tr.samples)
        if not math.isclose(mean, row.strict, abs_tol=1e-6):  # paired numbers come from the samples
            warns.append(f"{tr.task} in {run.label}: its samples file gives strict accuracy {mean:.4f}, "
                         f"the results file {row.strict:.4f} (files of different runs?)")
    if tr.samples:
        row.has_samples = True
        pts = [(s.popularity, s.strict) for s in tr.samples.values() if s.popularity is not None]
        row.rho, row.rho_p = spearman([p for p, _ in pts], [c for _, c in pts])


def _fill_credit(row: Row, tr: TaskResult) -> None:
    """Hierarchy credit, its interval and the parent/child share, from the results file's means."""
    close = [tr.metrics.get(metric(c)) for c in CLOSE_CATEGORIES]
    row.close = None if None in close else sum(c or 0.0 for c in close)
    row.credit = tr.credit
    if row.credit is None or row.strict is None or not row.n:
        return
    # credit = (strict + right-or-close) / 2, so n x (2 credit - strict) documents are right or close
    k_strict = intervals.whole(row.strict * row.n)
    k_close = min(float(row.n), max(k_strict, intervals.whole((2 * row.credit - row.strict) * row.n)))
    ci = intervals.credit_interval(k_strict, k_close, row.n)
    if ci is not None:
        row.credit_lo, row.credit_hi = ci


def _paired(row: Row, b: TaskResult, t: TaskResult) -> None:
    """Transitions, paired intervals and McNemar p from the documents both runs scored."""
    assert b.samples is not None and t.samples is not None
    ids = list(b.samples)
    before = [b.samples[i].strict >= 1.0 for i in ids]
    after = [t.samples[i].strict >= 1.0 for i in ids]
    row.gained, row.lost = intervals.transitions(before, after)
    row.kept_correct = sum(1 for x, y in zip(before, after, strict=True) if x and y)
    row.kept_wrong = len(ids) - row.gained - row.lost - row.kept_correct
    if not ids:
        return
    row.paired = True
    row.p_strict = intervals.mcnemar_exact_p(row.gained, row.lost)
    row.delta_strict_lo, row.delta_strict_hi = intervals.mcnemar_interval(row.gained, row.lost, len(ids))
    lb = [b.samples[i].lenient for i in ids]
    la = [t.samples[i].lenient for i in ids]
    if row.delta_lenient is not None and None not in lb and None not in la:
        row.lenient_gained, row.lenient_lost = intervals.transitions(
            [float(x or 0.0) >= 1.0 for x in lb], [float(x or 0.0) >= 1.0 for x in la])
        row.p_lenient = intervals.mcnemar_exact_p(row.lenient_gained, row.lenient_lost)
        row.delta_lenient_lo, row.delta_lenient_hi = intervals.mcnemar_interval(
            row.lenient_gained, row.lenient_lost, len(ids))
    cb = [b.samples[i].credit for i in ids]
    ca = [t.samples[i].credit for i in ids]
    if row.delta_credit is not None and None not in cb and None not in ca:
        # its two 0/1 halves: strict (the transitions above), and right or parent/child (credit > 0)
        close = intervals.transitions([(x or 0.0) > 0 for x in cb], [(x or 0.0) > 0 for x in ca])
        row.delta_credit_lo, row.delta_credit_hi = intervals.credit_gain_interval(
            (row.gained, row.lost), close, len(ids))


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


UNPAIRED = ("item counts, paired intervals and McNemar p need --log_samples on both runs; "
            "the delta shown is the unpaired difference of the two accuracies")


def build(base: Run, tuned: list[Run], trained: Mapping[str, Trained] | None = None,
          references: Sequence[Run] = ()) -> Report:
    """The report of ``base`` vs the ``tuned`` runs; ``trained``: what some runs' adapters trained, by
    run label (the study knows; else each adapter's manifest says, ``trained.of_run``);
    ``references``: runs shown beside them on the tasks they scored (a retriever, ``termnorm
    retrieve eval``), with their own accuracies and intervals but no delta: they are not the model."""
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

    runs = (base, *tuned)
    info = {t: tr for r in reversed(runs) for t, tr in r.tasks.items()}  # any run's copy: names only
    tasks = sorted(info, key=lambda t: (info[t].family != "termnorm", info[t].family,
                                        *_order(info[t].key, info[t].direction),
                                        ALL_SPLITS.index(info[t].split)))
    rows: list[Row] = []
    for task in tasks:
        ti = info[task]
        b = base.tasks.get(task)
        base_row = Row(ti.key, ti.direction, ti.split, base.label, "base", task, ti.family)
        if b is None:
            base_row.note(notes.add(f"{task}: not in the base run ({base.where}): no delta"))
        else:
            _fill(base_row, b, base, notes, warns)
        rows.append(base_row)
        for run in tuned:
            t = run.tasks.get(task)
            row = Row(ti.key, ti.direction, ti.split, run.label, "tuned", task, ti.family)
            rows.append(row)
            if t is None:
                row.note(notes.add(f"{task}: not in {run.label} ({run.where})"))
                continue
            _fill(row, t, run, notes, warns)
            if b is None:
                row.note(notes.add(f"{task}: not in the base run ({base.where}): no delta"))
                continue
            why = _comparable(b, t, run, notes)
            if why is not None:
                row.note(why)
                continue
            if row.strict is not None and base_row.strict is not None:
                row.delta_strict = row.strict - base_row.strict
            if row.lenient is not None and base_row.lenient is not None:
                row.delta_lenient = row.lenient - base_row.lenient
            if row.credit is not None and base_row.credit is not None:
                row.delta_credit = row.credit - base_row.credit
            if b.samples is not None and t.samples is not None:
                _paired(row, b, t)
            else:
                row.note(notes.add(UNPAIRED))
        for ref in references:
            r = ref.tasks.get(task)
            if r is not None:
                ref_row = Row(ti.key, ti.direction, ti.split, ref.label, REFERENCE, task, ti.family)
                _fill(ref_row, r, ref, notes, warns)
                rows.append(ref_row)
    by_bin: dict[tuple[str, str, str, str, str], dict[int, BinScore]] = {}
    for run in runs:
        for tr in run.tasks.values():
            if not tr.samples:
                continue
            bins: dict[int, list[float]] = defaultdict(list)
            for s in tr.samples.values():
                if s.bin is not None:
                    bins[s.bin].append(s.strict)
            by_bin[(tr.family, tr.key, tr.direction, tr.split, run.label)] = {
                k: BinScore(len(v), sum(v) / len(v), *intervals.wilson(sum(v), len(v)) or (0.0, 0.0))
                for k, v in sorted(bins.items())
            }
    report = Report(base, tuned, rows, notes, warns, by_bin, references=list(references))
    report.trained = {r.label: (trained or {}).get(r.label) or of_run(r.adapter) for r in tuned}
    _validity(report, tasks, info)
    report.transfer = transfer.build(report)
    report.rag_rows = rag.rows(report)
    return report


def _answer_kind(direction: str) -> str | None:
    """The answer kind of a direction: its label direction's (a mention direction, a user's mention
    table's, answers as the label direction it mirrors); a name means the same in every terminology
    that has it (added ontologies reuse term2id/id2term/synonym2id); None for a direction this
    version does not know."""
    label = roles.label_direction(direction)
    kinds = {d.answer_kind for t in BUILTIN.values() for d in t.directions if d.name == label}
    return kinds.pop() if len(kinds) == 1 else None


def hierarchy_applies(key: str, direction: str) -> bool:
    """Identifier answers of an ontology (GO, HPO, an added one, a user's table of one; not genes):
    classed by is_a."""
    return _answer_kind(direction) == "id" and not roles.is_gene(key, direction)


def _categories(tr: TaskResult, nonzero: set[str]) -> tuple[str, ...]:
    """The categories of the task's answer kind (validity_names), plus any other that some run
    gave a share (tasks report every category, 0 where it does not apply), in display order.
    An ontology's identifier task shows the is_a relations, not wrong_real; unless a run has
    wrong_real answers (its index had no parents), and then the relations only where they are not 0."""
    kind = _answer_kind(tr.direction)
    common = set(categories_for("curie")) & set(categories_for("name"))
    if kind is None:
        wanted = common
    else:
        hierarchy = hierarchy_applies(tr.key, tr.direction) and "wrong_real" not in nonzero
        wanted = set(categories_for("name" if kind == "name" else "curie", hierarchy))
    wanted |= nonzero
    return tuple(c for c in CATEGORIES if c in wanted)


def _validity(report: Report, tasks: list[str], info: dict[str, TaskResult]) -> None:
    """Answer-validity shares per task and run, of the categories of the task's answer kind; left
    empty when no run has any (older results)."""
    runs = (report.base, *report.tuned)
    if not any(tr.validity for r in runs for tr in r.tasks.values()):
        return
    nonzero: dict[Pair, set[str]] = defaultdict(set)
    for task in tasks:
        ti = info[task]
        pair = (ti.family, ti.key, ti.direction)
        for run in runs:
            tr = run.tasks.get(task)
            if tr is None:
                continue
            shares = tr.validity
            row = ValidityRow(ti.family, ti.key, ti.direction, ti.split, task, run.label,
                              "base" if run is report.base else "tuned", shares, tr.parse_error)
            if shares is None:
                row.notes.append(report.footnotes.add(
                    f"no answer-validity metrics in {run.label} ({tr.file.name}): "
                    "made by a plugin version before them"))
            else:
                nonzero[pair] |= {c for c, v in shares.items() if v}
                total = sum(shares.values())
                if not math.isclose(total, 1.0, abs_tol=1e-3):
                    report.warnings.append(f"{task} in {run.label}: answer-validity shares sum to "
                                           f"{total:.3f}, not 1 (a category missing?)")
            report.validity.append(row)
    for task in tasks:
        ti = info[task]
        pair = (ti.family, ti.key, ti.direction)
        report.validity_categories.setdefault(pair, _categories(ti, nonzero[pair]))
    for row in report.validity:  # the zeros of categories that do not apply are left out
        if row.shares is not None:
            cats = report.validity_categories[(row.family, row.key, row.direction)]
            row.shares = {c: v for c, v in row.shares.items() if c in cats}


def summary_pairs(report: Report) -> list[Pair]:
    """The tables of label directions: their splits measure memorization and generalization."""
    return [p for p in report.pairs() if not roles.is_mention(p[2])]


def summary_left_out(report: Report) -> list[Pair]:
    """The tables the summary leaves out: mention tasks (concept transfer, the transfer table's) and
    a user's mention tables (a test split)."""
    return [p for p in report.pairs() if roles.is_mention(p[2])]


def summary(report: Report) -> list[dict[str, object]]:
    """Per family x label terminology x direction x tuned run: memorization and generalization gains."""
    out = []
    for family, key, direction in summary_pairs(report):
        for run in report.tuned:
            rec: dict[str, object] = {"family": family, "terminology": key, "direction": direction,
                                      "run": run.label}
            for split in SPLITS:
                row = next((r for r in report.rows if (r.family, r.key, r.direction, r.split, r.run) ==
                            (family, key, direction, split, run.label)), None)
                role = roles.ROLE[split]
                for what in ("strict", "lenient"):
                    rec[f"{role}_{what}"] = getattr(row, f"delta_{what}") if row else None
                    rec[f"{role}_{what}_lo"] = getattr(row, f"delta_{what}_lo") if row else None
                    rec[f"{role}_{what}_hi"] = getattr(row, f"delta_{what}_hi") if row else None
                    rec[f"{role}_{what}_p"] = getattr(row, f"p_{what}") if row else None
                rec[f"{role}_notes"] = list(row.notes) if row else []
            out.append(rec)
    return out
