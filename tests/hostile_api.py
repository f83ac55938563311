"""A hostile OpenAI-compatible chat-completions server on 127.0.0.1, in a thread (tests only).

Each POST takes the next reply from ``script`` (then ``default``): a good answer, or one of the
ways a server can answer without one. It counts the requests and the body bytes it sent, so a
test can check that a client stopped reading.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# What each reply name sends: (status, content type, body). "answer:TEXT" answers TEXT;
# "big:N" answers N characters; "endless" streams a JSON prefix, then "a" until the client leaves.
FIXED: dict[str, tuple[int, str, bytes]] = {
    "no-choices": (200, "application/json", b'{"id": "x", "object": "chat.completion"}'),
    "empty-choices": (200, "application/json", b'{"id": "x", "choices": []}'),
    "no-content": (200, "application/json",
                   b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": null}}]}'),
    "500": (500, "text/plain", b"Internal Server Error: the model crashed"),
    "429": (429, "application/json", b'{"error": {"message": "Rate limit reached", "type": "requests"}}'),
    "html": (200, "text/html", b"<html><body><h1>Welcome to nginx!</h1></body></html>"),
    "malformed": (200, "application/json", b'{"choices": [{"index": 0, "message": {"content": "GO:'),
    "deep": (200, "application/json", b"[" * 100_000 + b"]" * 100_000),
}
ENDLESS_LIMIT = 1 << 30  # the server gives up after 1 GiB, so that a test without a cap still ends


def answer(text: str) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}).encode()


@dataclass
class Hostile:
    """The running server: ``url`` (…/v1/chat/completions), what it will answer and what it sent."""

    url: str = ""
    script: list[str] = field(default_factory=list)
    default: str = "answer:GO:0000001"
    models: str = "list"  # GET /v1/models: the list of one model "m", or "endless"
    requests: int = 0
    sent: list[int] = field(default_factory=list)  # body bytes per reply, in order
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(self) -> str:
        with self.lock:
            self.requests += 1
            return self.script.pop(0) if self.script else self.default


def _handler(state: Hostile) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # /v1/models, as check_served asks
            if state.models == "endless":
                self._endless()
                return
            models = {"object": "list", "data": [{"id": "m"}]}
            self._send(200, "application/json", json.dumps(models).encode())

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            reply = state.next_reply()
            if reply == "endless":
                self._endless()
            elif reply.startswith("answer:"):
                self._send(200, "application/json", answer(reply.removeprefix("answer:")))
            elif reply.startswith("big:"):
                self._send(200, "application/json", answer("A" * int(reply.removeprefix("big:"))))
            else:
                self._send(*FIXED[reply])

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            sent = 0
            try:
                for i in range(0, len(body), 1 << 16):
                    self.wfile.write(body[i:i + (1 << 16)])
                    sent += len(body[i:i + (1 << 16)])
            except OSError:  # the client stopped reading and closed
                self.close_connection = True
            with state.lock:
                state.sent.append(sent)

        def _endless(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"a" * (1 << 16)
            sent = 0
            try:
                head = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "'
                self.wfile.write(b"%x\r\n%s\r\n" % (len(head), head))
                sent += len(head)
                while sent < ENDLESS_LIMIT:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
            except OSError:
                pass
            self.close_connection = True
            with state.lock:
                state.sent.append(sent)

    return Handler


@contextmanager
def serve(*script: str, default: str = "answer:GO:0000001", models: str = "list") -> Iterator[Hostile]:
    """A hostile server answering ``script`` in order, then ``default``; stopped on exit."""
    state = Hostile(script=list(script), default=default, models=models)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1/chat/completions"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
