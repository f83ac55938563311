"""`termnorm report`: what fine-tuning did (memorization vs generalization), from lm_eval results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("report")(report)


def _labels(runs_paths: list[Path], labels: list[str] | None) -> list[str | None]:
    from termnorm_eval.errors import TermnormError

    if labels and len(labels) != len(runs_paths):
        raise TermnormError(f"--label given {len(labels)} time(s) for {len(runs_paths)} --tuned run(s)")
    return list(labels) if labels else [None] * len(runs_paths)


def report(
    base: Annotated[
        list[Path] | None,
        typer.Option("--base", help="Results of the base model: a results_*.json file or a folder "
                     "(every results file below it is used; for a task in several, the newest). "
                     "Repeat to give several files or folders of the same model."),
    ] = None,
    tuned: Annotated[
        list[Path] | None,
        typer.Option("--tuned", help="Results of a fine-tuned model (adapter): a file or folder, e.g. "
                     "<adapter>/eval (holding eval/train and eval/val). Repeat for several runs; "
                     "paths of the same model, adapter and task version form one run."),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="Names of the --tuned paths, in order (default: adapter folder "
                     "name); paths merged into one run must not have different labels."),
    ] = None,
    retriever: Annotated[
        list[Path] | None,
        typer.Option("--retriever", help="Results of termnorm retrieve eval (its --out folder or a "
                     "results file): shown as one more row of each task it scored, e.g. "
                     "\"retriever: bm25\". Repeat for several retrievers."),
    ] = None,
    filter_name: Annotated[
        str | None,
        typer.Option("--filter", help="lm_eval filter whose scores to report (needed only when the "
                     "results hold several)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write report.md, report.csv, report.json, popularity_bins.csv, "
                     "validity.csv, transfer.csv, answer_shown.csv, gains.png, popularity.png, "
                     "validity.png and transfer.png here."),
    ] = None,
) -> None:
    """Compare a base run with fine-tuned runs of the termnorm tasks: strict and lenient accuracy
    on the training split (memorization) and the held-out split (generalization) with 95%
    intervals, items gained and lost with McNemar's test (with --log_samples), answer validity,
    accuracy by popularity, concept transfer (labels vs synonyms, lay terms, aliases: with the
    mention tasks) and gains without the documents whose prompt shows the answer."""
    import sys

    from rich.console import Console

    from termnorm_eval.report import render
    from termnorm_eval.report.make import make_report

    # A piped stdout gets a width that fits the tables with their intervals (rich's fallback is 80).
    console = Console(width=None if sys.stdout.isatty() else 250)
    tuned = tuned or []
    runs = [(name, [path]) for path, name in zip(tuned, _labels(tuned, label), strict=True)]
    rep = make_report(base or [], runs, out, filter_name=filter_name, console=console,
                      references=retriever or [])
    if rep.written:
        # a plain string is rich markup: a folder named "[/x]" must be shown, not parsed
        console.print(render.rich_text("wrote " + ", ".join(str(p) for p in rep.written)), style="dim")
