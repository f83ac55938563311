"""A local OpenAI-compatible server as a subprocess: started, probed until ready, always stopped.

Generic over the server program: ``transformers serve MODEL --host 127.0.0.1 --port P`` (the
study's API-model path and its tests), ``python -m vllm.entrypoints.openai.api_server --model M
--host 127.0.0.1 --port P ...`` (the vLLM engine), or anything else that answers ``GET /health``
or ``GET /v1/models`` with HTTP 200 once it can take requests.

What it guarantees:

- **Loopback only.** A server started for an evaluation must not be reachable from the network
  (no authentication, arbitrary generation): a host other than ``127.0.0.1``, ``localhost`` or
  ``::1`` is refused before anything starts.
- **The port is ours.** A port someone else listens on would make the probe talk to the wrong
  server and the evaluation score another model: checked by binding it first; in use is a
  one-line error naming the port.
- **Bounded start.** Readiness is polled until ``ready_timeout`` seconds; a server that exits or
  never becomes ready is a one-line error carrying the last lines of its log, and its whole
  process group is killed first.
- **No stray process.** The server runs in its own session (process group); ``stop`` signals the
  group (SIGTERM, then SIGKILL after ``grace`` seconds), and the context manager calls it on
  normal exit, errors, Ctrl-C and SIGTERM (which ``atomic.cleanup_on_sigterm`` turns into
  ``SystemExit``). An ``atexit`` hook covers a caller that forgets.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
READY_PATHS = ("/health", "/v1/models")
LOG_TAIL_LINES = 5
CHUNK = 1 << 16


class CapExceeded(Exception):
    """A response body longer, or slower to arrive, than its reader allows."""


def over_cap(limit: int) -> CapExceeded:
    size = f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit >> 10} KiB"
    return CapExceeded(f"a response body over {size} (stopped reading there)")


def read_capped(chunks: Iterable[bytes], limit: int, timeout: float) -> bytes:
    """A response body from ``chunks``, ``CapExceeded`` past ``limit`` bytes or ``timeout`` s: a
    server that sends without end costs neither unbounded memory nor unbounded time."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) > limit:
            raise over_cap(limit)
        if time.monotonic() > deadline:
            raise CapExceeded(f"no complete response within {timeout:g} s")
    return bytes(buf)


def check_host(host: str) -> str:
    """``host`` if it is a loopback name; else a one-line error."""
    if host not in LOOPBACK:
        raise TermnormError(f"server host {host!r}: only a loopback address may be served "
                            f"({', '.join(LOOPBACK)}); a local server has no authentication")
    return host


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if host == "::1" else socket.AF_INET


def _bind_address(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


def check_port_free(host: str, port: int) -> None:
    """One-line error when ``port`` on ``host`` is taken (or not a port)."""
    if not 1 <= port <= 65535:
        raise TermnormError(f"server port {port}: must be from 1 to 65535")
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        # SO_REUSEADDR as servers set it (uvicorn, vLLM): on Linux a port with a listener still
        # fails, while one left in TIME_WAIT by a server stopped a moment ago is free, as it is to them.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((_bind_address(host), port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise TermnormError(f"server port {port} on {host} is already in use; stop what "
                                    "listens there or choose another port") from None
            raise TermnormError(f"server port {port} on {host}: cannot bind ({e.strerror})") from None


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the kernel's choice); ``serve`` checks it again."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.bind((_bind_address(host), 0))
        return int(s.getsockname()[1])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def probe(host: str, port: int, paths: Sequence[str] = READY_PATHS, timeout: float = 2.0) -> str | None:
    """The first of ``paths`` that answers HTTP 200, or None."""
    for path in paths:
        url = f"http://{_url_host(host)}:{port}{path}"
        # A proxy from the environment must never see a loopback request.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=timeout) as r:
                if r.status == 200:
                    return path
        except (urllib.error.URLError, OSError, ValueError):
            continue
    return None


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last non-empty lines of a log, joined on one line (for a one-line error)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    kept = [" ".join(line.split()) for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "(the log is empty)"


@dataclass
class Server:
    """A running server. ``base_url`` is ``http://host:port/v1``."""

    argv: list[str]
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    grace: float = 10.0
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}/v1"

    @property
    def chat_completions_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after ``grace`` seconds.

        By process group, not pid alone: servers fork workers (uvicorn, vLLM's engine core) that
        would outlive their parent and keep the port and the memory.
        """
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        pgid = self.process.pid  # start_new_session: the group id is the leader's pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=self.grace)
        # Children of the group may still be there after the leader left: kill what remains.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=self.grace)


def start(
    argv: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    ready_timeout: float = 300.0,
    ready_paths: Sequence[str] = READY_PATHS,
    log_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    grace: float = 10.0,
    name: str = "server",
) -> Server:
    """Start ``argv`` and wait until it answers; the caller must ``stop()`` it (or use ``serve``).

    ``{host}`` and ``{port}`` inside ``argv`` are replaced by the values used, so that a caller
    can write ``["transformers", "serve", M, "--host", "{host}", "--port", "{port}"]`` without
    choosing the port itself.
    """
    check_host(host)
    port = free_port(host) if port is None else port
    check_port_free(host, port)
    cmd = [a.replace("{host}", host).replace("{port}", str(port)) for a in argv]
    if not cmd:
        raise TermnormError(f"{name}: no command given")
    if log_path is None:
        fd, tmp = tempfile.mkstemp(prefix="termnorm-server-", suffix=".log")
        os.close(fd)
        log = Path(tmp)
    else:
        log = Path(log_path)
        log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                    env=dict(os.environ if env is None else env), start_new_session=True)
        except OSError as e:
            raise TermnormError(f"{name}: cannot start {cmd[0]!r} ({e.strerror})") from None
    server = Server(cmd, host, port, proc, log, grace)
    atexit.register(server.stop)
    try:
        _wait_ready(server, ready_timeout, ready_paths, name)
    except BaseException:  # also Ctrl-C while waiting: never leave the process behind
        server.stop()
        raise
    return server


def _wait_ready(server: Server, timeout: float, paths: Sequence[str], name: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = server.process.poll()
        if code is not None:
            raise TermnormError(f"{name} exited with status {code} before it was ready "
                                f"({server.argv[0]} on port {server.port}); last log lines: "
                                f"{log_tail(server.log_path)} (log: {server.log_path})")
        if probe(server.host, server.port, paths) is not None:
            return
        if time.monotonic() >= deadline:
            raise TermnormError(f"{name} on {server.host}:{server.port} was not ready after {timeout:g} s "
                                f"(no HTTP 200 from {' or '.join(paths)}); stopped it; last log lines: "
                                f"{log_tail(server.log_path)} (log: {server.log_path})")
        time.sleep(0.5)


@contextlib.contextmanager
def serve(argv: Sequence[str], **kwargs: Any) -> Iterator[Server]:
    """``start`` as a context manager: the server is stopped however the block ends."""
    server = start(argv, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def transformers_serve_argv(model: str | Path, *, device: str = "cpu", dtype: str = "auto") -> list[str]:
    """``transformers serve MODEL`` on loopback with the port left for ``start`` to fill in.

    The model is forced (preloaded, never unloaded on idle), so the first request does not wait
    for it and the ``model`` of every request is answered by this one.
    """
    import shutil
    import sys

    exe = shutil.which("transformers") or str(Path(sys.executable).with_name("transformers"))
    return [exe, "serve", str(model), "--host", "{host}", "--port", "{port}", "--device", device,
            "--dtype", dtype, "--log-level", "info"]
