"""A local model's identity (study step records, dense retriever indexes): the sha256 of its files.

Names and sizes cannot tell two checkpoints of one architecture apart, so a step's record names
the content of every file at the top of the model folder that loading may read: weights (every
shard), config, tokenizer, chat template, custom code. Hidden files and ``*.md`` are left out;
subfolders too (``from_pretrained`` reads none; Llama releases keep a second copy of the weights in
``original/``).

Hashing runs at about 1 GB/s, once per file: the digests are kept in ``<termnorm cache>/
file-hashes.json`` keyed by the resolved path, device, inode, size, mtime and ctime, so a rerun
reads no weights. ctime is in the key (``store.file_key`` has no need of it, its caches live one
process): new content that keeps the size, inode and mtime (``cp -p`` or tar over the file)
still moves the ctime, which no tool sets back. The cache is a shortcut only: unreadable or
malformed it is ignored, an entry counts when every part of its key matches, and it is written
atomically, best effort (a read-only cache costs a rehash, never a wrong identity).
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from termnorm_eval import atomic
from termnorm_eval.sources import mirrors

CACHE_FILE = "file-hashes.json"
CACHE_FORMAT = "termnorm-file-hashes/1"
SAY_ABOVE_BYTES = 64 << 20  # hashing less than this goes unannounced
_SHA256 = re.compile(r"[0-9a-f]{64}")


def model_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that make the model (see the module docstring)."""
    return [p for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != ".md"]


def model_identity(folder: Path) -> dict[str, Any]:
    """``{"files": {name: sha256}}`` of a local model folder."""
    return {"files": files_sha256(model_files(folder))}


def _key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _cache_path() -> Path:
    return mirrors.cache_dir() / CACHE_FILE


def _read_cache() -> dict[str, Any]:
    """The cache's entries; {} when it is missing or unreadable."""
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) and data.get("format") == CACHE_FORMAT else None
    return files if isinstance(files, dict) else {}


def _cached(entry: object, key: list[int]) -> str | None:
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    sha = entry.get("sha256")
    return sha if isinstance(sha, str) and _SHA256.fullmatch(sha) else None


def _write_cache(new: dict[str, dict[str, Any]]) -> None:
    """Add ``new`` to the cache as it is now on disk (another process may have written it), and drop
    the entries of files that are gone."""
    entries = {p: e for p, e in _read_cache().items() if Path(p).exists()} | new
    with contextlib.suppress(OSError):
        atomic.write_json(_cache_path(), {"format": CACHE_FORMAT, "files": entries})


def files_sha256(paths: list[Path]) -> dict[str, str]:
    """name -> sha256 of each of ``paths`` (names unique: files of one folder)."""
    cache = _read_cache()
    out: dict[str, str] = {}
    todo: list[tuple[Path, str, list[int]]] = []
    for path in paths:
        resolved = path.resolve()
        key = _key(resolved)
        sha = _cached(cache.get(str(resolved)), key)
        if sha is None:
            todo.append((path, str(resolved), key))
        else:
            out[path.name] = sha
    size = sum(key[2] for _, _, key in todo)
    say = bool(todo) and size >= SAY_ABOVE_BYTES
    if say:
        print(f"termnorm: hashing the model's files ({len(todo)} file(s), {size / 1e9:.1f} GB; once, "
              "the digests are cached for reruns)", file=sys.stderr, flush=True)
    started = time.perf_counter()
    new: dict[str, dict[str, Any]] = {}
    for path, real, key in todo:
        out[path.name] = mirrors.sha256_file(path)
        # Keyed by the stat taken before reading: a file that changes while it is read gets a
        # new key, so the digest of what was read is never filed under the new content.
        new[real] = {"key": key, "sha256": out[path.name]}
    if say:
        print(f"termnorm: hashed in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    if new:
        _write_cache(new)
    return dict(sorted(out.items()))
