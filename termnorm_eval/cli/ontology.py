"""`termnorm add-ontology`: benchmark splits and lm-eval tasks for any ontology (OBO, OWL or OBO
Graphs JSON), one command."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from termnorm_eval.sources.fetch import DownloadLimits, limit_default, limit_help


class AnnotationFormat(str, Enum):  # the same names as ontology.annotations.FORMATS (a test checks)
    auto = "auto"
    gaf = "gaf"
    hpoa = "hpoa"
    tsv = "tsv"
    pairs = "pairs"


_S = "Splits"
_A = "Annotations (popularity)"
_D = "Download limits (URL source)"


def _console(stderr: bool = False):  # rich imported lazily: `termnorm --help` stays fast
    from rich.console import Console

    # markup and emoji off: the output quotes the file's own text ("[/red]", ":x:") as written
    return Console(stderr=stderr, highlight=False, soft_wrap=True, markup=False, emoji=False)


def _limit(option: str) -> Any:  # name, default and help all come from fetch.DownloadLimits
    return typer.Option(help=limit_help(option), rich_help_panel=_D)


def add_ontology_command(
    source: Annotated[str, typer.Argument(
        help="Ontology file (OBO, OWL RDF/XML or OBO Graphs JSON; gzip accepted): a path, or an "
        "http(s) URL (downloaded with a progress bar).", show_default=False)],
    name: Annotated[str, typer.Option(
        "--name", help="Short lower-case name: tasks termnorm_<name>_{term2id,id2term}_{train,val}, "
        "group termnorm-<name>; the study-protocol family termnorm-study_<name>_*, group "
        "termnorm-study-<name>. Not go, hpo or gene.", show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", help="Output folder (new or empty): splits + manifest + task YAMLs. Pass it to "
        "lm_eval --include_path and to --data-dir.", show_default=False)],
    prefix: Annotated[str | None, typer.Option(
        help="Identifier prefix of the ontology's own terms (e.g. CL). Default: inferred when one "
        "prefix holds at least 2/3 of the [Term] ids.", show_default=False)] = None,
    label: Annotated[str | None, typer.Option(
        help="How prompts name the ontology ('What is the LABEL identifier ...'). Default: the prefix.",
        show_default=False)] = None,
    annotations: Annotated[Path | None, typer.Option(
        help="Annotation file for popularity: GAF, HPOA, id<TAB>count TSV or thing<TAB>term pairs. "
        "Without it the splits are a uniform random sample.", rich_help_panel=_A,
        show_default=False)] = None,
    annotation_format: Annotated[AnnotationFormat, typer.Option(
        help="auto, gaf, hpoa, tsv (id<TAB>count) or pairs (one annotation per row).",
        rich_help_panel=_A)] = AnnotationFormat.auto,
    popularity: Annotated[Path | None, typer.Option(
        help="An id<TAB>count table (e.g. from `termnorm data popularity`) whose counts rank the terms "
        "instead of --annotations (which then break ties). Ids that are no usable term are counted.",
        rich_help_panel=_A, show_default=False)] = None,
    include_unannotated: Annotated[bool, typer.Option(
        "--include-unannotated", help="Also draw terms of popularity 0, as bin 0 (labelled 'unannotated'); "
        "by default only terms with popularity >= 1 are ranked.", rich_help_panel=_A)] = False,
    bins: Annotated[int, typer.Option(
        min=1, help="Popularity bins (with --annotations or --popularity).", rich_help_panel=_S)] = 20,
    per_bin: Annotated[int, typer.Option(
        min=1, help="Train terms and val terms per bin; without annotations BINS x PER_BIN of each.",
        rich_help_panel=_S)] = 30,
    seed: Annotated[int, typer.Option(help="Sampling seed.", rich_help_panel=_S)] = 0,
    include_imported: Annotated[bool, typer.Option(
        "--include-imported", help="Keep terms of other prefixes too (by default left out and counted).",
        rich_help_panel=_S)] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an earlier add-ontology output in --out (any other content is "
        "never replaced).")] = False,
    max_download_mb: Annotated[float, _limit("--max-download-mb")] = limit_default("--max-download-mb"),
    max_unpacked_mb: Annotated[float, _limit("--max-unpacked-mb")] = limit_default("--max-unpacked-mb"),
    max_unpack_ratio: Annotated[float, _limit("--max-unpack-ratio")] = limit_default("--max-unpack-ratio"),
    download_deadline: Annotated[float, _limit("--download-deadline")] = limit_default("--download-deadline"),
    read_timeout: Annotated[float, _limit("--read-timeout")] = limit_default("--read-timeout"),
    max_redirects: Annotated[int, _limit("--max-redirects")] = int(limit_default("--max-redirects")),
) -> None:
    """Build popularity-balanced (or, without annotations, uniform) train/val splits and the
    termnorm_<name>_* lm-eval tasks for an ontology (OBO, OWL or OBO Graphs JSON), atomically,
    into one folder."""
    from rich.text import Text

    from termnorm_eval.ontology import PROBLEM_TEXT, add_ontology
    from termnorm_eval.ontology.add import check_name

    check_name(name)  # before any download or parse: a bad name fails in no time
    err = _console(stderr=True)
    kwargs: dict[str, Any] = dict(prefix=prefix, label=label, annotations=annotations,
                  annotation_format=annotation_format.value, bins=bins, per_bin=per_bin, seed=seed,
                  popularity=popularity, include_unannotated=include_unannotated,
                  include_imported=include_imported, force=force,
                  download_limits=DownloadLimits.from_options(
                      max_download_mb=max_download_mb, max_unpacked_mb=max_unpacked_mb,
                      max_unpack_ratio=max_unpack_ratio, download_deadline=download_deadline,
                      read_timeout=read_timeout, max_redirects=max_redirects))
    if source.startswith(("http://", "https://")):
        from termnorm_eval.cli.download_bar import download_bar

        with download_bar(err, "downloading ", transient=False) as hook:

            def stage(msg: str) -> None:
                err.print(Text(msg))  # above the bar (same console); Text: messages name files

            result = add_ontology(source, name, out, progress=stage, download_hook=hook, **kwargs)
    else:
        with err.status("starting") as status:
            # Text: a status string would be read as markup, and stage messages name the user's files
            result = add_ontology(source, name, out, progress=lambda m: status.update(Text(m)), **kwargs)

    console = _console()
    c = result.counts
    console.print(f"ontology  {source}  (parser: {result.parser})")
    pc = result.prefix_counts
    total = sum(pc.values())
    mine = pc.get(result.prefix, 0)
    how = "inferred" if result.prefix_inferred else "given"
    others = ", ".join(f"{p} {n}" for p, n in pc.items() if p != result.prefix)
    console.print(f"prefix    {result.prefix} ({how}): {mine} of {total} [Term] ids"
                  + (f"; other prefixes: {others}" if others else ""))
    console.print(f"terms     {c['terms_kept']} kept, {c['candidates']} usable after the exclusions below")
    if result.problems:
        console.print(f"problems  (counted; also in {result.manifest.name})")
        order = [*PROBLEM_TEXT, *sorted(set(result.problems) - set(PROBLEM_TEXT))]
        for key in (k for k in order if k in result.problems):
            console.print(f"  {result.problems[key]:>7}  {PROBLEM_TEXT.get(key, key)}")
    else:
        console.print("problems  none")
    for w in result.warnings:
        console.print(f"warning   {w}")
    console.print(f"mentions  {result.mention_note}")
    if result.uniform:
        console.print(f"popularity NONE: no --annotations given, so {c['train']} train + {c['val']} val "
                      "terms were drawn uniformly at random (one bin, popularity 0); the popularity strata "
                      "(exact_match_low/mid/high) say nothing for these tasks.")
    else:
        if annotations is not None:
            console.print(f"annotations {annotations} ({result.annotation_format} format, "
                          f"{c['annotation_rows']} rows)")
        if popularity is not None:
            unknown = result.problems.get("popularity_ids_unknown", 0)
            console.print(f"popularity table {popularity}: {unknown} ids that are no usable term (ignored)")
        console.print(f"popularity {result.popularity}")
        pool = result.pool
        console.print(f"pool      {c['annotated_candidates']} of {c['candidates']} usable terms have "
                      f"popularity >= 1; the {pool['unannotated_candidates']} others are "
                      f"{pool['unannotated']}"
                      + ("" if include_unannotated else " (--include-unannotated adds them as bin 0)"))
        console.print(f"          {result.bins} bins x ({c['train'] // result.bins} train + "
                      f"{c['val'] // result.bins} val)"
                      + (f"; {pool['merged']} fewer than asked for: the popularity values fill no more"
                         if pool.get("merged") else ""))
        if result.unannotated_bins:
            console.print(f"note      {result.unannotated_bins} of {result.bins} bins hold only unannotated "
                          "terms (popularity 0)")
    console.print(f"wrote     {out}/")
    console.print(f"          manifest.json, {result.name}/train.jsonl ({c['train']}), "
                  f"{result.name}/val.jsonl ({c['val']})")
    console.print(f"          tasks {', '.join(result.tasks)}; group {result.group}")
    console.print(f"          study-protocol tasks {', '.join(result.study_tasks)}; "
                  f"group {result.study_group}")
    console.print(f"          {result.name}/index.tsv.gz: every id and name of the file (answer validity)")
    console.print("next")
    console.print(f"  {result.lm_eval_command('MODEL', out)}")
    console.print(f"  {result.finetune_command('MODEL', out)}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(name="add-ontology")(add_ontology_command)
