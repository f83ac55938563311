"""harness/served.py: a local server is loopback-only, on a free port, probed with a bounded wait,
and never left running (real subprocesses; Python's own http.server plays the server)."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import served

# A tiny OpenAI-ish server: /health answers 200 after an optional delay; it also forks a child
# into its process group (as uvicorn and vLLM do), which must die with it.
SERVER = r"""
import http.server, os, subprocess, sys, time
port = int(sys.argv[1]); delay = float(sys.argv[2])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[3], "w").write(str(child.pid))
time.sleep(delay)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path in ("/health", "/v1/models") else 404
        self.send_response(code); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a): pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_ready_then_stopped_with_its_children(tmp_path: Path) -> None:
    child_file = tmp_path / "child.pid"
    argv = [sys.executable, "-c", SERVER, "{port}", "0.5", str(child_file)]
    with served.serve(argv, ready_timeout=30, log_path=tmp_path / "server.log") as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert served.probe("127.0.0.1", server.port) == "/health"
        pid, child = server.pid, int(child_file.read_text())
        assert _alive(pid) and _alive(child)
    assert _gone(pid) and _gone(child), "the server or its child outlived stop()"
    # the port is free again
    served.check_port_free("127.0.0.1", server.port)


def test_never_ready_is_one_line_with_the_log_and_no_process_left(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    argv = [sys.executable, "-c",
            f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
            "print('loading weights', flush=True); print('still loading', flush=True); time.sleep(600)"]
    started = time.monotonic()
    with pytest.raises(TermnormError) as e:
        served.start(argv, ready_timeout=2, log_path=tmp_path / "server.log", grace=2)
    assert time.monotonic() - started < 20
    msg = str(e.value)
    assert "\n" not in msg and "not ready after 2 s" in msg and "still loading" in msg, msg
    assert _gone(int(pid_file.read_text())), "the never-ready server was left running"


def test_a_server_that_exits_says_so(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('CUDA out of memory', flush=True); sys.exit(3)"]
    with pytest.raises(TermnormError, match=r"exited with status 3 .*CUDA out of memory"):
        served.start(argv, ready_timeout=30, log_path=tmp_path / "server.log")


def test_port_in_use_names_the_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(TermnormError, match=f"port {port} on 127.0.0.1 is already in use"):
            served.start([sys.executable, "-c", "pass"], port=port, log_path=tmp_path / "log")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.org", ""])
def test_only_loopback(host: str) -> None:
    with pytest.raises(TermnormError, match="only a loopback address"):
        served.start([sys.executable, "-c", "pass"], host=host)


def test_ctrl_c_while_waiting_kills_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "pid"
    argv = [sys.executable, "-c",
            f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"]
    calls = {"n": 0}
    real_probe = served.probe

    def probe_then_interrupt(*a: object, **k: object) -> str | None:
        calls["n"] += 1
        if calls["n"] >= 3 and pid_file.exists():
            raise KeyboardInterrupt
        return real_probe(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(served, "probe", probe_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        served.start(argv, ready_timeout=60, log_path=tmp_path / "log", grace=2)
    assert _gone(int(pid_file.read_text()))
