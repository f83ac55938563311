"""`termnorm retrieve`: a retriever over every live concept, the baseline a fine-tune must beat."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

retrieve_app = typer.Typer(
    help="Retrieval over every live concept of a release (BM25, dense, hybrid): build its index, score it "
         "on the X->ID tasks with the asked form held out.",
    no_args_is_help=True,
)

RetrieverOpt = Annotated[str, typer.Option("--retriever", help="bm25 (lexical, bm25s), dense "
                                           "(sentence-transformers) or hybrid (reciprocal rank fusion).")]
EmbedderOpt = Annotated[str | None, typer.Option(
    "--embedder", help="A sentence-transformers model folder for dense/hybrid (default: the shipped "
    "all-MiniLM-L6-v2, or TERMNORM_EMBEDDING_MODEL), e.g. SapBERT or BioLORD where you have them.")]
DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", help="A data folder (termnorm data build / add-ontology output); default: the shipped "
    "splits.")]
DeviceOpt = Annotated[str | None, typer.Option(
    "--device", help="Device of the embedder (cpu, cuda, cuda:1).")]


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(retrieve_app, name="retrieve")


def _spec(retriever: str, embedder: str | None) -> Any:
    from termnorm_eval.retrieval.spec import RetrieverSpec

    return RetrieverSpec.parse(retriever, embedder)


def _keys(terminology: list[str] | None, data_dir: Path | None) -> list[str]:
    from termnorm_eval.errors import TermnormError
    from termnorm_eval.splits import store

    known = store.available(data_dir)
    if not known:
        where = "the shipped data" if data_dir is None else f"--data-dir {data_dir}"
        raise TermnormError(f"{where}: no terminology with train and val splits here (a termnorm data build "
                            "or add-ontology output)")
    keys = list(dict.fromkeys(terminology or known))
    for k in keys:
        if k not in known:
            raise TermnormError(f"--terminology {k}: not in this data folder ({', '.join(known)})")
    return keys


@retrieve_app.command("index")
def index(
    retriever: RetrieverOpt = "bm25",
    embedder: EmbedderOpt = None,
    terminology: Annotated[list[str] | None, typer.Option(
        "--terminology", help="Terminology key (repeatable; default: every one of the data folder).")] = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when a cached index exists.")] = False,
) -> None:
    """Build (or check) the cached index of every live concept: ID, label, exact synonyms with their
    types; genes: symbol, approved name, alias and previous symbols, protein name."""
    from rich.console import Console

    from termnorm_eval.retrieval.search import open_retriever

    spec = _spec(retriever, embedder)
    console = Console(stderr=True, emoji=False)
    for key in _keys(terminology, data_dir):
        r = open_retriever(spec, key, data_dir, device=device, force=force, show_progress=True)
        console.print(f"{key}: {spec.label()} index of {len(r.entries.ids)} concepts, "
                      f"{len(r.entries.texts)} strings ready", markup=False)


@retrieve_app.command("eval")
def evaluate(
    out: Annotated[Path, typer.Option("--out", help="Output folder: retriever-<kind>/results_*.json and "
                                      "samples (lm_eval's shape, for termnorm report --retriever), "
                                      "retrieval.md, retrieval.csv.")],
    tasks: Annotated[list[str] | None, typer.Option(
        "--tasks", help="Task names or patterns (fnmatch, comma lists), e.g. 'termnorm_hpo_*'; "
        "default: every X->ID task.")] = None,
    retriever: RetrieverOpt = "bm25",
    embedder: EmbedderOpt = None,
    data_dir: DataDirOpt = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Score the first N documents of "
                                              "each task (as lm_eval --limit).")] = None,
    device: DeviceOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier retrieve eval output.")] = False,
) -> None:
    """Score a retriever on the X->ID tasks: acc@1, acc@5, recall@10, recall@20 and mrr by split and
    popularity stratum, the question's own form held out (leave-one-out); label tasks also the
    exact-lookup figures with nothing held out."""
    import contextlib

    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from termnorm_eval import atomic
    from termnorm_eval.retrieval import evaluate as ev
    from termnorm_eval.retrieval.search import Retriever, open_retriever
    from termnorm_eval.splits import build

    spec = _spec(retriever, embedder)
    chosen = ev.select_tasks(tasks or None, data_dir)
    out = Path(out).expanduser().absolute()
    protected = [p for p in (data_dir,) if p is not None]

    def check() -> None:
        build.check_target(out, force, protected, option="--out", owned=ev.owned, what="retrieve eval output")

    check()  # before minutes of work
    console = Console(stderr=True, emoji=False)
    opened: dict[str, Retriever] = {}

    def get(key: str) -> Retriever:
        if key not in opened:
            opened[key] = open_retriever(spec, key, data_dir, device=device, show_progress=True)
        return opened[key]

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        def progress(name: str, total: int) -> Any:
            t = bar.add_task(escape(name), total=total)
            return lambda k: bar.advance(t, k)

        scored, meta = ev.evaluate(spec, chosen, get, data_dir, limit, progress)
    files: dict[str, str | bytes] = dict(ev.results_files(spec, scored, meta))
    files["retrieval.md"] = ev.summary_markdown(spec, scored, meta)
    files["retrieval.csv"] = ev.summary_csv(scored)
    with contextlib.ExitStack() as held:
        held.enter_context(atomic.locked_output(out, "--out", check))
        atomic.write_folder(out, files, before_commit=check)
    typer.echo(files["retrieval.md"])
    console.print(f"wrote {out}", markup=False)


@retrieve_app.command("candidates")
def candidates(
    out: Annotated[Path, typer.Option("--out", help="Output folder: <terminology>/rag_candidates.jsonl.gz "
                                      "and meta.json, for lm_eval --metadata '{\"rag_candidates\": OUT}'.")],
    retriever: RetrieverOpt = "bm25",
    embedder: EmbedderOpt = None,
    terminology: Annotated[list[str] | None, typer.Option(
        "--terminology", help="Terminology key (repeatable; default: every one of the data folder with "
        "retrievable tasks).")] = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier candidates folder.")] = False,
) -> None:
    """Compute the RAG tasks' candidates with another retriever: the top 20 concepts per X->ID question,
    the asked form held out, in the shipped candidates' format (the data folder's own are BM25's)."""
    import contextlib
    import json

    from rich.console import Console

    from termnorm_eval import atomic
    from termnorm_eval.errors import TermnormError
    from termnorm_eval.retrieval.candidates import data_seed, for_data
    from termnorm_eval.retrieval.search import open_retriever
    from termnorm_eval.splits import build, rag, store

    spec = _spec(retriever, embedder)
    keys = [k for k in _keys(terminology, data_dir)
            if any(rag.retrievable(d) for d in store.terminology(k, data_dir).all_directions)
            and not store.terminology(k, data_dir).mentions_of]
    if not keys:
        raise TermnormError("--terminology: none of these has retrievable tasks (X->ID directions)")
    out = Path(out).expanduser().absolute()
    protected = [p for p in (data_dir,) if p is not None]

    def owned(path: Path) -> bool:
        try:
            return json.loads((path / rag.META).read_text(encoding="utf-8")).get("format") == rag.META_FORMAT
        except (OSError, UnicodeDecodeError, ValueError, AttributeError, RecursionError):
            return False

    def check() -> None:
        build.check_target(out, force, protected, option="--out", owned=owned, what="RAG candidates folder")

    check()  # before minutes of work
    console = Console(stderr=True, emoji=False)
    seed = data_seed(data_dir)
    files: dict[str, str | bytes] = {}
    blocks: dict[str, dict[str, Any]] = {}
    releases: dict[str, str] = {}
    for key in keys:
        r = open_retriever(spec, key, data_dir, device=device, show_progress=True)
        with console.status(f"{key}: ranking the questions of its X->ID tasks"):
            files[f"{key}/{rag.FILE_NAME}"], blocks[key] = for_data(r, data_dir, seed)
        releases[key] = r.entries.release
        recall = "; ".join(f"{split} {d} {v[str(rag.K)]:.3f}" for split, per in blocks[key]["recall"].items()
                           for d, v in per.items())
        console.print(f"{key}: recall@{rag.K} {recall}", markup=False, soft_wrap=True)
    files[rag.META] = json.dumps(rag.meta(data_dir, blocks, releases), indent=2, sort_keys=True) + "\n"
    with contextlib.ExitStack() as held:
        held.enter_context(atomic.locked_output(out, "--out", check))
        atomic.write_folder(out, files, before_commit=check)
    console.print(f"wrote {out} (give it to the termnorm-rag tasks as lm_eval --metadata "
                  f"'{{\"rag_candidates\": \"{out}\"}}')", markup=False, soft_wrap=True)
