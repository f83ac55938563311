"""The report as terminal tables, Markdown (papers, PRs), CSV, JSON and PNG figures.

Accuracies are shown in percent and gains in percentage points (the study's unit), each with its
95% interval in brackets; CSV and JSON keep fractions. A gain whose paired interval includes 0 is
marked with UNCLEAR.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from termnorm_eval.analysis.files import csv_text, figure_png, json_text, pyplot
from termnorm_eval.harness.validity_names import CATEGORIES, CLOSE_CATEGORIES, LABELS
from termnorm_eval.report import intervals, rag, roles, transfer
from termnorm_eval.report.compare import Pair, Report, Row, ValidityRow, summary, summary_left_out
from termnorm_eval.report.results import RAG, STUDY, Run
from termnorm_eval.terminologies import BUILTIN
from termnorm_eval.text import clean_text

NA = "n/a"
UNCLEAR = "†"  # the gain's 95% paired interval includes 0
CSV_COLUMNS = (
    "family", "terminology", "direction", "split", "run", "role", "task", "n",
    "strict", "strict_lo", "strict_hi", "lenient", "lenient_lo", "lenient_hi",
    "delta_strict", "delta_strict_lo", "delta_strict_hi", "p_strict",
    "delta_lenient", "delta_lenient_lo", "delta_lenient_hi", "p_lenient", "paired",
    "gained", "lost", "kept_correct", "kept_wrong", "lenient_gained", "lenient_lost",
    "credit", "credit_lo", "credit_hi", "close", "delta_credit", "delta_credit_lo", "delta_credit_hi",
    "rho", "rho_p", "notes",
)
ROW_HEAD = ("split", "run", "n", "strict % [95% CI]", "lenient % [95% CI]", "Δ strict pp [95% CI]",
            "p strict", "Δ lenient pp [95% CI]", "p lenient", "gained", "lost", "kept right", "kept wrong",
            "ρ pop.")
INTERVALS_TEXT = (
    "Brackets: 95% intervals; Wilson score intervals for accuracies; for gains the exact "
    "McNemar-based interval (Clopper-Pearson on the documents gained among those that changed, "
    "scaled to the gain), with p the two-sided exact McNemar test on gained vs lost: the interval "
    "excludes 0 exactly when p < 0.05. Paired numbers need --log_samples on both runs; without them "
    "the delta is the unpaired difference, with no interval."
)
UNCLEAR_TEXT = f"{UNCLEAR} the gain's 95% paired interval includes 0: no clear change."
CREDIT_HEAD = ("split", "run", "n", "strict %", "is_a parent or child %", "hierarchy credit % [95% CI]",
               "Δ credit pp [95% CI]")
CREDIT_TEXT = (
    "Wrong but close: the share of answers that are an is_a parent or child of the gold term (in the "
    "release the splits come from; classed as the validity categories are, on the extracted answer). "
    "Hierarchy credit: 1 for a strict-correct answer, 0.5 for a response that is exactly a parent's or "
    "child's identifier (the strict rule, so a parent in a sentence earns nothing, like the gold in one), "
    "else 0. It is the mean of two 0/1 scores (strict; strict or parent/child), and its interval the mean "
    "of their 97.5% intervals (Wilson; for the gain the exact McNemar-based one, paired): at least 95% "
    "together (Bonferroni). Shown for ontology identifier tasks whose release index has the is_a hierarchy."
)
VALIDITY_MISSING = ("Answer validity: not shown, no results file holds validity_<category> metrics "
                    "(made by a plugin version before them).")
TRANSFER_TEXT = (
    "Did fine-tuning teach the concept's identifier, or the string's? Each mention task asks the "
    "concepts of a split through another of their words (an exact synonym, a lay term, an alias or "
    "previous gene symbol; one per concept, never shown in training), with the label task it mirrors "
    "beside it. Trained concepts are those the run's adapter trained through the label direction (its "
    "termnorm_manifest.json says which; documents about other concepts of the _train split are left out, "
    "and a footnote says how many, or that it is not known); unseen concepts are the held-out split's. "
    "Per split: the label (memorization; generalization) and a new form (concept transfer) on every such "
    "document; a form not near its label (not mostly the label's words, a respelling or small edit of it: "
    "transfer through genuinely different words); the concepts asked both ways, by the label and by the "
    "form, so the gap between the two reads from the same concepts (the label task asks every concept, "
    "the form task only those with a form, a popularity-skewed subset). The conditional row keeps the "
    "concepts asked both ways whose label the fine-tuned run answered right: of the concepts it memorized, "
    "the share it also answers through the form (base: the base model on the same forms). Strict accuracy; "
    "gains paired on each row's documents, intervals as above."
)
TRANSFER_HEAD = ("cell", "run", "task", "n", "base % [95% CI]", "tuned % [95% CI]", "Δ strict pp [95% CI]",
                 "p")
SHOWN_TEXT = (
    "Documents whose prompt shows their own gold answer as a whole word (a gene name holding its "
    "symbol) can be answered by copying it. Per task with such documents: the strict gain on all "
    "documents, without them, and on them alone (paired where both runs logged their samples; a "
    "document is shown when either run's prompt showed it). A gain that shrinks without them was in "
    "part a copying gain."
)
SHOWN_HEAD = ("task", "run", "n", "shown", "Δ strict pp [95% CI]", "without shown: base % → tuned %",
              "Δ without shown pp [95% CI]", "p", "Δ on shown pp [95% CI]")


def md_cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell, list item or heading: a ``|`` or a line break from
    a label or a path would split the row, and ``<``, ``>`` and ``&`` would be live HTML (a label
    ``<script>...``); they become ``\\|``, ``<br>`` and entities, which render as the text itself.
    Backslashes are doubled first so ``\\|`` cannot undo the escape. Every string of report.md that
    comes from a user or a file goes through here (the one escape)."""
    text = html.escape(clean_text(text).replace("\\", "\\\\").replace("|", "\\|"), quote=False)
    return "<br>".join(text.splitlines()) if text else text


def rich_text(text: str) -> str:
    """``text`` for a rich string: ``[/red]`` in a label is shown, not parsed as markup (which raises)."""
    return escape(clean_text(text))


def mpl_text(text: str) -> str:
    """``text`` for a matplotlib label: ``$`` would start mathtext, which raises on bad TeX."""
    return clean_text(text).replace("$", r"\$")


def pair_title(key: str, direction: str, family: str = "termnorm") -> str:
    term = BUILTIN.get(key)
    label = key.upper() if term is None else ("gene" if term.kind == "gene" else term.label)
    suffix = {STUDY: " (study protocol)", RAG: " (with retrieved candidates)"}.get(family, "")
    return f"{label} {direction}{suffix}"


def _pct(x: float | None) -> str:
    return NA if x is None else f"{100 * x:.1f}"


def _pp(x: float | None) -> str:
    return NA if x is None else f"{100 * x:+.1f}"


def _int(x: int | None) -> str:
    return "" if x is None else str(x)


def _p(x: float | None) -> str:
    return "" if x is None else ("<0.001" if x < 0.001 else f"{x:.3f}")


def _marks(notes: Sequence[int]) -> str:
    return "".join(f" [{n}]" for n in notes)


def _acc(x: float | None, ci: tuple[float, float] | None) -> str:
    return _pct(x) if x is None or ci is None else f"{_pct(x)} [{_pct(ci[0])}, {_pct(ci[1])}]"


def _gain(x: float | None, ci: tuple[float, float] | None) -> str:
    if x is None or ci is None:
        return _pp(x)
    return f"{_pp(x)} [{_pp(ci[0])}, {_pp(ci[1])}]" + (UNCLEAR if intervals.includes_zero(ci) else "")


def _cells(row: Row) -> list[str]:
    is_base = row.role != "tuned"  # a base or reference (retriever) row has no delta
    cells = [
        roles.split_title(row.direction, row.split), row.run, _int(row.n),
        _acc(row.strict, row.ci("strict")), _acc(row.lenient, row.ci("lenient")),
        "" if is_base else _gain(row.delta_strict, row.ci("delta_strict")), _p(row.p_strict),
        "" if is_base else _gain(row.delta_lenient, row.ci("delta_lenient")), _p(row.p_lenient),
        _int(row.gained), _int(row.lost), _int(row.kept_correct), _int(row.kept_wrong),
        f"{row.rho:+.2f}" if row.rho is not None else ("const." if row.has_samples else ""),
    ]
    if row.notes:  # the mark goes where the gap shows: the delta when there is one, else the accuracy
        at = 5 if not is_base and row.strict is not None else 3
        cells[at] += _marks(row.notes)
    return cells


def _summary_cells(rec: dict[str, Any]) -> list[str]:
    out = [pair_title(str(rec["terminology"]), str(rec["direction"]), str(rec["family"])), str(rec["run"])]
    for role in ("memorization", "generalization"):
        strict, lenient = rec[f"{role}_strict"], rec[f"{role}_lenient"]
        lo, hi = rec[f"{role}_strict_lo"], rec[f"{role}_strict_hi"]
        cell = f"{_gain(strict, None if lo is None else (lo, hi))} ({_pp(lenient)})"
        if (strict is None or lo is None) and rec[f"{role}_notes"]:
            cell += _marks(rec[f"{role}_notes"])
        out.append(cell)
    return out


SUMMARY_HEAD = ("task", "run", "memorization gain: train Δ, pp [95% CI] (lenient)",
                "generalization gain: held-out Δ, pp [95% CI] (lenient)")
NO_LABEL_TASKS = ("No label task (term2id, name2symbol, ...) in these runs: no memorization or "
                  "generalization gain.")


def summary_note(report: Report) -> str | None:
    """One line naming the tables the summary leaves out, and why; None when it leaves none out."""
    left = summary_left_out(report)
    if not left:
        return None
    names = ", ".join(pair_title(k, d, f) for f, k, d in left)
    return (f"Not in this summary: {names}. A mention task's training split asks the trained concepts "
            "through a form training never showed (concept transfer, not memorization: see Concept "
            "transfer), its held-out split unseen concepts through a form; a user's mention table (test "
            "split) is neither. Each has its own table below.")


def _runs_lines(report: Report) -> list[str]:
    def one(run: Run, role: str) -> str:
        adapter = f", adapter {run.adapter}" if run.adapter else ""
        name = role if run.label == role else f"{role} {run.label!r}"
        files = str(run.path) if len(run.files) == 1 else (
            f"{len(run.files)} results files: " + ", ".join(str(f) for f in run.files))
        return clean_text(f"{name}: {files} (model {run.model}{adapter}; filter {run.filter})")

    return [one(report.base, "base"), *(one(r, "tuned") for r in report.tuned),
            *(clean_text(f"{r.label}: {r.path} (every live concept; the asked form held out)")
              for r in report.references)]


def _validity_table(report: Report, pair: Pair) -> tuple[list[str], list[list[str]]]:
    """Head and cells of one pair's answer-validity table (shares in %, categories in order)."""
    cats = report.validity_categories.get(pair, ())
    rows = [v for v in report.validity if (v.family, v.key, v.direction) == pair]
    with_parse = any(v.parse_error is not None for v in rows)
    head = ["split", "run", *(LABELS[c] + " %" for c in cats)] + (["parse error %"] if with_parse else [])
    cells = []
    prev = None
    for v in rows:
        line = ["" if v.split == prev else roles.split_title(v.direction, v.split), v.run]  # named once
        prev = v.split
        if v.shares is None:
            line += [NA + _marks(v.notes)] + [""] * (len(cats) - 1)
        else:
            line += [_pct(v.shares[c]) if c in v.shares else "" for c in cats]
        if with_parse:
            line.append(_pct(v.parse_error) if v.parse_error is not None else "")
        cells.append(line)
    return head, cells


def _validity_pairs(report: Report) -> list[Pair]:
    return list(dict.fromkeys((v.family, v.key, v.direction) for v in report.validity))


def credit_pairs(report: Report) -> list[Pair]:
    """The tables whose answers are classed by is_a (their categories hold the relations) and that
    some run reports a hierarchy credit for."""
    return [p for p in _validity_pairs(report) if "wrong_parent" in report.validity_categories.get(p, ())
            and any(r.credit is not None for r in report.rows if (r.family, r.key, r.direction) == p)]


def _credit_table(report: Report, pair: Pair) -> list[list[str]]:
    """Cells of one pair's hierarchy-credit table (CREDIT_HEAD)."""
    cells = []
    prev = None
    for row in (r for r in report.rows if (r.family, r.key, r.direction) == pair):
        title = "" if row.split == prev else roles.split_title(row.direction, row.split)
        line = [title, row.run, _int(row.n), _pct(row.strict), _pct(row.close),
                _acc(row.credit, row.ci("credit")),
                "" if row.role == "base" else _gain(row.delta_credit, row.ci("delta_credit"))]
        prev = row.split
        cells.append(line)
    return cells


def _transfer(report: Report) -> transfer.Transfer:
    """The report's transfer cells and shown-answer rows (``compare.build`` makes them)."""
    return report.transfer if report.transfer is not None else transfer.build(report)


def transfer_title(family: str, key: str, direction: str) -> str:
    """A transfer table's title: the label direction and the mention direction mirroring it."""
    return f"{pair_title(key, transfer.MIRRORS[direction], family)} / {direction}"


def _transfer_table(tr: transfer.Transfer, pair: Pair) -> list[list[str]]:
    """Cells of one (family, terminology, mention direction) transfer table (TRANSFER_HEAD)."""
    out = []
    prev = None
    for c in (c for c in tr.cells if (c.family, c.key, c.direction) == pair):
        gain = _gain(c.delta, c.ci("delta")) + _marks(c.notes)
        out.append(["" if c.cell == prev else transfer.CELL_TITLE[c.cell], c.run, c.task, _int(c.n),
                    _acc(c.base, c.ci("base")), _acc(c.tuned, c.ci("tuned")), gain, _p(c.p_strict)])
        prev = c.cell
    return out


def _shown_table(tr: transfer.Transfer) -> list[list[str]]:
    """Rows of the shown-answer table (SHOWN_HEAD)."""
    return [[r.task, r.run, _int(r.n), _int(r.shown), _gain(r.delta, r.ci("delta")) + _marks(r.notes),
             f"{_pct(r.base_hidden)} → {_pct(r.tuned_hidden)}", _gain(r.delta_hidden, r.ci("delta_hidden")),
             _p(r.p_hidden), _gain(r.delta_shown, r.ci("delta_shown")) if r.shown else ""]
            for r in tr.shown]


def _rich_table(title: str, head: Sequence[str], rows: list[list[str]]) -> Table:
    t = Table(title=rich_text(title), title_justify="left")
    for h in head:
        t.add_column(rich_text(h), justify="left" if h in ("cell", "task", "run", "split") else "right")
    for line in rows:
        t.add_row(*map(rich_text, line))
    return t


def transfer_lines(tr: transfer.Transfer) -> list[str]:
    """The lines under the transfer tables: runs without cells, forms near their label not told apart."""
    left = "; ".join(f"{transfer_title(*pair)}: {run} ({why})" for pair, run, why in tr.left_out)
    out = [f"Not in these tables: {left}."] if left else []
    return out + ([tr.why_no_near] if tr.why_no_near else [])


def _transfer_terminal(report: Report) -> list[Any]:
    tr = _transfer(report)
    parts: list[Any] = [_rich_table(f"Concept transfer: {transfer_title(*pair)}", TRANSFER_HEAD,
                                    _transfer_table(tr, pair)) for pair in tr.pairs()]
    parts.append(Text(clean_text(tr.why_no_cells or TRANSFER_TEXT), style="dim"))
    parts += [Text(clean_text(line), style="dim") for line in transfer_lines(tr)]
    if tr.shown:
        parts += [_rich_table("Answer shown in the prompt: gains with and without those documents",
                              SHOWN_HEAD, _shown_table(tr)), Text(clean_text(SHOWN_TEXT), style="dim")]
        if tr.shown_also:
            parts.append(Text(clean_text(tr.shown_also), style="dim"))
    else:
        parts.append(Text(clean_text(tr.why_no_shown or ""), style="dim"))
    return parts


def _transfer_markdown(report: Report) -> list[str]:
    tr = _transfer(report)
    if tr.why_no_cells:
        lines = [md_cell(tr.why_no_cells), ""]
    else:
        lines = ["## Concept transfer: labels vs other forms", "", md_cell(TRANSFER_TEXT), ""]
        for pair in tr.pairs():
            lines += [f"### {md_cell(transfer_title(*pair))}", ""]
            lines += [*_md_table(TRANSFER_HEAD, _transfer_table(tr, pair)), ""]
    lines += [x for line in transfer_lines(tr) for x in (md_cell(line), "")]
    if tr.shown:
        lines += ["## Answer shown in the prompt", "", md_cell(SHOWN_TEXT), ""]
        lines += [*_md_table(SHOWN_HEAD, _shown_table(tr)), ""]
        if tr.shown_also:
            lines += [md_cell(tr.shown_also), ""]
    else:
        lines += [md_cell(tr.why_no_shown or ""), ""]
    return lines


def terminal(report: Report) -> Group:
    # Text() is literal; strings given to Table (cells, titles) are rich markup and are escaped.
    parts: list[Any] = [Text("\n".join(_runs_lines(report)), style="dim")]
    for w in report.warnings:
        parts.append(Text(clean_text(f"warning: {w}"), style="yellow"))
    recs = summary(report)
    if recs:
        s = Table(title="Gains from fine-tuning (percentage points [95% CI]; lenient in parentheses)",
                  title_justify="left")
        for h in SUMMARY_HEAD:
            s.add_column(h, no_wrap=True, justify="left" if h in ("task", "run") else "right")
        for rec in recs:
            s.add_row(*map(rich_text, _summary_cells(rec)))
        parts.append(s)
    else:
        parts.append(Text(NO_LABEL_TASKS, style="dim"))
    if summary_note(report):
        parts.append(Text(clean_text(summary_note(report) or ""), style="dim"))
    for family, key, direction in report.pairs():
        t = Table(title=rich_text(pair_title(key, direction, family)), title_justify="left")
        for h in ROW_HEAD:
            t.add_column(rich_text(h), no_wrap=True, justify="left" if h in ("split", "run") else "right")
        prev = None
        for row in (r for r in report.rows if (r.family, r.key, r.direction) == (family, key, direction)):
            cells = _cells(row)
            if prev is not None and row.split != prev:
                t.add_section()
            elif prev is not None:
                cells[0] = ""  # the split is named once per section
            prev = row.split
            t.add_row(*map(rich_text, cells))
        parts.append(t)
    if report.validity:
        for pair in _validity_pairs(report):
            vhead, vcells = _validity_table(report, pair)
            name = pair_title(pair[1], pair[2], pair[0])
            t = Table(title=rich_text(f"Answer validity: {name} (% of answers)"), title_justify="left")
            for h in vhead:
                t.add_column(rich_text(h), justify="left" if h in ("split", "run") else "right")
            for line in vcells:
                t.add_row(*map(rich_text, line))
            parts.append(t)
    else:
        parts.append(Text(VALIDITY_MISSING, style="dim"))
    for pair in credit_pairs(report):
        t = Table(title=rich_text(f"Wrong but close: {pair_title(pair[1], pair[2], pair[0])}"),
                  title_justify="left")
        for h in CREDIT_HEAD:
            t.add_column(rich_text(h), no_wrap=True, justify="left" if h in ("split", "run") else "right")
        for line in _credit_table(report, pair):
            t.add_row(*map(rich_text, line))
        parts.append(t)
    if credit_pairs(report):
        parts.append(Text(clean_text(CREDIT_TEXT), style="dim"))
    parts += _transfer_terminal(report)
    parts.append(Text(clean_text(INTERVALS_TEXT + " " + UNCLEAR_TEXT), style="dim"))
    if report.footnotes.texts:
        notes = "\n".join(f"[{i}] {txt}" for i, txt in enumerate(report.footnotes.texts, 1))
        parts.append(Text(clean_text(notes)))
    return Group(*parts)


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    right = [h not in ("cell", "task", "run", "split") for h in head]
    lines = ["| " + " | ".join(md_cell(h) for h in head) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return lines


def markdown(report: Report, figures: Sequence[str]) -> str:
    lines = ["# What fine-tuning did: memorization vs generalization", ""]
    lines += [f"- {md_cell(line)}" for line in _runs_lines(report)]
    lines += [f"- **warning:** {md_cell(w)}" for w in report.warnings]
    lines += ["", "Strict: exact match as in the study (identifiers case-sensitive, names "
              "case-insensitive). Lenient: canonical identifier form, synonyms and alt_ids also count. "
              "Δ: fine-tuned minus base, in percentage points; for a label task, on the training split "
              "it is the memorization gain, on the held-out split the generalization gain (a mention "
              "task's training split asks trained concepts through a new form). gained/lost/kept: "
              "documents by strict correctness before -> after (needs `--log_samples`). ρ pop.: "
              "Spearman rank correlation of popularity with strict correctness (const.: undefined, "
              "every document scored the same).", "", md_cell(INTERVALS_TEXT), "", md_cell(UNCLEAR_TEXT), ""]
    lines += ["## Summary", ""]
    recs = summary(report)
    lines += _md_table(SUMMARY_HEAD, [_summary_cells(r) for r in recs]) if recs else [NO_LABEL_TASKS]
    if summary_note(report):
        lines += ["", md_cell(summary_note(report) or "")]
    for family, key, direction in report.pairs():
        lines += ["", f"## {md_cell(pair_title(key, direction, family))}", ""]
        rows = [_cells(r) for r in report.rows if (r.family, r.key, r.direction) == (family, key, direction)]
        lines += _md_table(ROW_HEAD, rows)
    lines += ["", "## Answer validity", ""]
    if report.validity:
        lines += ["What the answers were, before and after fine-tuning: each answer falls into one "
                  "category of its answer format; shares in % of the documents scored (parse error: "
                  "study-protocol responses that were not JSON with the asked key).", ""]
        for pair in _validity_pairs(report):
            head, cells = _validity_table(report, pair)
            lines += [f"### {md_cell(pair_title(pair[1], pair[2], pair[0]))}", ""]
            lines += [*_md_table(head, cells), ""]
    else:
        lines += [md_cell(VALIDITY_MISSING), ""]
    if credit_pairs(report):
        lines += ["## Wrong but close: is_a parent or child", "", md_cell(CREDIT_TEXT), ""]
        for pair in credit_pairs(report):
            lines += [f"### {md_cell(pair_title(pair[1], pair[2], pair[0]))}", ""]
            lines += [*_md_table(CREDIT_HEAD, _credit_table(report, pair)), ""]
    lines += _transfer_markdown(report)
    lines += rag_markdown(report)
    for fig in figures:
        lines += [f"![{fig}]({fig})", ""]
    if report.footnotes.texts:
        lines += ["## Notes", ""]
        lines += [f"{i}. {md_cell(txt)}" for i, txt in enumerate(report.footnotes.texts, 1)]
    return "\n".join(lines).rstrip("\n") + "\n"


def _is_p(key: str) -> bool:
    return key.startswith("p_") or key.endswith("_p")


def _round(d: dict[str, Any]) -> dict[str, Any]:
    """Fractions to 6 decimals; p-values to 6 significant digits (a p of 1e-9 must not become 0)."""
    return {k: (float(f"{v:.6g}") if _is_p(k) else round(v, 6)) if isinstance(v, float) else v
            for k, v in d.items()}


def _row_dict(r: Row) -> dict[str, Any]:
    d = asdict(r)
    d["terminology"] = d.pop("key")
    d["notes"] = " ".join(f"[{n}]" for n in r.notes)
    d["strict_gain_includes_zero"] = r.strict_gain_unclear if r.paired else None
    return _round(d)


def csv_out(report: Report) -> str:
    return csv_text([_row_dict(r) for r in report.rows], CSV_COLUMNS)


BINS_COLUMNS = ("family", "terminology", "direction", "split", "run", "bin", "n", "strict", "strict_lo",
                "strict_hi")


def bins_csv(report: Report) -> str:
    rows = [
        _round({"family": f, "terminology": k, "direction": d, "split": s, "run": run, "bin": b, "n": v.n,
                "strict": v.strict, "strict_lo": v.lo, "strict_hi": v.hi})
        for (f, k, d, s, run), bins in report.by_bin.items() for b, v in bins.items()
    ]
    return csv_text(rows, BINS_COLUMNS)


def _validity_dict(v: ValidityRow) -> dict[str, Any]:
    return {"family": v.family, "terminology": v.key, "direction": v.direction, "split": v.split,
            "task": v.task, "run": v.run, "role": v.role,
            "shares": None if v.shares is None else _round(v.shares),
            "parse_error": v.parse_error, "notes": " ".join(f"[{n}]" for n in v.notes)}


def validity_csv(report: Report) -> str:
    """One row per task and run, one column per category (CATEGORIES order), fractions."""
    cats = [c for c in CATEGORIES if any(v.shares and c in v.shares for v in report.validity)]
    rows = []
    for v in report.validity:
        d = {k: val for k, val in _validity_dict(v).items() if k != "shares"}
        rows.append(_round(d | {c: (v.shares or {}).get(c) for c in cats}))
    return csv_text(rows, ("family", "terminology", "direction", "split", "task", "run", "role",
                           *cats, "parse_error", "notes"))


TRANSFER_COLUMNS = ("family", "terminology", "direction", "label_direction", "cell", "run", "task", "n",
                    "base", "base_lo", "base_hi", "tuned", "tuned_lo", "tuned_hi", "delta", "delta_lo",
                    "delta_hi", "p_strict", "paired", "gained", "lost", "untrained", "near", "notes")
SHOWN_COLUMNS = ("family", "terminology", "direction", "split", "task", "run", "n", "shown", "delta",
                 "delta_lo", "delta_hi", "base_hidden", "tuned_hidden", "delta_hidden", "delta_hidden_lo",
                 "delta_hidden_hi", "p_hidden", "delta_shown", "delta_shown_lo", "delta_shown_hi", "paired",
                 "notes")


def _transfer_dict(obj: transfer.TransferCell | transfer.ShownRow) -> dict[str, Any]:
    d = asdict(obj)
    return _round({"family": d.pop("family"), "terminology": d.pop("key"), **d,
                   "notes": " ".join(f"[{n}]" for n in obj.notes)})


def transfer_csv(report: Report) -> str:
    """The transfer cells: one row per terminology, mention direction, cell and fine-tuned run."""
    return csv_text([_transfer_dict(c) for c in _transfer(report).cells], TRANSFER_COLUMNS)


def shown_csv(report: Report) -> str:
    """Gains with and without the documents whose prompt shows their answer, per task and run."""
    return csv_text([_transfer_dict(r) for r in _transfer(report).shown], SHOWN_COLUMNS)


def json_out(report: Report) -> str:
    def run(r: Run) -> dict[str, Any]:
        return {"label": r.label, "path": clean_text(str(r.path)),
                "files": [clean_text(str(f)) for f in r.files], "model_args": r.model_args,
                "filter": r.filter}

    return json_text({
        "base": run(report.base), "tuned": [run(r) for r in report.tuned],
        "references": [run(r) for r in report.references],
        "warnings": report.warnings, "notes": report.footnotes.texts,
        "intervals": {"accuracy": "wilson", "level": 0.95,
                      "gain": "exact McNemar-based: Clopper-Pearson on gained of gained + lost, "
                              "scaled to (gained - lost) / n",
                      "gain_p": "exact McNemar (two-sided binomial on gained vs lost)",
                      "credit": "mean of the 97.5% intervals of strict and of strict-or-parent/child "
                                "(Wilson; for its gain exact McNemar-based): >= 95% by Bonferroni"},
        "summary": [_round(r) for r in summary(report)], "summary_note": summary_note(report),
        "rows": [_row_dict(r) for r in report.rows],
        "by_bin": [{"family": f, "terminology": k, "direction": d, "split": s, "run": r,
                    "bins": {str(b): {"n": v.n, "strict": v.strict, "strict_lo": v.lo, "strict_hi": v.hi}
                             for b, v in bins.items()}}
                   for (f, k, d, s, r), bins in report.by_bin.items()],
        "validity": [_validity_dict(v) for v in report.validity],
        "validity_labels": {c: LABELS[c] for c in CATEGORIES},
        "validity_note": None if report.validity else VALIDITY_MISSING,
        "transfer": [_transfer_dict(c) for c in _transfer(report).cells],
        "transfer_note": _transfer(report).why_no_cells,
        "transfer_left_out": [{"family": f, "terminology": k, "direction": d, "run": run, "why": why}
                              for (f, k, d), run, why in _transfer(report).left_out],
        "transfer_near_note": _transfer(report).why_no_near,
        "trained": {label: t.to_dict() for label, t in report.trained.items()},
        "answer_shown": [_transfer_dict(r) for r in _transfer(report).shown],
        "answer_shown_note": _transfer(report).why_no_shown or _transfer(report).shown_also,
    })


def _message_figure(text: str) -> bytes:
    """A small figure that only says ``text``: a figure with nothing to plot keeps its file (the file
    set of --out stays the same, so a rerun may replace an earlier output); report.md does not link it."""
    fig, ax = pyplot().subplots(figsize=(6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, mpl_text(text), ha="center", va="center", fontsize=7, wrap=True)
    return figure_png(fig)


def gains_figure(report: Report) -> bytes:
    """Memorization gain vs generalization gain per label task and fine-tuned run (strict, pp), with
    the 95% paired intervals as error bars; a gain whose interval includes 0 is labelled with UNCLEAR.
    Mention tasks are the transfer figure's."""
    plt = pyplot()
    recs = summary(report)
    if not recs:  # the file set of --out stays the same; report.md does not link it
        return _message_figure(NO_LABEL_TASKS)

    def title(r: dict[str, object]) -> str:
        return pair_title(str(r["terminology"]), str(r["direction"]), str(r["family"]))

    labels = list(dict.fromkeys(title(r) for r in recs))
    runs = [r.label for r in report.tuned]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) * max(1, len(runs)) + 2), 4.2))
    width = 0.8 / (2 * max(1, len(runs)))
    cmap = plt.get_cmap("tab10")
    for j, run in enumerate(runs):
        for k, role in enumerate(("memorization", "generalization")):
            xs: list[float] = []
            ys: list[float] = []
            err: list[list[float]] = [[], []]
            texts: list[str] = []
            for i, lab in enumerate(labels):
                rec = next(r for r in recs if r["run"] == run and title(r) == lab)
                val = rec[f"{role}_strict"]
                x = i - 0.4 + width * (2 * j + k + 0.5)
                if val is None:
                    ax.text(x, 0, NA, ha="center", va="bottom", fontsize=6, rotation=90, color="grey")
                    continue
                y = 100 * float(val)  # type: ignore[arg-type]
                lo, hi = rec[f"{role}_strict_lo"], rec[f"{role}_strict_hi"]
                xs.append(x)
                ys.append(y)
                if lo is None or hi is None:
                    err[0].append(0.0)
                    err[1].append(0.0)
                    texts.append(f"{y:+.1f}")
                else:  # error bars are distances from the bar's top; the gain lies inside its CI
                    err[0].append(max(0.0, y - 100 * float(lo)))  # type: ignore[arg-type]
                    err[1].append(max(0.0, 100 * float(hi) - y))  # type: ignore[arg-type]
                    unclear = intervals.includes_zero((float(lo), float(hi)))  # type: ignore[arg-type]
                    texts.append(f"{y:+.1f}" + (UNCLEAR if unclear else ""))
            what = "train Δ (memorization)" if k == 0 else "held-out Δ (generalization)"
            bars = ax.bar(xs, ys, width=width, color=cmap(2 * j + k), label=mpl_text(f"{run}: {what}"),
                          yerr=err, capsize=2, error_kw={"lw": 0.8})
            ax.bar_label(bars, labels=texts, fontsize=7, padding=2)  # a zero gain stays visible
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([mpl_text(lab) for lab in labels], rotation=30, ha="right")
    ax.set_ylabel("strict accuracy gain (percentage points)")
    ax.set_title("What fine-tuning did: memorization vs generalization gain\n"
                 f"error bars: 95% exact McNemar-based interval; {UNCLEAR}: interval includes 0", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)


def popularity_figure(report: Report) -> bytes:
    """Strict accuracy by popularity: per bin from logged samples (with 95% Wilson intervals), else
    by the low/mid/high thirds the tasks report (``exact_match_low`` ..., no interval: the results
    file has no document count per third)."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    pairs = report.pairs()
    ncols = min(3, len(pairs))
    nrows = -(-len(pairs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    runs = [report.base, *report.tuned]
    cmap = plt.get_cmap("tab10")
    for ax, (family, key, direction) in zip(axes.flat, pairs, strict=False):
        for j, run in enumerate(runs):
            for split in ("train", "val"):
                style = "-" if split == "train" else "--"
                marker = "o" if split == "train" else "s"
                label = mpl_text(f"{run.label} {split}")
                bins = report.by_bin.get((family, key, direction, split, run.label))
                if bins:
                    xs = list(bins)
                    ys = [100 * bins[b].strict for b in xs]
                    yerr = [[max(0.0, y - 100 * bins[b].lo) for b, y in zip(xs, ys, strict=True)],
                            [max(0.0, 100 * bins[b].hi - y) for b, y in zip(xs, ys, strict=True)]]
                    # runs side by side within a bin, so their error bars do not cover each other
                    shift = 0.12 * (j - (len(runs) - 1) / 2) + (0.04 if split == "val" else 0.0)
                    ax.errorbar([x + shift for x in xs], ys, yerr=yerr, fmt=style, marker=marker, ms=4,
                                mfc="white" if split == "val" else None, color=cmap(j), label=label,
                                elinewidth=0.7, capsize=1.5)
                    ax.set_xlabel("popularity bin (0 = rarest)")
                    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                    continue
                tr = run.tasks.get(f"{family}_{key}_{direction}_{split}")
                if tr is None:
                    continue
                pts = [(i, tr.metrics[f"exact_match_{s}"]) for i, s in enumerate(("low", "mid", "high"))
                       if f"exact_match_{s}" in tr.metrics]
                if pts:
                    ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], style, marker=marker,
                            mfc="white" if split == "val" else None, color=cmap(j), label=label)
                    ax.set_xticks([0, 1, 2], ["low", "mid", "high"])
                    ax.set_xlabel("popularity third")
        ax.set_title(mpl_text(pair_title(key, direction, family)), fontsize=9)
        ax.set_ylabel("strict accuracy %")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    fig.suptitle("Accuracy by popularity (solid, filled: train; dashed, open: held-out; "
                 "bars: 95% Wilson intervals)", fontsize=10)
    fig.tight_layout()
    return figure_png(fig)


def validity_figure(report: Report) -> bytes:
    """Stacked bars of answer-validity shares: per task one bar per run (base, each tuned),
    segments in CATEGORIES order, legend with LABELS. Without any validity metrics: a figure that
    says so (the file set of --out stays the same, so a rerun may replace an earlier output)."""
    plt = pyplot()
    if not report.validity:
        return _message_figure(VALIDITY_MISSING)
    tasks = list(dict.fromkeys(v.task for v in report.validity))
    runs = [report.base.label, *(r.label for r in report.tuned)]
    used = [c for c in CATEGORIES if any(v.shares and v.shares.get(c) for v in report.validity)]
    cmap = plt.get_cmap("tab20")
    colours = {c: cmap(i % 20) for i, c in enumerate(CATEGORIES)}  # a category keeps its colour
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(tasks) * len(runs) + 3), 4.8))
    for j, run in enumerate(runs):
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(tasks))]
        rows = {v.task: v for v in report.validity if v.run == run}
        bottom = [0.0] * len(tasks)
        for c in used:
            hs = [100 * ((rows[t].shares or {}).get(c, 0.0) if t in rows else 0.0) for t in tasks]
            ax.bar(xs, hs, width=width * 0.95, bottom=bottom, color=colours[c],
                   label=mpl_text(LABELS[c]) if j == 0 else None, edgecolor="white", linewidth=0.3)
            bottom = [b + h for b, h in zip(bottom, hs, strict=True)]
        for x, t in zip(xs, tasks, strict=True):
            v = rows.get(t)
            text = run if v is not None and v.shares is not None else f"{run}: {NA}"
            if v is not None and v.parse_error is not None:
                text += f" (parse error {_pct(v.parse_error)}%)"
            close = sum((v.shares or {}).get(c, 0.0) for c in CLOSE_CATEGORIES) if v is not None else 0.0
            if close:  # wrong but close: the share the segments above the right answers add up to
                text += f" (is_a parent/child {_pct(close)}%)"
            ax.text(x, 101, mpl_text(text), rotation=90, ha="center", va="bottom", fontsize=6)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels([mpl_text(t) for t in tasks], rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0, 125)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("% of answers")
    ax.set_title("Answer validity before and after fine-tuning (one bar per run)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return figure_png(fig)


CELL_TICK = {"trained_label": "trained:\nlabel", "trained_form": "trained:\nnew form",
             "trained_form_far": "trained:\nform not\nnear label",
             "trained_both_label": "trained,\nboth:\nlabel", "trained_both_form": "trained,\nboth:\nform",
             "trained_form_if_label": "trained, label\nright: form",
             "unseen_label": "unseen:\nlabel", "unseen_form": "unseen:\nform",
             "unseen_form_far": "unseen:\nform not\nnear label",
             "unseen_both_label": "unseen,\nboth:\nlabel", "unseen_both_form": "unseen,\nboth:\nform"}


def transfer_figure(report: Report) -> bytes:
    """Per terminology and mention direction, the transfer cells: base (light, hatched) and
    fine-tuned (solid) strict accuracy per run, with 95% Wilson intervals. Without mention tasks: a
    figure that says so (the file set of --out stays the same)."""
    plt = pyplot()
    tr = _transfer(report)
    if not tr.cells:
        return _message_figure(tr.why_no_cells or "")
    pairs = tr.pairs()
    ncols = min(2, len(pairs))
    nrows = -(-len(pairs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(9.6 * ncols, 4.2 * nrows), squeeze=False)
    runs = [r.label for r in report.tuned]
    cmap = plt.get_cmap("tab10")
    for ax, pair in zip(axes.flat, pairs, strict=False):
        mine = {(c.run, c.cell): c for c in tr.cells if (c.family, c.key, c.direction) == pair}
        names = [n for n in transfer.CELLS if any(cell == n for _, cell in mine)]
        # only the runs that scored this pair (a study's adapters each train one terminology; a run
        # without the tasks has empty cells), all of them where none did; a run keeps its colour
        here = ([r for r in runs if any(c.n for (run, _), c in mine.items() if run == r)]
                or [r for r in runs if any(run == r for run, _ in mine)])
        width = 0.8 / (2 * len(here))
        for j, run in enumerate(here):
            for k, side in enumerate(("base", "tuned")):
                xs: list[float] = []
                ys: list[float] = []
                err: list[list[float]] = [[], []]
                for i, name in enumerate(names):
                    if (run, name) not in mine:
                        continue
                    c = mine[(run, name)]
                    x = i - 0.4 + width * (2 * j + k + 0.5)
                    value, ci = getattr(c, side), c.ci(side)
                    if value is None:
                        ax.text(x, 1, NA, ha="center", va="bottom", fontsize=6, rotation=90, color="grey")
                        continue
                    xs.append(x)
                    ys.append(100 * value)
                    err[0].append(0.0 if ci is None else max(0.0, 100 * (value - ci[0])))
                    err[1].append(0.0 if ci is None else max(0.0, 100 * (ci[1] - value)))
                what = "base" if side == "base" else "fine-tuned"
                bars = ax.bar(xs, ys, width=width, color=cmap(runs.index(run)),
                              alpha=0.35 if side == "base" else 1.0, hatch="//" if side == "base" else None,
                              yerr=err, capsize=2, error_kw={"lw": 0.8}, label=mpl_text(f"{run}: {what}"))
                ax.bar_label(bars, labels=[f"{y:.0f}" for y in ys], fontsize=6, padding=2)
        ax.set_xticks(range(len(names)), [CELL_TICK[c] for c in names], fontsize=6)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylim(0, 118)
        ax.set_ylabel("strict accuracy %")
        ax.set_title(mpl_text(transfer_title(*pair)), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=6, loc="upper right")
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    fig.suptitle("Concept transfer: trained and unseen concepts by label and through another form, before "
                 "(hatched) and after fine-tuning; bars: 95% Wilson intervals", fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


RAG_HEAD = ("split", "cell", "run", "n", "plain % [95% CI]", "with candidates % [95% CI]",
            "RAG gain, pp [95% CI]", "p", "ceiling %", "retriever acc@1 %")
RAG_NO_RETRIEVER = ("retriever acc@1: give the results of the retriever that made the candidates "
                    "(termnorm retrieve eval) with --retriever")
RAG_TEXT = ("Each run with and without the retrieved candidates in its prompt, paired on the same documents "
            "(gain: exact McNemar interval). Ceiling: the share whose gold was among the candidates shown. "
            "A label task's candidates can show the asked label verbatim: a pick can be copying. Fine-tuned "
            "+ RAG vs base + RAG on all documents is the termnorm-rag row of the tables above.")


def rag_markdown(report: Report) -> list[str]:
    """The retrieval-arm section (``rag``); nothing when no run scored a RAG task beside its plain one."""
    rows = report.rag_rows
    if not rows:
        return []
    lines = ["## Retrieval arm: with and without candidates", "", md_cell(RAG_TEXT), ""]
    for key, direction in dict.fromkeys((r.key, r.direction) for r in rows):
        mine = [r for r in rows if (r.key, r.direction) == (key, direction)]
        cells = []
        for r in mine:
            cells.append([r.split, r.cell, r.run, _int(r.n), _acc(r.plain, r.ci("plain")),
                          _acc(r.rag, r.ci("rag")), _gain(r.delta, r.ci("delta")), _p(r.p_strict),
                          _pct(r.ceiling), _pct(r.retriever)])
        title = md_cell(pair_title(key, direction, RAG))
        lines += [f"### {title}", "", *_md_table(RAG_HEAD, cells), ""]
        labels = sorted({r.retriever_label for r in mine if r.retriever_label})
        lines += [f"- retriever acc@1: {md_cell(', '.join(labels))}" if labels else f"- {RAG_NO_RETRIEVER}"]
        lines += [f"- {md_cell(n)}" for n in dict.fromkeys(n for r in mine for n in r.notes)]
        lines.append("")
    return lines


def rag_csv(report: Report) -> str:
    return csv_text([_round(r.as_dict()) for r in report.rag_rows], rag.COLUMNS)


def rag_figure(report: Report) -> bytes:
    """Per terminology and direction: plain and with-candidates strict accuracy per run and cell,
    with 95% Wilson intervals, the ceiling as a tick."""
    rows = report.rag_rows
    if not rows:
        return _message_figure(rag.NO_RAG)
    plt = pyplot()
    pairs = list(dict.fromkeys((r.key, r.direction) for r in rows))
    ncols = min(2, len(pairs))
    nrows = -(-len(pairs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(8.0 * ncols, 3.8 * nrows), squeeze=False)
    runs = list(dict.fromkeys(r.run for r in rows))
    cmap = plt.get_cmap("tab10")
    for ax, pair in zip(axes.flat, pairs, strict=False):
        mine = [r for r in rows if (r.key, r.direction) == pair]
        cells = list(dict.fromkeys(r.cell for r in mine))
        width = 0.8 / (2 * len(runs))
        for j, run in enumerate(runs):
            for k, side in enumerate(("plain", "rag")):
                xs: list[float] = []
                ys: list[float] = []
                err: list[list[float]] = [[], []]
                for i, cell in enumerate(cells):
                    r = next((x for x in mine if x.run == run and x.cell == cell), None)
                    value = None if r is None else getattr(r, side)
                    if r is None or value is None:
                        continue
                    lo, hi = r.ci(side) or (value, value)
                    x = i - 0.4 + width * (2 * j + k + 0.5)
                    xs.append(x)
                    ys.append(100 * value)
                    err[0].append(max(0.0, 100 * (value - lo)))
                    err[1].append(max(0.0, 100 * (hi - value)))
                    if side == "rag" and r.ceiling is not None:
                        ax.plot([x - width / 2, x + width / 2], [100 * r.ceiling] * 2, color="black", lw=1)
                what = "plain" if side == "plain" else "with candidates"
                ax.bar(xs, ys, width=width, color=cmap(j % 10), alpha=0.35 if side == "plain" else 1.0,
                       hatch="//" if side == "plain" else None, yerr=err, capsize=2, error_kw={"lw": 0.8},
                       label=mpl_text(f"{run}: {what}"))
        ax.set_xticks(range(len(cells)), cells, fontsize=7)
        ax.set_ylim(0, 105)
        ax.set_ylabel("strict accuracy %")
        ax.set_title(mpl_text(pair_title(pair[0], pair[1], RAG)) + " (tick: ceiling)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=6, loc="upper right")
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    fig.tight_layout()
    return figure_png(fig)
