"""The study's report: ``report.md`` at the top of the study folder, its files in ``report/``.

The base-vs-adapter comparison is the existing report code (``termnorm_eval.report``, called the
way ``termnorm report`` calls it). Added here: a table of every run's strict accuracy per task,
the memorization curve (accuracy vs epochs on the training and held-out splits of each adapter's
own tasks, from the base model at epoch 0 through the sweep's checkpoints to the final adapter)
as a PNG and a table, and the lexicalization table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from termnorm_eval import atomic
from termnorm_eval.analysis.files import csv_text, figure_png, pyplot
from termnorm_eval.study.names import RESULTS, RETRIEVE, task_names

if TYPE_CHECKING:
    from termnorm_eval.report.results import Run
    from termnorm_eval.report.trained import Trained
    from termnorm_eval.study.steps import Context

STRICT = "exact_match"
LENIENT = "lenient_match"


def _load(ctx: Context, name: str, label: str) -> Run:
    from termnorm_eval.report.results import load_run

    return load_run(ctx.out / name / RESULTS, label, name)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def split_means(run: Run, tasks: list[str], metric: str = STRICT) -> dict[str, float | None]:
    """Mean ``metric`` over ``tasks`` per split (train, val): a group score as the harness makes it."""
    out: dict[str, float | None] = {}
    for split in ("train", "val"):
        vals = [run.tasks[t].metrics[metric] for t in tasks
                if t in run.tasks and run.tasks[t].split == split and metric in run.tasks[t].metrics]
        out[split] = _mean(vals)
    return out


def curve_points(ctx: Context, base: Run, runs: dict[str, Run]) -> list[dict[str, Any]]:
    """One row per (terminology, epoch): strict and lenient accuracy on train and val."""
    rows = []
    for key, dirs in ctx.selected.items():
        tasks = task_names(key, dirs)
        points: list[tuple[int, Run]] = [(0, base)]
        points += [(k, runs[f"sweep-{key}-e{k}"]) for k in ctx.cfg.sweep if f"sweep-{key}-e{k}" in runs]
        if f"eval-{key}" in runs:
            points.append((ctx.cfg.epochs[-1], runs[f"eval-{key}"]))
        for epoch, run in points:
            strict, lenient = split_means(run, tasks), split_means(run, tasks, LENIENT)
            rows.append({"terminology": key, "directions": ",".join(dirs), "epoch": epoch,
                         "train_strict": strict["train"], "val_strict": strict["val"],
                         "train_lenient": lenient["train"], "val_lenient": lenient["val"]})
    return rows


def curve_figure(rows: list[dict[str, Any]]) -> bytes:
    plt = pyplot()
    keys = list(dict.fromkeys(r["terminology"] for r in rows))
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        mine = [r for r in rows if r["terminology"] == key]
        for split, style in (("train", "o-"), ("val", "s--")):
            pts = [(r["epoch"], r[f"{split}_strict"]) for r in mine if r[f"{split}_strict"] is not None]
            if pts:
                label = "trained pairs (memorization)" if split == "train" else "held-out (generalization)"
                ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], style, label=label)
        ax.set_title(f"{key} ({mine[0]['directions']})" if mine else key)
        ax.set_xlabel("epochs (0 = base model)")
        ax.set_ylabel("strict exact match, %")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return figure_png(fig)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _scores_table(runs: dict[str, Run]) -> list[str]:
    from termnorm_eval.report.render import md_cell

    tasks = sorted({t for r in runs.values() for t in r.tasks})
    names = list(runs)
    lines = ["| task | " + " | ".join(map(md_cell, names)) + " |", "|---|" + "---:|" * len(names)]
    for t in tasks:
        cells = [_pct(runs[n].tasks[t].metrics.get(STRICT)) if t in runs[n].tasks else "" for n in names]
        lines.append(f"| {md_cell(t)} | " + " | ".join(cells) + " |")
    return lines


def _lexicalization_lines(folder: Path) -> list[str]:
    from termnorm_eval.report.render import md_cell

    try:
        data = json.loads((folder / "alignment.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    rows = data.get("rows", []) if isinstance(data, dict) else []
    lines = ["| embedder | mapping | split | n | true cos | random cos | gap | top-1 |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if not isinstance(r, dict):
            continue
        nums = [f"{v:.3f}" if isinstance(v, (int, float)) else "" for v in
                (r.get(k) for k in ("true_cos", "random_cos", "gap", "top1"))]
        text = [md_cell(str(r.get(k, ""))) for k in ("embedder", "title", "split", "n")]
        lines.append("| " + " | ".join(text + nums) + " |")
    return lines


def trained_by_key(ctx: Context) -> dict[str, Trained]:
    """Per terminology with a training step: the records its adapter trained, per label direction, as
    finetune chooses them with the step's recorded settings (what the adapter was trained with: other
    settings retrain it)."""
    from termnorm_eval.report.trained import of_pairs
    from termnorm_eval.study.training import training_set

    out = {}
    for key in ctx.selected:
        step = ctx.steps.get(f"train-{key}")
        if step is not None:
            pairs = training_set(key, step.inputs["finetune"]).pairs
            out[key] = of_pairs(key, pairs, f"{step.name}/step.json")
    return out


def _trained_line(ctx: Context, trained: dict[str, Trained]) -> str:
    """How many concepts each adapter trained: with limit_pairs N, the records of the first N documents
    of each _train task of its directions (label and mention tasks), so more than N."""
    if not trained:
        return "- no training step"
    each = "; ".join(f"{key} {t.records} ({', '.join(f'{d} {len(v)}' for d, v in (t.ids or {}).items())})"
                     for key, t in trained.items())
    how = (f"limit_pairs {ctx.cfg.limit_pairs}: the records of the first {ctx.cfg.limit_pairs} documents of "
           "each _train task, mention tasks included" if ctx.cfg.limit_pairs else "every training record")
    return f"- trained concepts per adapter ({how}; pairs per direction): {each}"


def _header_lines(ctx: Context, readers: list[str], trained: dict[str, Trained]) -> list[str]:
    """The top of report.md: the model and the study's settings (model names and paths are the
    user's: escaped, as every such string of report.md)."""
    from termnorm_eval.report.render import md_cell

    cfg = ctx.cfg
    title = Path(ctx.model_path).name if cfg.model_type == "hf" else cfg.model
    terms = ", ".join(f"{k} ({', '.join(d)})" for k, d in ctx.selected.items())
    return [f"# Study: {md_cell(str(title))}", "",
            f"- model: {md_cell(str(ctx.model_path))} ({md_cell(str(cfg.model_type))})",
            f"- terminologies: {md_cell(terms)}",
            f"- epochs: {', '.join(map(str, cfg.epochs))}"
            + (" (one training run; the earlier epochs are its checkpoints)" if cfg.sweep else ""),
            md_cell(_trained_line(ctx, trained)),
            f"- documents per task: {cfg.limit or 'all'}",
            f"- steps: {md_cell(', '.join(readers))} (records: `<step>/step.json`)", ""]


def write(ctx: Context, stage: Path, readers: list[str]) -> dict[str, Any]:
    """Fill ``stage`` (the future ``report/``) and write ``report.md`` at the top of the study."""
    from termnorm_eval.report import compare, make, render

    cfg = ctx.cfg
    evals = [n for n in readers if ctx.steps[n].kind in ("base", "eval", "sweep")]
    runs = {n: _load(ctx, n, "base" if n == "base" else n) for n in evals}
    base = runs["base"]
    files: dict[str, bytes | str] = {}
    trained = trained_by_key(ctx)
    md = _header_lines(ctx, readers, trained)
    finals = [n for n in evals if ctx.steps[n].kind == "eval"]
    # the retriever's own results: reference rows beside the runs, and its accuracy in the RAG arm
    refs = make.load_references([ctx.out / RETRIEVE / RESULTS]) if RETRIEVE in readers else []
    if finals:
        # an eval step's adapter is its training step's: the transfer cells' trained concepts
        of = {n: str(ctx.steps[n].inputs.get("adapter_of") or "").removeprefix("train-") for n in finals}
        rep = compare.build(base, [runs[n] for n in finals],
                            {n: trained[k] for n, k in of.items() if k in trained}, references=refs)
        # the same files as `termnorm report` (intervals, validity shares and bars included)
        figures = make.linked_figures(rep)
        files |= make.report_files(rep)
        md += ["## Memorization vs generalization", "",
               "The comparison of `termnorm report` (full files in [report/](report/report.md)):", ""]
        body = render.markdown(rep, [f"report/{f}" for f in figures]).splitlines()
        md += [("#" + line if line.startswith("#") else line) for line in body[1:]]  # one level down
    else:  # no adapter: the retrieval arm of the base model alone (base vs base + RAG)
        rep = compare.build(base, [], references=refs)
        arm = render.rag_markdown(rep)
        if arm:
            files |= {"rag.csv": render.rag_csv(rep), "rag.png": render.rag_figure(rep)}
            md += [("#" + line if line.startswith("#") else line) for line in arm]
            md += ["", "![retrieval arm](report/rag.png)"]
    rows = curve_points(ctx, base, runs) if cfg.train else []
    if rows and cfg.sweep:
        files["memorization.png"] = curve_figure(rows)
        files["memorization.csv"] = csv_text(rows, list(rows[0]))
        md += ["", "## Accuracy vs epochs (memorization curve)", "",
               "Strict exact match (%) of each adapter on its own tasks, mean over its directions; "
               "epoch 0 is the base model. The checkpoints come from one training run of "
               f"{cfg.epochs[-1]} epochs (its learning-rate schedule spans all of them).", "",
               "| terminology | epoch | train (trained pairs) | val (held-out) | train lenient "
               "| val lenient |",
               "|---|---:|---:|---:|---:|---:|"]
        md += [f"| {r['terminology']} | {r['epoch']} | {_pct(r['train_strict'])} | {_pct(r['val_strict'])} "
               f"| {_pct(r['train_lenient'])} | {_pct(r['val_lenient'])} |" for r in rows]
        md += ["", "![memorization curve](report/memorization.png)"]
    md += ["", "## Every run, every task (strict exact match, %)", "", *_scores_table(runs)]
    if "lexicalization" in readers:
        lex = _lexicalization_lines(ctx.out / "lexicalization")
        if lex:
            md += ["", "## Lexicalization (the base LM's own hidden states)", "",
                   "Mean cosine of true term<->identifier pairs vs random re-pairings; a gap near 0 "
                   "means the identifier is not lexicalized. Files: "
                   "[lexicalization/](lexicalization/alignment.csv).",
                   "", *lex]
    text = "\n".join(md) + "\n"
    atomic.fill_folder(stage, files)
    # report.md at the top is written by the pipeline right after report/ is in place.
    return {"report_md": text, "files": sorted(files)}
