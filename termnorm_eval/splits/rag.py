"""Retrieval candidates of the RAG tasks (``termnorm-rag_*``): the file format, its manifest block, the
shown order.

A build ships, per terminology, the concepts a retriever (the default: BM25) ranks highest for every
question of a retrievable direction (``retrievable``: an identifier or symbol out, from a label, name,
form or protein name in), computed by ``retrieval.candidates`` with the asked form held out, as
``termnorm retrieve eval`` scores it. ``<key>/rag_candidates.jsonl.gz``, gzip with mtime 0 (a rebuild
is byte-identical), one JSON line per (split, source field, item id), sorted::

    {"item_id": "GO:0000001", "ranked": ["GO:...", ... 20 concept ids, best first], "source": "name",
     "split": "train"}

``source`` is the direction's record field (``name``, ``mentions.synonym``, ``protein_name``, ...):
directions asking the same field (gene name2symbol and name2id) share their lines. ``ranked`` holds
at most ``RANKED`` live concept ids, fewer when fewer concepts match at all; the gold is never added.

The manifest's ``terminologies.<key>.rag`` block (``manifest_block``) names the file, the retriever
(its identity and digest), ``ranked``, ``k`` (how many a task shows by default), the seed and rule of
the shown order, the holdout rule and recall@10/@20 per split and direction. Candidates of another
retriever (``termnorm retrieve candidates``) live in a folder of their own: the same files plus
``meta.json`` naming the data they were computed for (``read_meta``); the tasks take them through
lm-eval's ``--metadata '{"rag_candidates": "FOLDER"}'``.

The order a task shows the first k in is fixed by a hash, not by rank: a model must not learn that
the first line is the likely answer (``shown_order``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.splits import release_index, store
from termnorm_eval.terminologies import Direction

FILE_NAME = "rag_candidates.jsonl.gz"
META = "meta.json"
META_FORMAT = "termnorm-rag-candidates/1"
RANKED = 20  # concepts kept per question
K = 10  # concepts a RAG task shows by default (metadata rag_k overrides, up to RANKED)
RECALL_AT = (10, 20)
ORDER = "sorted by sha256(f'{seed}:{item_id}:{direction}:{id}')"
FIELDS = ("item_id", "ranked", "source", "split")

Key = tuple[str, str, str]  # (split, source field, item id)


def retrievable(direction: Direction) -> bool:
    """An X->ID direction: an identifier or symbol out, from something other than an identifier (what a
    retriever answers and what a RAG task asks)."""
    return direction.answer_kind == "id" and direction.source != "id"


def candidates_path(key: str, data_dir: str | Path | None = None) -> Path:
    return Path(data_dir if data_dir is not None else store.shipped_data_dir()) / key / FILE_NAME


def render(lines: Iterable[Mapping[str, Any]]) -> bytes:
    """The compressed file: one line per (split, source, item_id), sorted, keys sorted."""
    rows = sorted(((str(r["split"]), str(r["source"]), str(r["item_id"])), list(r["ranked"])) for r in lines)
    text = "".join(json.dumps({"item_id": i, "ranked": ranked, "source": s, "split": sp},
                              sort_keys=True, ensure_ascii=False) + "\n"
                   for (sp, s, i), ranked in rows)
    return release_index.compress(text.encode("utf-8"))


def _line(path: Path, lineno: int, line: str) -> tuple[Key, tuple[str, ...]]:
    def bad(why: str) -> TermnormError:
        return TermnormError(f"{path}:{lineno}: malformed RAG candidates line ({why})")

    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as e:
        raise bad(f"not JSON: {getattr(e, 'msg', e)}") from None
    if not isinstance(obj, dict) or sorted(obj) != list(FIELDS):
        raise bad(f"expected an object with {', '.join(FIELDS)}")
    ranked = obj["ranked"]
    if not all(isinstance(obj[f], str) and obj[f] for f in ("item_id", "source", "split")):
        raise bad("item_id, source and split must be non-empty strings")
    if not isinstance(ranked, list) or not all(isinstance(c, str) and c for c in ranked):
        raise bad("ranked must be a list of concept ids")
    if len(ranked) > RANKED or len(set(ranked)) != len(ranked):
        raise bad(f"ranked holds at most {RANKED} distinct ids (got {len(ranked)})")
    return (obj["split"], obj["source"], obj["item_id"]), tuple(ranked)


def read(path: str | Path) -> dict[Key, tuple[str, ...]]:
    """(split, source, item_id) -> ranked concept ids, read once per file content; a malformed line is
    one line naming the file and line."""
    return dict(_read(store.file_key(Path(path), "RAG candidates file")))


@lru_cache(maxsize=16)
def _read(key: store.FileKey) -> tuple[tuple[Key, tuple[str, ...]], ...]:
    path = Path(key[0])
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except OSError as e:
        raise TermnormError(f"{path}: not a RAG candidates file ({e})") from None
    except (EOFError, UnicodeDecodeError) as e:
        raise TermnormError(f"{path}: not a RAG candidates file ({type(e).__name__}: {e})") from None
    out: dict[Key, tuple[str, ...]] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        k, ranked = _line(path, lineno, line)
        if k in out:
            raise TermnormError(f"{path}:{lineno}: malformed RAG candidates line (a second line for "
                                f"{' '.join(k)})")
        out[k] = ranked
    return tuple(out.items())


def shown_order(ids: Sequence[str], seed: int, item_id: str, direction: str) -> list[str]:
    """``ids`` in the order a task shows them: by sha256 of seed, document, direction and id (``ORDER``),
    so the place of the gold says nothing and each document keeps its order across runs."""
    def rank(c: str) -> str:
        return hashlib.sha256(f"{seed}:{item_id}:{direction}:{c}".encode()).hexdigest()

    return sorted(ids, key=rank)


def manifest_block(identity: Mapping[str, Any], seed: int, holdout: str,
                   recall: Mapping[str, Mapping[str, Mapping[int, float]]], digest: str) -> dict[str, Any]:
    """``terminologies.<key>.rag`` of a manifest (and of a candidates folder's ``meta.json``);
    ``recall``: split -> direction -> {10: share, 20: share}; ``digest``: the retriever's
    (``RetrieverSpec.digest``)."""
    return {
        "file": FILE_NAME, "retriever": dict(identity), "retriever_digest": digest, "ranked": RANKED,
        "k": K, "seed": seed, "order": ORDER, "holdout": holdout,
        "recall": {s: {d: {str(k): round(v, 6) for k, v in sorted(r.items())} for d, r in sorted(by.items())}
                   for s, by in sorted(recall.items())},
    }


@dataclass(frozen=True)
class Candidates:
    """Where one terminology's candidates are and how its tasks show them."""

    path: Path
    file: store.FileKey  # the file's identity: a rebuild is seen at once
    digest: str  # the retriever's identity digest (documents name it)
    k: int  # the default of rag_k
    seed: int


def _int(value: Any, where: str, path: Path, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise TermnormError(f"{path}: {where}: expected an integer >= {low}, got {value!r}")
    return value


def _from_block(block: Any, where: str, manifest: Path, folder: Path) -> Candidates:
    if not isinstance(block, dict):
        raise TermnormError(f"{manifest}: {where}: no RAG candidates here (build the data again, or give "
                            "rag_candidates from termnorm retrieve candidates)")
    if block.get("file") != FILE_NAME or not isinstance(block.get("retriever_digest"), str):
        raise TermnormError(f"{manifest}: {where}: not a RAG candidates block (file {FILE_NAME!r} and "
                            "retriever_digest expected)")
    k = _int(block.get("k"), f"{where}.k", manifest, 1)
    seed = _int(block.get("seed"), f"{where}.seed", manifest)
    path = folder / FILE_NAME
    return Candidates(path, store.file_key(path, "RAG candidates file"), block["retriever_digest"],
                      min(k, RANKED), seed)


def manifest_sha256(data_dir: str | Path | None = None) -> str:
    path = Path(data_dir if data_dir is not None else store.shipped_data_dir()) / store.MANIFEST
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        raise store.SplitDataError(f"{path}: no split manifest here (build the splits first)") from None


def meta(data_dir: str | Path | None, blocks: Mapping[str, Mapping[str, Any]],
         indexes: Mapping[str, str]) -> dict[str, Any]:
    """``meta.json`` of a candidates folder: the data it was computed for (the manifest's sha256 and
    each release index digest) and, per terminology, its block (``manifest_block``)."""
    return {"format": META_FORMAT, "data_manifest_sha256": manifest_sha256(data_dir),
            "terminologies": {k: {**blocks[k], "release": indexes[k]} for k in sorted(blocks)}}


def locate(key: str, data_dir: str | Path | None = None, folder: str | Path | None = None) -> Candidates:
    """The candidates a RAG task of ``key`` reads: the data folder's own (its manifest's ``rag`` block),
    or those of ``folder`` (``rag_candidates``), refused in one line when they were computed for other
    data."""
    root = Path(data_dir if data_dir is not None else store.shipped_data_dir())
    if folder is None:
        entry = store.read_manifest(data_dir).get("terminologies", {})
        entry = entry.get(key) if isinstance(entry, dict) else None
        block = entry.get("rag") if isinstance(entry, dict) else None
        return _from_block(block, f"terminologies.{key}.rag", root / store.MANIFEST, root / key)
    where = Path(folder)
    if not where.is_dir():
        raise TermnormError(f"rag_candidates {folder}: not a folder (give one that termnorm retrieve "
                            "candidates wrote)")
    meta_path = where / META
    try:
        found = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise TermnormError(f"rag_candidates {folder}: no readable {META} (not a folder of RAG candidates "
                            f"from termnorm retrieve candidates: {type(e).__name__})") from None
    if not isinstance(found, dict) or found.get("format") != META_FORMAT:
        raise TermnormError(f"{meta_path}: not a RAG candidates meta file (format {META_FORMAT} expected)")
    if found.get("data_manifest_sha256") != manifest_sha256(data_dir):
        raise TermnormError(f"{meta_path}: candidates of other data (computed for manifest sha256 "
                            f"{str(found.get('data_manifest_sha256'))[:16]}, this data's is "
                            f"{manifest_sha256(data_dir)[:16]}); recompute them with termnorm retrieve "
                            "candidates")
    terms = found.get("terminologies")
    block = terms.get(key) if isinstance(terms, dict) else None
    index = store.index_path(key, data_dir)
    if isinstance(block, dict) and index.is_file() and block.get("release") != release_index.digest_of(index):
        raise TermnormError(f"{meta_path}: terminologies.{key}: candidates of another release index "
                            "(recompute them with termnorm retrieve candidates)")
    return _from_block(block, f"terminologies.{key}", meta_path, where / key)


def display_rows(path: str | Path) -> dict[str, tuple[str, str]]:
    """Live concept id -> (approved symbol or "", label: the first name) of a release index, what a
    candidate line shows; read once per file content."""
    return _display(store.file_key(Path(path), "release index"))


@lru_cache(maxsize=8)
def _display(key: store.FileKey) -> dict[str, tuple[str, str]]:
    return {r[0]: (r[5][0] if r[5] else "", r[4][0] if r[4] else "")
            for r in release_index.read_rows(key[0]) if r[1] == "live"}


def card_lines(key: str, block: Any) -> list[str]:
    """The data card's line on a terminology's RAG candidates ([] for a build without them)."""
    if not isinstance(block, dict) or not isinstance(block.get("recall"), dict):
        return []
    kind = block.get("retriever", {}).get("kind", "?") if isinstance(block.get("retriever"), dict) else "?"
    by_direction: dict[str, dict[str, Any]] = {}
    for split, per in block["recall"].items():
        for direction, r in per.items():
            by_direction.setdefault(direction, {})[split] = r.get(str(block.get("k", K)))
    recall = "; ".join(f"{d} " + " / ".join(f"{v:.2f}" for v in by.values())
                       for d, by in by_direction.items())
    splits = " / ".join(block["recall"])
    return [f"- RAG candidates (`{key}/{FILE_NAME}`, the termnorm-rag tasks'): the {block.get('ranked')} "
            f"concepts {kind} ranks highest for each X->ID question, the asked form held out; a task shows "
            f"{block.get('k')} in a seeded order, the gold never added. Recall@{block.get('k')} ({splits}): "
            f"{recall}."]
