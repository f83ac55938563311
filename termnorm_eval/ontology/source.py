"""The SOURCE argument of add-ontology: a local OBO file or an http(s) URL downloaded first."""

from __future__ import annotations

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
        return target, {"url": url, "sha256": digest}
    text = str(source)
    if "://" in text:
        raise TermnormError(f"{text}: only http:// and https:// addresses can be downloaded")
    path = Path(text).expanduser()
    if not path.exists():
        raise TermnormError(f"{path}: file not found")
    if not path.is_file():
        raise TermnormError(f"{path}: not a regular file")
    return path, {"path": str(path.resolve()), "sha256": sha256_file(path)}
