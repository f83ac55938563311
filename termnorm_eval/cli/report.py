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
        Path | None,
        typer.Option("--base", help="Results of the base model: a results_*.json file or an lm_eval "
                     "--output_path folder (the newest results file inside is used)."),
    ] = None,
    tuned: Annotated[
        list[Path] | None,
        typer.Option("--tuned", help="Results of a fine-tuned model (adapter); repeat for several."),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="Names of the --tuned runs, in order (default: adapter folder name)."),
    ] = None,
    filter_name: Annotated[
        str | None,
        typer.Option("--filter", help="lm_eval filter whose scores to report (needed only when the "
                     "results hold several)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write report.md, report.csv, report.json, popularity_bins.csv, "
                     "gains.png and popularity.png here."),
    ] = None,
) -> None:
    """Compare a base run with fine-tuned runs of the termnorm_* tasks: strict and lenient accuracy
    on the training split (memorization) and the held-out split (generalization), items gained and
    lost (with --log_samples), and accuracy by popularity."""
    from termnorm_eval.analysis.files import stdout_console, write_all
    from termnorm_eval.errors import TermnormError
    from termnorm_eval.report import compare, render
    from termnorm_eval.report.results import load_run

    if base is None:
        raise TermnormError("--base is required: the results of the model before fine-tuning")
    if not tuned:
        raise TermnormError("--tuned is required (at least one): the results of a fine-tuned model")
    base_run = load_run(base, "base", "--base", filter_name)
    runs = []
    for path, name in zip(tuned, _labels(tuned, label), strict=True):
        run = load_run(path, name or "tuned", "--tuned", filter_name)
        if run.path.resolve() == base_run.path.resolve():
            raise TermnormError(f"--tuned {path}: is the same results file as --base ({run.path})")
        if name is None:
            run.label = Path(run.adapter).name if run.adapter else Path(run.model).name or "tuned"
        runs.append(run)
    seen: dict[str, int] = {"base": 1}
    for run in runs:  # labels must be unique: they key the table rows
        if run.label in seen:
            seen[run.label] += 1
            run.label = f"{run.label}#{seen[run.label]}"
        else:
            seen[run.label] = 1
    for i, run in enumerate(runs):
        for other in runs[:i]:
            if run.path.resolve() == other.path.resolve():
                raise TermnormError(f"--tuned {run.path}: given twice")

    rep = compare.build(base_run, runs)
    stdout_console().print(render.terminal(rep))
    if out is not None:
        figures = ["gains.png", "popularity.png"]
        paths = write_all(out, {
            "report.md": render.markdown(rep, figures),
            "report.csv": render.csv_out(rep),
            "report.json": render.json_out(rep),
            "popularity_bins.csv": render.bins_csv(rep),
            "gains.png": render.gains_figure(rep),
            "popularity.png": render.popularity_figure(rep),
        })
        # a plain string is rich markup: a folder named "[/x]" must be shown, not parsed
        stdout_console().print(render.rich_text("wrote " + ", ".join(str(p) for p in paths)), style="dim")
