"""A fake ``vllm.entrypoints.openai.api_server`` for the tests that need no vLLM: a real subprocess
on loopback that answers ``/health``, ``/v1/models`` and ``/v1/chat/completions`` as vLLM's server
does, and records its command lines (``argv.json``: the last, ``argv.jsonl``: every start), its pid
and the requests it saw (``requests.jsonl``). The ``fake_vllm`` fixture (conftest.py) installs it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

FAKE_SERVER = r'''
"""Fake vllm.entrypoints.openai.api_server: FAKE_VLLM_DIR gets argv.json, pid, requests.jsonl."""
import argparse, http.server, json, os, sys, time
out = os.environ["FAKE_VLLM_DIR"]
open(os.path.join(out, "pid"), "w").write(str(os.getpid()))
json.dump(sys.argv[1:], open(os.path.join(out, "argv.json"), "w"))
open(os.path.join(out, "argv.jsonl"), "a").write(json.dumps(sys.argv[1:]) + "\n")
p = argparse.ArgumentParser()
p.add_argument("--model"); p.add_argument("--host"); p.add_argument("--port", type=int)
p.add_argument("--served-model-name", default=None)
p.add_argument("--lora-modules", nargs="*", default=[])
a, _ = p.parse_known_args()
if os.environ.get("FAKE_VLLM_MODE") == "never":  # alive, never listening
    time.sleep(600)
names = [a.served_model_name or a.model] + [m.split("=", 1)[0] for m in a.lora_modules]
class H(http.server.BaseHTTPRequestHandler):
    def _send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        if self.path == "/health": self._send(200, {})
        elif self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": n} for n in names]})
        else: self._send(404, {})
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(os.path.join(out, "requests.jsonl"), "a") as fh:
            fh.write(json.dumps(req) + "\n")
        if req.get("model") not in names:
            return self._send(404, {"error": {"message": "model not found"}})
        # The answer names the served model: scores differ per adapter, checkable per document.
        text = "TP53" if req["model"] == "right" else "WRONG"
        self._send(200, {"id": "x", "object": "chat.completion", "model": req["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": text}}]})
    def log_message(self, *args): pass
print("ready", flush=True)
http.server.ThreadingHTTPServer((a.host, a.port), H).serve_forever()
'''


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake vllm package on the server's PYTHONPATH (only the server's: not this process's)."""
    pkg = tmp_path / "fakevllm"
    mod = pkg / "vllm" / "entrypoints" / "openai"
    mod.mkdir(parents=True)
    for d in (pkg / "vllm", pkg / "vllm" / "entrypoints", mod):
        (d / "__init__.py").write_text("")
    (mod / "api_server.py").write_text(FAKE_SERVER)
    record = tmp_path / "record"
    record.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(pkg))
    monkeypatch.setenv("FAKE_VLLM_DIR", str(record))
    return record




def server_gone(record: Path) -> None:
    """The last fake server started is no longer running (waits up to 15 s)."""
    pid_file = record / "pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 15
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(pid), f"server pid {pid} still running"
