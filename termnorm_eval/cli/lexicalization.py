"""`termnorm lexicalization`: how lexicalized each mapping is (true-pair vs random-pair similarity).

`termnorm alignment` is its old name, kept as a hidden alias so that existing scripts still run.
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

# Result file names: kept from when the command was `termnorm alignment`, so scripts reading them
# keep working.
OUT_FILES = ("alignment.csv", "alignment.json", "alignment.png")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("lexicalization")(lexicalization)
    app.command("alignment", hidden=True)(_deprecated_alignment)


def lexicalization(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Split folder (default: the shipped splits).")
    ] = None,
    terminology: Annotated[
        list[str] | None,
        typer.Option("--terminology", "-t", help="Terminology key(s) to analyse (default: all)."),
    ] = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", "-s", help="Split(s): train, val (default: both).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="sentence-transformers model id or folder (default: TERMNORM_EMBEDDING_MODEL, else "
            "the offline all-MiniLM-L6-v2: the model of the alignment metric). With --lm it is used "
            "only when given explicitly.",
        ),
    ] = None,
    lm: Annotated[
        str | None,
        typer.Option("--lm", help="Causal LM (folder, hub id, .gguf file, or smollm2 for the default "
                     "model): embed with the mean of its "
                     "last hidden states instead of (or with --model, besides) the sentence model."),
    ] = None,
    adapter: Annotated[
        Path | None, typer.Option("--adapter", help="PEFT adapter folder applied to --lm.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Texts per forward pass.")] = 64,
    limit: Annotated[
        int | None, typer.Option("--limit", min=2, help="At most this many pairs per split (seeded sample).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random re-pairing and of --limit.")] = 0,
    center: Annotated[
        bool,
        typer.Option("--center", help="Also report every measure on mean-centred vectors (rows named "
                     "'<embedder> (centered)'): a causal LM's hidden states share one dominant direction "
                     "that makes every pair look alike."),
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="torch device (default: cuda if available, else cpu).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write " + ", ".join(OUT_FILES) + " here."),
    ] = None,
) -> None:
    """Embed both sides of every term<->ID / name<->symbol pair and compare true pairs with random
    re-pairings: a large gap and good retrieval mean the identifier is lexicalized (it carries its
    meaning), as gene symbols are and GO/HPO identifiers are not."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from termnorm_eval.analysis import lexicalization as lex
    from termnorm_eval.analysis import render
    from termnorm_eval.analysis.embedders import CausalLMEmbedder, Embedder, SentenceEmbedder
    from termnorm_eval.analysis.files import stdout_console, write_all
    from termnorm_eval.errors import TermnormError
    from termnorm_eval.splits.balance import check_seed
    from termnorm_eval.terminologies import SPLITS

    check_seed(seed)  # numpy's range; refused before any model is loaded
    splits = list(dict.fromkeys(split or SPLITS))
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise TermnormError(f"--split {', '.join(bad)}: unknown (known: {', '.join(SPLITS)})")
    if adapter is not None and lm is None:
        raise TermnormError("--adapter needs --lm (the base model the adapter was trained on)")
    if data_dir is not None and not data_dir.is_dir():
        raise TermnormError(f"--data-dir {data_dir}: not a folder")

    console = Console(stderr=True, emoji=False)  # emoji off: ":x:" in a label stays ":x:"
    jobs = lex.plan(data_dir, terminology, splits, limit=limit, seed=seed)
    embedders: list[Embedder] = []
    if lm is None or model is not None:
        embedders.append(SentenceEmbedder(model, device=device))
    if lm is not None:
        embedders.append(CausalLMEmbedder(lm, str(adapter) if adapter else None, device=device))

    started = time.perf_counter()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:

        def progress_factory(name: str, total: int):
            task = bar.add_task(f"encoding with {escape(name)}", total=total)  # a model path: no markup
            return lambda k: bar.advance(task, k)

        rows, notes = lex.run(jobs, embedders, batch_size=batch_size, seed=seed,
                             progress_factory=progress_factory, center=center)
    elapsed = time.perf_counter() - started
    if not rows:
        raise TermnormError("nothing to measure: " + "; ".join(notes or ["no pairs selected"]))

    # Mapping titles carry labels from the manifest (add-ontology --label): shown as written.
    stdout_console().print(render.table(rows), markup=False)
    for note in notes:
        console.print(f"note: {escape(note)}")
    n_texts = len({t for job in jobs for pair in job.pairs for t in pair})
    console.print(f"{n_texts} distinct texts, {len(embedders)} embedder(s), {elapsed:.1f} s")
    if out is not None:
        meta = {
            "embedders": [e.name for e in embedders],
            "model": model, "lm": lm, "adapter": str(adapter) if adapter else None,
            "data_dir": str(data_dir) if data_dir else "shipped", "splits": splits,
            "limit": limit, "seed": seed, "center": center, "seconds": round(elapsed, 2),
        }
        csv_name, json_name, png_name = OUT_FILES
        paths = write_all(out, {
            csv_name: render.csv_out(rows),
            json_name: render.json_out(rows, meta, notes),
            png_name: render.figure(rows),
        })
        console.print("wrote " + escape(", ".join(str(p) for p in paths)))


@functools.wraps(lexicalization)  # same options and help, so old invocations parse as before
def _deprecated_alignment(*args: Any, **kwargs: Any) -> None:
    print("termnorm: note: 'termnorm alignment' is deprecated; use 'termnorm lexicalization' "
          "(same options)", file=sys.stderr)
    lexicalization(*args, **kwargs)
