"""A whole report from results files: the one entry point of ``termnorm report`` and of other
commands that make a report (``termnorm study``).

Runs are told apart by model, adapter and task version, never by folder layout: the files under
one path (or one ``tuned`` entry) must be one run, and entries that turn out to be the same run
(e.g. ``<adapter>/eval/train`` and ``<adapter>/eval/val`` given apart) are merged into one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from termnorm_eval.report import compare, render
from termnorm_eval.report.results import (
    RETRIEVER_OPTION,
    ReportInputError,
    ResultsFile,
    Run,
    describe_model,
    merge,
    read_files,
    retriever_label,
    same_run,
)

FIGURES = ("gains.png", "popularity.png", "validity.png", "transfer.png", "rag.png")
FILES = ("report.md", "report.csv", "report.json", "popularity_bins.csv", "validity.csv", "transfer.csv",
         "answer_shown.csv", "rag.csv", *FIGURES)


def _default_label(run: Run) -> str:
    return Path(run.adapter).name if run.adapter else Path(run.model).name or "tuned"


def load_runs(base_paths: Sequence[Path], tuned: Sequence[tuple[str | None, Sequence[Path]]],
              filter_name: str | None = None) -> tuple[Run, list[Run]]:
    """The base run and the fine-tuned runs, in the order first given.

    ``tuned`` holds (label or None, paths) per entry; None labels the run by its adapter folder.
    """
    if not base_paths:
        raise ReportInputError("--base is required: the results of the model before fine-tuning")
    if not tuned:
        raise ReportInputError("--tuned is required (at least one): the results of a fine-tuned model")
    base_files = read_files(base_paths, "--base", filter_name)
    base_seen = {f.path.resolve(): f.path for f in base_files}
    groups: list[tuple[list[str | None], list[ResultsFile]]] = []
    owner: dict[Path, Path] = {}  # file -> the --tuned path it came from
    for label, paths in tuned:
        files = read_files(paths, "--tuned", filter_name)
        for f in files:
            real = f.path.resolve()
            if real in base_seen:
                raise ReportInputError(f"--tuned {f.path}: is the same results file as --base "
                                       f"({base_seen[real]})")
            if real in owner:
                raise ReportInputError(f"--tuned {f.path}: given twice")
            owner[real] = f.path
        group = next((g for g in groups if all(same_run(a, b) for a in g[1] for b in files)), None)
        if group is None:
            groups.append(([label], list(files)))
            continue
        named = {x for x in group[0] if x is not None}
        if label is not None and named and label not in named:
            raise ReportInputError(f"--label {next(iter(named))!r} and --label {label!r} name one run "
                                   f"({describe_model(files[0].identity)}): give it one label")
        group[0].append(label)
        group[1].extend(files)

    base = merge(base_files, "base")
    runs = []
    for labels, files in groups:
        label = next((x for x in labels if x is not None), None)
        run = merge(files, label or "tuned")
        if label is None:
            run.label = _default_label(run)
        runs.append(run)
    seen: dict[str, int] = {"base": 1}
    for run in runs:  # labels must be unique: they key the table rows
        if run.label in seen:
            seen[run.label] += 1
            run.label = f"{run.label}#{seen[run.label]}"
        else:
            seen[run.label] = 1
    return base, runs


def linked_figures(rep: compare.Report) -> list[str]:
    """The FIGURES report.md links: each is written, but one with nothing to draw only says so."""
    empty = {"gains.png": not compare.summary_pairs(rep), "validity.png": not rep.validity,
             "transfer.png": rep.transfer is None or not rep.transfer.cells,
             "rag.png": not rep.rag_rows}
    return [f for f in FIGURES if not empty.get(f, False)]


def report_files(rep: compare.Report) -> dict[str, bytes | str]:
    """Every output file of a report, rendered in memory: {name: content}."""
    return {
        "report.md": render.markdown(rep, linked_figures(rep)),
        "report.csv": render.csv_out(rep),
        "report.json": render.json_out(rep),
        "popularity_bins.csv": render.bins_csv(rep),
        "validity.csv": render.validity_csv(rep),
        "transfer.csv": render.transfer_csv(rep),
        "answer_shown.csv": render.shown_csv(rep),
        "rag.csv": render.rag_csv(rep),
        "gains.png": render.gains_figure(rep),
        "popularity.png": render.popularity_figure(rep),
        "validity.png": render.validity_figure(rep),
        "transfer.png": render.transfer_figure(rep),
        "rag.png": render.rag_figure(rep),
    }


def load_references(paths: Sequence[Path], filter_name: str | None = None) -> list[Run]:
    """Each ``--retriever`` path as one run of a retriever, named by it ("retriever: bm25")."""
    refs: list[Run] = []
    seen: dict[Path, Path] = {}
    for path in paths:
        files = read_files([path], RETRIEVER_OPTION, filter_name)
        for f in files:
            if f.path.resolve() in seen:
                raise ReportInputError(f"{RETRIEVER_OPTION} {f.path}: given twice")
            seen[f.path.resolve()] = f.path
        run = merge(files, retriever_label(files[-1].model_args))
        if any(r.label == run.label for r in refs):
            run.label = f"{run.label}#{sum(r.label.startswith(run.label) for r in refs) + 1}"
        refs.append(run)
    return refs


def build_report(base_paths: Sequence[Path], tuned: Sequence[tuple[str | None, Sequence[Path]]],
                 filter_name: str | None = None, references: Sequence[Path] = ()) -> compare.Report:
    """Load and compare, writing nothing (render with ``report_files`` or ``render.*``)."""
    base, runs = load_runs(base_paths, tuned, filter_name)
    return compare.build(base, runs, references=load_references(references, filter_name))


def make_report(base_paths: Sequence[Path], tuned: Sequence[tuple[str | None, Sequence[Path]]],
                out_dir: Path | None, *, filter_name: str | None = None, console: Any = None,
                references: Sequence[Path] = ()) -> compare.Report:
    """Load the runs, compare them, print the tables to ``console`` (a rich Console; None: print
    nothing) and, when ``out_dir`` is given, write FILES into it as one atomic replacement.

    Returns the report; ``report.written`` lists the files written (empty without ``out_dir``).
    Bad input raises ReportInputError / TermnormError with a one-line message.
    """
    from termnorm_eval.analysis.files import write_all

    rep = build_report(base_paths, tuned, filter_name, references)
    if console is not None:
        console.print(render.terminal(rep))
    if out_dir is not None:
        rep.written = write_all(out_dir, report_files(rep))
    return rep
