"""The SOURCE argument of add-ontology: a local ontology file or an http(s) URL downloaded first
(either may be gzip-compressed). Its format (OBO, OWL RDF/XML, OBO Graphs JSON) is told by content,
in ``sources.ontology_file``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.fetch import DownloadLimits, ProgressHook, download, is_gzip, unpack_gzip
from termnorm_eval.sources.mirrors import sha256_file


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and urlparse(source).scheme in ("http", "https")


def url_file_name(url: str) -> str:
    name = Path(unquote(urlparse(url).path)).name
    # "..", "." or a NUL byte would name no file of its own
    return name if name not in ("", ".", "..") and "\0" not in name else "ontology.obo"


def resolve_source(source: str | Path, workdir: Path, hook: ProgressHook | None = None,
                   limits: DownloadLimits | None = None) -> tuple[Path, dict[str, Any]]:
    """Local path of the ontology and its provenance (``url`` when downloaded, always ``sha256``).

    A URL is streamed into ``workdir/download/`` (``workdir``: a temporary folder the caller
    removes) through ``sources.fetch.download``, which refuses cut-off transfers and keeps to
    ``limits``; a gzip file is unpacked into ``workdir/unpacked/``, within ``limits`` too. Each in
    its own subfolder, so no URL's file name can collide with the other or with what the caller
    keeps in ``workdir``.
    """
    if is_url(source):
        url = str(source)
        target = workdir / "download" / url_file_name(url)
        digest = download(url, target, hook, limits=limits)
        return _gunzipped(target, workdir, limits, url), {"url": url, "sha256": digest}
    text = str(source)
    if "://" in text:
        raise TermnormError(f"{text}: only http:// and https:// addresses can be downloaded")
    path = Path(text).expanduser()
    if not path.exists():
        raise TermnormError(f"{path}: file not found")
    if not path.is_file():
        raise TermnormError(f"{path}: not a regular file")
    provenance = {"path": text, "sha256": sha256_file(path)}  # the path as given
    return _gunzipped(path, workdir, limits, str(path)), provenance


def _gunzipped(path: Path, workdir: Path, limits: DownloadLimits | None = None, label: str | None = None
               ) -> Path:
    """A gzip-compressed OBO (``cl.obo.gz``) is unpacked into ``workdir/unpacked/``; others are used
    as they are. A decompression bomb or broken file is refused (``label`` names it) and leaves no
    partial output."""
    if not is_gzip(path):
        return path
    name = (path.name[:-3] if path.name.endswith(".gz") else path.name + ".obo") or "ontology.obo"
    return unpack_gzip(path, workdir / "unpacked" / name, limits, label or str(path))
