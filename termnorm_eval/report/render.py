"""The report as terminal tables, Markdown (papers, PRs), CSV, JSON and PNG figures.

Accuracies are shown in percent and gains in percentage points (the study's unit); CSV and JSON
keep fractions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from termnorm_eval.analysis.files import csv_text, figure_png, json_text, pyplot
from termnorm_eval.report.compare import Report, Row, summary
from termnorm_eval.report.results import Run
from termnorm_eval.terminologies import BUILTIN
from termnorm_eval.text import clean_text

NA = "n/a"
SPLIT_TITLE = {"train": "train (memorization)", "val": "held-out (generalization)"}
CSV_COLUMNS = (
    "terminology", "direction", "split", "run", "role", "task", "n", "strict", "lenient",
    "delta_strict", "delta_lenient", "gained", "lost", "kept_correct", "kept_wrong", "rho", "rho_p", "notes",
)
ROW_HEAD = ("split", "run", "n", "strict %", "lenient %", "Δ strict", "Δ lenient",
            "gained", "lost", "kept right", "kept wrong", "ρ pop.")


def md_cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell or list item: a ``|`` or a line break from a label
    or a path would split the row. Backslashes are doubled first so ``\\|`` cannot undo the escape."""
    text = clean_text(text).replace("\\", "\\\\").replace("|", "\\|")
    return "<br>".join(text.splitlines()) if text else text


def rich_text(text: str) -> str:
    """``text`` for a rich string: ``[/red]`` in a label is shown, not parsed as markup (which raises)."""
    return escape(clean_text(text))


def mpl_text(text: str) -> str:
    """``text`` for a matplotlib label: ``$`` would start mathtext, which raises on bad TeX."""
    return clean_text(text).replace("$", r"\$")


def pair_title(key: str, direction: str) -> str:
    term = BUILTIN.get(key)
    label = key.upper() if term is None else ("gene" if term.kind == "gene" else term.label)
    return f"{label} {direction}"


def _pct(x: float | None) -> str:
    return NA if x is None else f"{100 * x:.1f}"


def _pp(x: float | None) -> str:
    return NA if x is None else f"{100 * x:+.1f}"


def _int(x: int | None) -> str:
    return "" if x is None else str(x)


def _marks(notes: Sequence[int]) -> str:
    return "".join(f" [{n}]" for n in notes)


def _cells(row: Row) -> list[str]:
    is_base = row.role == "base"
    cells = [
        SPLIT_TITLE.get(row.split, row.split), row.run, _int(row.n), _pct(row.strict), _pct(row.lenient),
        "" if is_base else _pp(row.delta_strict), "" if is_base else _pp(row.delta_lenient),
        _int(row.gained), _int(row.lost), _int(row.kept_correct), _int(row.kept_wrong),
        f"{row.rho:+.2f}" if row.rho is not None else ("const." if row.has_samples else ""),
    ]
    if row.notes:  # the mark goes where the gap shows: the delta when there is one, else the accuracy
        at = 5 if not is_base and row.delta_strict is None and row.strict is not None else 3
        cells[at] += _marks(row.notes)
    return cells


def _summary_cells(rec: dict[str, Any]) -> list[str]:
    out = [pair_title(str(rec["terminology"]), str(rec["direction"])), str(rec["run"])]
    for role in ("memorization", "generalization"):
        strict, lenient = rec[f"{role}_strict"], rec[f"{role}_lenient"]
        cell = f"{_pp(strict)} ({_pp(lenient)})"
        if strict is None and rec[f"{role}_notes"]:
            cell += _marks(rec[f"{role}_notes"])
        out.append(cell)
    return out


SUMMARY_HEAD = ("task", "run", "memorization gain: train Δ, pp (lenient)",
                "generalization gain: held-out Δ, pp (lenient)")


def _runs_lines(report: Report) -> list[str]:
    def one(run: Run, role: str) -> str:
        extra = f", newest of {run.picked_from} results files" if run.picked_from > 1 else ""
        adapter = f", adapter {run.adapter}" if run.adapter else ""
        name = role if run.label == role else f"{role} {run.label!r}"
        return clean_text(f"{name}: {run.path} (model {run.model}{adapter}; filter {run.filter}{extra})")

    return [one(report.base, "base"), *(one(r, "tuned") for r in report.tuned)]


def terminal(report: Report) -> Group:
    # Text() is literal; strings given to Table (cells, titles) are rich markup and are escaped.
    parts: list[Any] = [Text("\n".join(_runs_lines(report)), style="dim")]
    for w in report.warnings:
        parts.append(Text(clean_text(f"warning: {w}"), style="yellow"))
    s = Table(title="Gains from fine-tuning (percentage points; lenient in parentheses)",
              title_justify="left")
    for h in SUMMARY_HEAD:
        s.add_column(h, no_wrap=True, justify="left" if h in ("task", "run") else "right")
    for rec in summary(report):
        s.add_row(*map(rich_text, _summary_cells(rec)))
    parts.append(s)
    for key, direction in report.pairs():
        t = Table(title=rich_text(pair_title(key, direction)), title_justify="left")
        for h in ROW_HEAD:
            t.add_column(h, no_wrap=True, justify="left" if h in ("split", "run") else "right")
        prev = None
        for row in (r for r in report.rows if (r.key, r.direction) == (key, direction)):
            cells = _cells(row)
            if prev is not None and row.split != prev:
                t.add_section()
            elif prev is not None:
                cells[0] = ""  # the split is named once per section
            prev = row.split
            t.add_row(*map(rich_text, cells))
        parts.append(t)
    if report.footnotes.texts:
        notes = "\n".join(f"[{i}] {txt}" for i, txt in enumerate(report.footnotes.texts, 1))
        parts.append(Text(clean_text(notes)))
    return Group(*parts)


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    right = [h not in ("task", "run", "split") for h in head]
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
              "Δ: fine-tuned minus base, in percentage points; on the training split it is the "
              "memorization gain, on the held-out split the generalization gain. gained/lost/kept: "
              "documents by strict correctness before -> after (needs `--log_samples`). ρ pop.: "
              "Spearman rank correlation of popularity with strict correctness (const.: undefined, "
              "every document scored the same).", ""]
    lines += ["## Summary", ""]
    lines += _md_table(SUMMARY_HEAD, [_summary_cells(r) for r in summary(report)])
    for key, direction in report.pairs():
        lines += ["", f"## {md_cell(pair_title(key, direction))}", ""]
        rows = [_cells(r) for r in report.rows if (r.key, r.direction) == (key, direction)]
        lines += _md_table(ROW_HEAD, rows)
    for fig in figures:
        lines += ["", f"![{fig}]({fig})"]
    if report.footnotes.texts:
        lines += ["", "## Notes", ""]
        lines += [f"{i}. {md_cell(txt)}" for i, txt in enumerate(report.footnotes.texts, 1)]
    return "\n".join(lines) + "\n"


def _row_dict(r: Row) -> dict[str, Any]:
    d = asdict(r)
    d["terminology"] = d.pop("key")
    d["notes"] = " ".join(f"[{n}]" for n in r.notes)
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in d.items()}


def csv_out(report: Report) -> str:
    return csv_text([_row_dict(r) for r in report.rows], CSV_COLUMNS)


def bins_csv(report: Report) -> str:
    rows = [
        {"terminology": k, "direction": d, "split": s, "run": run, "bin": b, "n": n, "strict": round(acc, 6)}
        for (k, d, s, run), bins in report.by_bin.items() for b, (n, acc) in bins.items()
    ]
    return csv_text(rows, ("terminology", "direction", "split", "run", "bin", "n", "strict"))


def json_out(report: Report) -> str:
    def run(r: Run) -> dict[str, Any]:
        return {"label": r.label, "path": clean_text(str(r.path)), "model_args": r.model_args,
                "filter": r.filter}

    return json_text({
        "base": run(report.base), "tuned": [run(r) for r in report.tuned],
        "warnings": report.warnings, "notes": report.footnotes.texts,
        "summary": summary(report), "rows": [_row_dict(r) for r in report.rows],
        "by_bin": [{"terminology": k, "direction": d, "split": s, "run": r,
                    "bins": {str(b): {"n": n, "strict": acc} for b, (n, acc) in v.items()}}
                   for (k, d, s, r), v in report.by_bin.items()],
    })


def gains_figure(report: Report) -> bytes:
    """Memorization gain vs generalization gain per task and fine-tuned run (strict, pp)."""
    plt = pyplot()
    recs = summary(report)
    labels = list(dict.fromkeys(pair_title(str(r["terminology"]), str(r["direction"])) for r in recs))
    runs = [r.label for r in report.tuned]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) * max(1, len(runs)) + 2), 4.2))
    width = 0.8 / (2 * max(1, len(runs)))
    cmap = plt.get_cmap("tab10")
    for j, run in enumerate(runs):
        for k, role in enumerate(("memorization", "generalization")):
            xs, ys = [], []
            for i, lab in enumerate(labels):
                rec = next(r for r in recs if r["run"] == run and
                           pair_title(str(r["terminology"]), str(r["direction"])) == lab)
                val = rec[f"{role}_strict"]
                x = i - 0.4 + width * (2 * j + k + 0.5)
                if val is None:
                    ax.text(x, 0, NA, ha="center", va="bottom", fontsize=6, rotation=90, color="grey")
                    continue
                xs.append(x)
                ys.append(100 * float(val))  # type: ignore[arg-type]
            what = "train Δ (memorization)" if k == 0 else "held-out Δ (generalization)"
            bars = ax.bar(xs, ys, width=width, color=cmap(2 * j + k), label=mpl_text(f"{run}: {what}"))
            ax.bar_label(bars, fmt="%+.1f", fontsize=7, padding=2)  # a zero gain stays visible
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel("strict accuracy gain (percentage points)")
    ax.set_title("What fine-tuning did: memorization vs generalization gain", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)


def popularity_figure(report: Report) -> bytes:
    """Strict accuracy by popularity: per bin from logged samples, else by the low/mid/high thirds
    the tasks report (``exact_match_low`` ...)."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    pairs = report.pairs()
    ncols = min(3, len(pairs))
    nrows = -(-len(pairs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    runs = [report.base, *report.tuned]
    cmap = plt.get_cmap("tab10")
    for ax, (key, direction) in zip(axes.flat, pairs, strict=False):
        for j, run in enumerate(runs):
            for split in ("train", "val"):
                style = "-" if split == "train" else "--"
                marker = "o" if split == "train" else "s"
                label = mpl_text(f"{run.label} {split}")
                bins = report.by_bin.get((key, direction, split, run.label))
                if bins:
                    xs = list(bins)
                    ax.plot(xs, [100 * bins[b][1] for b in xs], style, marker=marker, ms=4,
                            mfc="white" if split == "val" else None, color=cmap(j), label=label)
                    ax.set_xlabel("popularity bin (0 = rarest)")
                    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                    continue
                tr = run.tasks.get(f"termnorm_{key}_{direction}_{split}")
                if tr is None:
                    continue
                pts = [(i, tr.metrics[f"exact_match_{s}"]) for i, s in enumerate(("low", "mid", "high"))
                       if f"exact_match_{s}" in tr.metrics]
                if pts:
                    ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], style, marker=marker,
                            mfc="white" if split == "val" else None, color=cmap(j), label=label)
                    ax.set_xticks([0, 1, 2], ["low", "mid", "high"])
                    ax.set_xlabel("popularity third")
        ax.set_title(pair_title(key, direction), fontsize=9)
        ax.set_ylabel("strict accuracy %")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    fig.suptitle("Accuracy by popularity (solid, filled: train; dashed, open: held-out)", fontsize=10)
    fig.tight_layout()
    return figure_png(fig)
