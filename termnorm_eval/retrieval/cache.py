"""Where a retriever's index lives, and building it once: load when present and right, else build.

``$TERMNORM_CACHE/retrieval/<key>-<release>/<kind>-<spec digest>/``: ``release`` is the release
index digest (what documents call ``release``), the spec digest the retriever's identity
(``RetrieverSpec.digest``). ``meta.json`` repeats both, with the entries' digest; a folder whose
meta does not match what is asked (copied from another terminology, release or retriever), or whose
arrays do not fit, is refused in one line and never used.

A build runs under the folder's lock (``atomic.output_lock``), into a staged sibling with
``meta.json`` written last, then one rename: a half index never sits at the final name. A dense build
keeps its finished shards beside it (``dense.partial_folder``) until the index is in place, so a
Ctrl-C costs at most one shard.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from termnorm_eval import atomic
from termnorm_eval.analysis.embedders import Progress, SentenceEmbedder
from termnorm_eval.errors import TermnormError
from termnorm_eval.retrieval import bm25, dense
from termnorm_eval.retrieval.entries import Entries
from termnorm_eval.retrieval.spec import RetrieverSpec
from termnorm_eval.sources import mirrors

FORMAT = "termnorm-retrieval-index/1"
META = "meta.json"
OPTION = "retrieval index"  # how lock messages name the folder

T = TypeVar("T")


def root() -> Path:
    return mirrors.cache_dir() / "retrieval"


def index_folder(spec: RetrieverSpec, entries: Entries) -> Path:
    """The cache folder of ``spec``'s index of ``entries`` (a bm25 or dense spec: a hybrid has none of
    its own, it opens both)."""
    return root() / f"{entries.key}-{entries.release}" / f"{spec.kind}-{spec.digest()}"


def expected_meta(spec: RetrieverSpec, entries: Entries) -> dict[str, Any]:
    """What a usable index's meta.json says (beside ``sources`` and ``seconds``)."""
    return {"format": FORMAT, "key": entries.key, "identity": spec.identity(),
            "index_digest": entries.release,
            "entries": {"digest": entries.digest(), "count": len(entries.texts)}}


def _rebuild_hint(spec: RetrieverSpec, entries: Entries) -> str:
    return f"rebuild with termnorm retrieve index --retriever {spec.kind} --terminology {entries.key} --force"


def check_meta(folder: Path, spec: RetrieverSpec, entries: Entries) -> None:
    """Refuse, in one line, a folder that is not this index (nothing of it is used)."""
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        why = "no meta.json" if isinstance(e, FileNotFoundError) else f"meta.json unreadable: {e}"
        raise TermnormError(f"{folder}: not a retrieval index ({why}); "
                            f"{_rebuild_hint(spec, entries)}") from None
    want = expected_meta(spec, entries)
    if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in want.items()):
        got = meta if isinstance(meta, dict) else {}
        ident = got.get("identity")
        ident = ident if isinstance(ident, dict) else {}
        built = (f"{got.get('key', '?')} release {got.get('index_digest', '?')}, {ident.get('kind', '?')} "
                 f"{ident.get('embedder', '')}".rstrip())
        raise TermnormError(f"{folder}: index of another release or retriever (built for {built}; asked: "
                            f"{entries.key} release {entries.release}, {spec.label()}); "
                            f"{_rebuild_hint(spec, entries)}")


def _sources(key: str, data_dir: str | Path | None) -> dict[str, str]:
    """sha256 of the source files the manifest lists for this terminology (provenance only: the
    release digest already pins the index)."""
    from termnorm_eval.splits import store
    from termnorm_eval.splits.build import NEEDS

    try:
        sources = store.read_manifest(data_dir).get("sources")
    except TermnormError:
        return {}
    roles = NEEDS.get(key)
    return {name: s["sha256"] for name, s in sorted(sources.items())
            if isinstance(s, dict) and isinstance(s.get("sha256"), str)
            and (roles is None or s.get("role") in roles)} if isinstance(sources, dict) else {}


def _sync_files(folder: Path) -> None:
    """fsync what a library wrote into a stage (bm25s does not)."""
    for p in folder.iterdir():
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())


def _open(spec: RetrieverSpec, entries: Entries, force: bool, data_dir: str | Path | None,
          load: Callable[[Path], T], build: Callable[[Path], T],
          after: Callable[[], None] | None = None) -> T:
    """Load the index of ``spec`` over ``entries`` or build it (``build(stage)`` fills the stage)."""
    folder = index_folder(spec, entries)
    if not force and folder.exists():
        return _load(folder, spec, entries, load)
    with atomic.output_lock(folder, OPTION):
        if not force and folder.exists():  # another process built it while this one waited
            return _load(folder, spec, entries, load)
        started = time.perf_counter()
        with atomic.staged_folder(folder) as stage:
            built = build(stage)
            _sync_files(stage)
            meta = {**expected_meta(spec, entries), "sources": _sources(entries.key, data_dir),
                    "seconds": round(time.perf_counter() - started, 3)}
            atomic.write_json(stage / META, meta)  # last: a stage without it is no index
            atomic.replace_folder(stage, folder)
        if after is not None:
            after()
    return built


def _load(folder: Path, spec: RetrieverSpec, entries: Entries, load: Callable[[Path], T]) -> T:
    check_meta(folder, spec, entries)
    try:
        return load(folder)
    except (OSError, ValueError, KeyError) as e:
        raise TermnormError(f"{folder}: damaged retrieval index ({type(e).__name__}: {e}); "
                            f"{_rebuild_hint(spec, entries)}") from None


@contextlib.contextmanager
def _bar(show: bool, description: str) -> Iterator[tuple[Callable[[int, int], None], Progress]]:
    """``(start(total, done), advance(n))`` of a rich progress bar on stderr (no-ops when not shown)."""
    if not show:
        yield (lambda total, done: None), (lambda n: None)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True, emoji=False), transient=True) as bar:
        task = bar.add_task(escape(description), total=None)
        yield (lambda total, done: bar.update(task, total=total, completed=done)), \
            (lambda n: bar.advance(task, n))


def open_bm25(spec: RetrieverSpec, entries: Entries, *, force: bool = False, show_progress: bool = True,
              data_dir: str | Path | None = None) -> bm25.Bm25Scorer:
    def build(stage: Path) -> bm25.Bm25Scorer:
        with _bar(show_progress, f"BM25 index of {entries.key} ({len(entries.texts):,} strings)"):
            model = bm25.build(entries)
            bm25.save(model, stage)
        return bm25.Bm25Scorer(model)

    def load(folder: Path) -> bm25.Bm25Scorer:
        scorer = bm25.Bm25Scorer(bm25.load(folder))
        if scorer.n_entries != len(entries.texts):
            raise ValueError(f"{scorer.n_entries} documents for {len(entries.texts)} entries")
        return scorer

    return _open(spec, entries, force, data_dir, load, build)


def open_dense(spec: RetrieverSpec, entries: Entries, *, device: str | None = None, force: bool = False,
               show_progress: bool = True, data_dir: str | Path | None = None,
               progress: Progress | None = None, shard_size: int = dense.SHARD) -> dense.DenseScorer:
    """``progress(n)``: called after each batch of ``n`` texts encoded (beside the bar)."""
    choice = spec.embedder
    assert choice is not None and spec.kind == "dense"
    made: list[SentenceEmbedder] = []

    def encoder() -> SentenceEmbedder:
        if not made:
            made.append(SentenceEmbedder(choice, device=device))
        return made[0]

    folder = index_folder(spec, entries)
    if force or not folder.exists():
        encoder()  # a model that cannot load fails here, before any folder is made

    def build(stage: Path) -> dense.DenseScorer:
        with _bar(show_progress, f"embedding {entries.key} with {choice.name}") as (start, advance):
            def step(n: int) -> None:
                advance(n)
                if progress is not None:
                    progress(n)

            return dense.build(entries, encoder(), spec.identity(), stage, dense.partial_folder(folder),
                               shard_size=shard_size, progress=step, on_start=start)

    def after() -> None:
        shutil.rmtree(dense.partial_folder(folder), ignore_errors=True)

    def load(folder: Path) -> dense.DenseScorer:
        return dense.load(folder, entries, encoder)

    return _open(spec, entries, force, data_dir, load, build, after)
