"""The SOURCE argument of add-ontology: a local OBO file or an http(s) URL downloaded first
(either may be gzip-compressed)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.fetch import ProgressHook, download
from termnorm_eval.sources.mirrors import sha256_file


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and urlparse(source).scheme in ("http", "https")


def url_file_name(url: str) -> str:
    name = Path(unquote(urlparse(url).path)).name
    return name or "ontology.obo"


def resolve_source(source: str | Path, workdir: Path, hook: ProgressHook | None = None,
                   ) -> tuple[Path, dict[str, Any]]:
    """Local path of the ontology and its provenance (``url`` when downloaded, always ``sha256``).

    A URL is streamed into ``workdir`` (a temporary folder the caller removes) through
    ``sources.fetch.download``, which refuses cut-off transfers.
    """
    if is_url(source):
        url = str(source)
        target = workdir / url_file_name(url)
        digest = download(url, target, hook)
        return _gunzipped(target, workdir), {"url": url, "sha256": digest}
    text = str(source)
    if "://" in text:
        raise TermnormError(f"{text}: only http:// and https:// addresses can be downloaded")
    path = Path(text).expanduser()
    if not path.exists():
        raise TermnormError(f"{path}: file not found")
    if not path.is_file():
        raise TermnormError(f"{path}: not a regular file")
    return _gunzipped(path, workdir), {"path": text, "sha256": sha256_file(path)}  # path as given


def _gunzipped(path: Path, workdir: Path) -> Path:
    """A gzip-compressed OBO (``cl.obo.gz``) is unpacked into ``workdir``; others are used as they are."""
    with path.open("rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return path
    name = path.name[:-3] if path.name.endswith(".gz") else path.name + ".obo"
    target = workdir / "unpacked" / name
    target.parent.mkdir(exist_ok=True)
    try:
        with gzip.open(path, "rb") as src, target.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except (OSError, EOFError) as e:
        raise TermnormError(f"{path}: broken gzip file ({type(e).__name__}: {e})") from None
    return target
