"""`termnorm data popularity` against a loopback server that speaks Europe PMC's search JSON: the
table for real concepts, resuming after an interruption, retries, refusals, the rate limit."""

from __future__ import annotations

import hashlib
import http.server
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from termnorm_cli import one_line_error, run

from termnorm_eval.sources import europepmc, mirrors
from termnorm_eval.sources.europepmc import EUROPE_PMC_URL, Concept, query_text
from termnorm_eval.sources.obo import read_obo
from termnorm_eval.sources.popularity import read_popularity_table


def hits(query: str) -> int:
    """The fake server's count for a query: deterministic, different per query."""
    return int(hashlib.sha256(query.encode()).hexdigest()[:6], 16) % 100_000


# (request number from 1, query) -> (status, headers, body) to answer instead, or None: the count
Plan = Callable[[int, str], "tuple[int, dict[str, str], bytes] | None"]


@dataclass
class FakeEuropePMC:
    url: str = ""
    log: list[tuple[float, str]] = field(default_factory=list)  # (arrival, query) of every request
    plan: Plan | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def queries(self) -> list[str]:
        return [q for _, q in self.log]

    def reset(self, plan: Plan | None = None) -> None:
        with self.lock:
            self.log.clear()
            self.plan = plan


@pytest.fixture
def server() -> Iterator[FakeEuropePMC]:
    fake = FakeEuropePMC()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            arrived = time.monotonic()
            url = urlparse(self.path)
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            q = params.get("query", "")
            with fake.lock:
                fake.log.append((arrived, q))
                n, plan = len(fake.log), fake.plan
            answer = plan(n, q) if plan else None
            if answer is None:
                assert url.path == "/search" and params["format"] == "json" and params["pageSize"] == "1"
                body = json.dumps({"version": "6.9", "hitCount": hits(q), "request": {"queryString": q},
                                   "resultList": {"result": []}}).encode()
                answer = (200, {"Content-Type": "application/json"}, body)
            status, headers, body = answer
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if "Content-Length" not in headers:  # a plan may announce more than it sends
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}/search"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def hp_obo() -> Path:
    return mirrors.extract("hp.obo")[0]


@pytest.fixture(scope="module")
def hpo_ids(hp_obo: Path) -> list[str]:
    """The first live, named HPO terms, by id, read here independently of the command."""
    return [t.id for t in read_obo(hp_obo, prefix="HP").live()][:60]


@pytest.fixture
def sources(tmp_path: Path, hp_obo: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "hp.obo").symlink_to(hp_obo)
    return folder


def popularity(server: FakeEuropePMC, sources: Path, out: Path, *extra: str) -> list[str]:
    return ["data", "popularity", "--terminology", "hpo", "--sources", str(sources), "--out", str(out),
            "--base-url", server.url, "--rate", "200", "--backoff", "0.01", *extra]


def cached_queries(cache: Path) -> list[str]:
    lines = cache.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["format"] == europepmc.CACHE_FORMAT
    return [json.loads(line)["query"] for line in lines[1:]]


def phrase(ident: str) -> str:
    return f'"{ident}"'


def test_full_run_writes_the_table_for_real_hpo_terms(server, sources, hpo_ids, tmp_path, capsys) -> None:
    out = tmp_path / "hpo-pop.tsv"
    code, stdout, err = run(popularity(server, sources, out, "--limit", "20"), capsys)
    assert code == 0, err
    first = hpo_ids[:20]
    assert first[:2] == ["HP:0000001", "HP:0000002"]
    assert server.queries == [phrase(i) for i in first]  # one request each, in id order
    table = read_popularity_table(out)
    assert table.counts == {i: hits(phrase(i)) for i in first}
    header = [line for line in out.read_text().splitlines() if line.startswith("#")]
    text = "\n".join(header)
    for expected in (f"endpoint: {server.url}", "hp.obo (data-version hp/releases/2025-01-16)",
                     'query: id: the identifier', '"HP:0000001"', "concepts: 20 (the first 20"):
        assert expected in text, text
    assert cached_queries(out.with_name(out.name + ".cache.jsonl")) == [phrase(i) for i in first]
    assert "20 counts" in stdout and "20 asked" in stdout
    # a second run asks nothing: every count comes from the cache, the table is the same
    server.reset()
    before = table.counts
    code, stdout, err = run(popularity(server, sources, out, "--limit", "20"), capsys)
    assert code == 0, err
    assert server.queries == [] and "0 asked" in stdout
    assert read_popularity_table(out).counts == before


def test_name_and_both_queries_use_quoted_phrases(server, sources, tmp_path, capsys) -> None:
    code, _, err = run(popularity(server, sources, tmp_path / "n.tsv", "--limit", "2", "--query", "name"),
                       capsys)
    assert code == 0, err
    assert server.queries == ['"All"', '"Abnormality of body height"']
    server.reset()
    code, _, err = run(popularity(server, sources, tmp_path / "b.tsv", "--limit", "2", "--query", "both",
                                  "--filter", "IN_PMC:Y"), capsys)
    assert code == 0, err
    assert server.queries[1] == '("HP:0000002" OR "Abnormality of body height") AND (IN_PMC:Y)'
    assert read_popularity_table(tmp_path / "b.tsv").counts["HP:0000002"] == hits(server.queries[1])


def test_query_text_keeps_a_phrase_whole() -> None:
    c = Concept("HGNC:1100", "BRCA1", 'BRCA1 "DNA  repair" associated')
    assert query_text(c, "id") == '"BRCA1"'
    assert query_text(c, "name") == '"BRCA1 DNA repair associated"'
    assert query_text(c, "both", "SRC:MED") == '("BRCA1" OR "BRCA1 DNA repair associated") AND (SRC:MED)'


def test_gene_table_is_keyed_by_hgnc_id_and_searches_the_symbol(server, tmp_path, capsys) -> None:
    from termnorm_eval.sources.hgnc import read_hgnc

    folder = tmp_path / "files"
    folder.mkdir()
    hgnc = mirrors.extract("hgnc_complete_set.txt")[0]
    (folder / "hgnc_complete_set.txt").symlink_to(hgnc)
    genes = sorted((g for g in read_hgnc(hgnc).genes if g.protein_coding), key=lambda g: g.id)[:5]
    out = tmp_path / "gene.tsv"
    code, _, err = run(["data", "popularity", "--terminology", "gene", "--sources", str(folder), "--out",
                        str(out), "--base-url", server.url, "--rate", "200", "--limit", "5"], capsys)
    assert code == 0, err
    assert server.queries == [phrase(g.symbol) for g in genes]
    assert read_popularity_table(out).counts == {g.id: hits(phrase(g.symbol)) for g in genes}


def test_go_table_counts_live_terms_of_the_release(server, tmp_path, capsys) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    go = mirrors.extract("go.obo")[0]
    (folder / "go.obo").symlink_to(go)
    first = [t.id for t in read_obo(go, prefix="GO").live()][:3]
    out = tmp_path / "go.tsv"
    code, _, err = run(["data", "popularity", "--terminology", "go", "--sources", str(folder), "--out",
                        str(out), "--base-url", server.url, "--rate", "200", "--limit", "3"], capsys)
    assert code == 0, err
    assert first[0] == "GO:0000001" and server.queries == [phrase(i) for i in first]
    assert read_popularity_table(out).counts == {i: hits(phrase(i)) for i in first}
    assert "releases/2019-01-27" in out.read_text()


def test_interrupted_run_continues_from_the_cache(server, sources, hpo_ids, tmp_path, capsys) -> None:
    out = tmp_path / "pop.tsv"
    cache = tmp_path / "pop.tsv.cache.jsonl"
    first = [phrase(i) for i in hpo_ids[:20]]
    # the server breaks for good after 7 answers
    server.reset(lambda n, q: (500, {}, b"down") if n > 7 else None)
    one_line_error(popularity(server, sources, out, "--limit", "20", "--retries", "0"), capsys,
                   first[7], "HTTP 500", "7 finished queries are kept in", str(cache))
    assert not out.exists()
    assert cached_queries(cache) == first[:7]
    server.reset()
    code, _, err = run(popularity(server, sources, out, "--limit", "20"), capsys)
    assert code == 0, err
    assert server.queries == first[7:]  # only the missing ones
    assert read_popularity_table(out).counts == {i: hits(phrase(i)) for i in hpo_ids[:20]}


def test_sigterm_mid_run_then_rerun_asks_only_what_is_missing(server, sources, hpo_ids, tmp_path,
                                                             capsys) -> None:
    out = tmp_path / "pop.tsv"
    cache = tmp_path / "pop.tsv.cache.jsonl"
    argv = popularity(server, sources, out, "--limit", "40")
    argv[argv.index("--rate") + 1] = "20"
    code = "import sys; from termnorm_eval.cli import main; main(sys.argv[1:])"
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(6000):  # until the server has answered 5 (a wait, not a timed assertion)
            if len(server.log) >= 5 or proc.poll() is not None:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    asked_before = set(server.queries)
    kept = cached_queries(cache)
    wanted = [phrase(i) for i in hpo_ids[:40]]
    assert 4 <= len(kept) < 40 and kept == wanted[:len(kept)]
    assert set(kept) <= asked_before
    assert not out.exists() and not list(tmp_path.glob(".*.lock"))  # both locks released
    server.reset()
    code_, _, err = run(argv, capsys)
    assert code_ == 0, err
    assert server.queries == wanted[len(kept):]  # nothing the cache holds is asked again
    assert read_popularity_table(out).counts == {i: hits(phrase(i)) for i in hpo_ids[:40]}


def test_a_line_torn_by_a_kill_is_asked_again(server, sources, hpo_ids, tmp_path, capsys) -> None:
    out = tmp_path / "pop.tsv"
    cache = tmp_path / "pop.tsv.cache.jsonl"
    assert run(popularity(server, sources, out, "--limit", "5"), capsys)[0] == 0
    with cache.open("a") as fh:
        fh.write('{"id": "HP:0000008", "query": "\\"HP:00')  # no newline: cut off mid-write
    server.reset()
    code, _, err = run(popularity(server, sources, out, "--limit", "6"), capsys)
    assert code == 0, err
    assert server.queries == [phrase(hpo_ids[5])]
    assert cached_queries(cache) == [phrase(i) for i in hpo_ids[:6]]  # every line whole again


def test_429_with_retry_after_is_waited_out_and_retried(server, sources, hpo_ids, tmp_path, capsys) -> None:
    server.reset(lambda n, q: (429, {"Retry-After": "1"}, b"slow down") if n == 1 else None)
    out = tmp_path / "pop.tsv"
    code, _, err = run(popularity(server, sources, out, "--limit", "2", "--backoff", "0"), capsys)
    assert code == 0, err
    assert server.queries == [phrase(hpo_ids[0]), phrase(hpo_ids[0]), phrase(hpo_ids[1])]
    # with --backoff 0 only the server's Retry-After can explain the pause (server-side arrivals)
    assert server.log[1][0] - server.log[0][0] >= 0.95
    assert read_popularity_table(out).counts == {i: hits(phrase(i)) for i in hpo_ids[:2]}


def test_retry_after_that_is_no_ascii_number_falls_back_to_backoff(server, sources, hpo_ids, tmp_path,
                                                                    capsys) -> None:
    # issue 20, item 15: "²" is a digit to str.isdigit, and float("²") was a ValueError traceback
    server.reset(lambda n, q: (429, {"Retry-After": "\u00b2"}, b"slow down") if n == 1 else None)
    out = tmp_path / "pop.tsv"
    code, _, err = run(popularity(server, sources, out, "--limit", "2"), capsys)
    assert code == 0, err
    assert server.queries == [phrase(hpo_ids[0]), phrase(hpo_ids[0]), phrase(hpo_ids[1])]
    assert read_popularity_table(out).counts == {i: hits(phrase(i)) for i in hpo_ids[:2]}


@pytest.mark.parametrize("body", [b'{"hitCount": 1}', b'{"hitCount": 1'])
def test_a_body_shorter_than_its_content_length_is_retried(server, sources, hpo_ids, tmp_path, capsys,
                                                           body) -> None:
    # issue 20, item 8: the cut-off body that parses was counted (1 for a query of thousands of
    # hits); the one that does not stopped the run without the retries the README promises
    server.reset(lambda n, q: (200, {"Content-Length": "64"}, body) if n == 1 else None)
    out = tmp_path / "pop.tsv"
    code, _, err = run(popularity(server, sources, out, "--limit", "2"), capsys)
    assert code == 0, err
    assert server.queries == [phrase(hpo_ids[0]), phrase(hpo_ids[0]), phrase(hpo_ids[1])]
    assert read_popularity_table(out).counts == {i: hits(phrase(i)) for i in hpo_ids[:2]}


def test_a_body_always_cut_off_is_one_line_after_the_retries(server, sources, tmp_path, capsys) -> None:
    server.reset(lambda n, q: (200, {"Content-Length": "64"}, b'{"hitCount": 7}'))
    one_line_error(popularity(server, sources, tmp_path / "p.tsv", "--limit", "3", "--retries", "2"), capsys,
                   'Europe PMC query "HP:0000001"', "answer cut off after 15 of 64 bytes (Content-Length)",
                   "still after 2 retries")
    assert len(server.log) == 3


@pytest.mark.parametrize(("count", "shown"), [
    ("9" * 4000, "999999999999... (4000 characters)"),  # Python's int() takes it (up to 4300 digits)
    ("9" * 5000, "999999999999... (5000 characters)"),
    (str(2**53), str(2**53)),
])
def test_a_hit_count_beyond_the_bound_is_one_line_and_never_stored(server, sources, tmp_path, capsys, count,
                                                                   shown) -> None:
    # issue 20, item 5: a 4000-digit hitCount was stored in the table (and overflowed int64 later)
    body = f'{{"version": "6.9", "hitCount": {count}}}'.encode()
    server.reset(lambda n, q: (200, {"Content-Type": "application/json"}, body) if n == 2 else None)
    out = tmp_path / "p.tsv"
    one_line_error(popularity(server, sources, out, "--limit", "3"), capsys, 'Europe PMC query "HP:0000002"',
                   f"answered an integer {shown} beyond +-9007199254740991 (2^53-1): no hit count")
    assert len(server.log) == 2 and not out.exists()
    assert cached_queries(out.with_name(out.name + ".cache.jsonl")) == ['"HP:0000001"']


@pytest.mark.parametrize("count", [str(2**53), "9" * 5000])
def test_a_cached_count_beyond_the_bound_is_refused(server, sources, tmp_path, capsys, count) -> None:
    out = tmp_path / "pop.tsv"
    cache = tmp_path / "pop.tsv.cache.jsonl"
    assert run(popularity(server, sources, out, "--limit", "2"), capsys)[0] == 0
    with cache.open("a") as fh:
        fh.write(f'{{"id": "HP:0000003", "query": "\\"HP:0000003\\"", "hitCount": {count}}}\n')
    server.reset()
    one_line_error(popularity(server, sources, out, "--limit", "3"), capsys, f"{cache}:4", "hitCount")
    assert server.queries == []


def test_persistent_500_is_one_line_naming_the_query(server, sources, hpo_ids, tmp_path, capsys) -> None:
    server.reset(lambda n, q: (500, {}, b"oops") if n > 3 else None)
    out = tmp_path / "pop.tsv"
    failing = phrase(hpo_ids[3])
    one_line_error(popularity(server, sources, out, "--limit", "10", "--retries", "2"), capsys,
                   f"Europe PMC query {failing}", "HTTP 500", "after 2 retries (--retries)",
                   f"(concept {hpo_ids[3]})", "3 finished queries are kept")
    assert server.queries[3:] == [failing] * 3  # the first try and two retries, then it stopped
    assert cached_queries(out.with_name(out.name + ".cache.jsonl")) == [phrase(i) for i in hpo_ids[:3]]
    assert not out.exists()


def test_a_client_error_is_not_retried(server, sources, tmp_path, capsys) -> None:
    server.reset(lambda n, q: (400, {}, b"bad query"))
    one_line_error(popularity(server, sources, tmp_path / "p.tsv", "--limit", "3"), capsys,
                   '"HP:0000001"', "HTTP 400")
    assert len(server.log) == 1


def test_cache_of_another_setting_is_refused(server, sources, tmp_path, capsys) -> None:
    out = tmp_path / "pop.tsv"
    cache = tmp_path / "shared.jsonl"
    assert run(popularity(server, sources, out, "--limit", "3", "--cache", str(cache)), capsys)[0] == 0
    before = cache.read_bytes()
    server.reset()
    one_line_error(popularity(server, sources, out, "--limit", "3", "--cache", str(cache), "--query", "name"),
                   capsys, f"--cache {cache}", "another setting", "--query 'id' (this run: 'name')")
    other = server.url.replace("/search", "/other/search")
    one_line_error([*popularity(server, sources, out, "--limit", "3", "--cache", str(cache)),
                    "--base-url", other], capsys, "--base-url", f"(this run: '{other}')")
    one_line_error(popularity(server, sources, out, "--limit", "3", "--cache", str(cache), "--filter",
                              "IN_PMC:Y"), capsys, "--filter None (this run: 'IN_PMC:Y')")
    assert server.queries == [] and cache.read_bytes() == before  # nothing asked, nothing mixed in
    stranger = tmp_path / "notes.jsonl"
    stranger.write_text('{"hello": 1}\n')
    one_line_error(popularity(server, sources, out, "--cache", str(stranger)), capsys,
                   f"{stranger}:1", "not a Europe PMC cache")
    stranger.write_text("my notes, no newline")
    one_line_error(popularity(server, sources, out, "--cache", str(stranger)), capsys,
                   f"{stranger}:1", "not a Europe PMC cache")
    assert stranger.read_text() == "my notes, no newline"  # never overwritten
    stranger.write_text(before.decode() + "not json\n")
    one_line_error(popularity(server, sources, out, "--cache", str(stranger)), capsys,
                   f"{stranger}:5", "not a JSON line")


@pytest.mark.parametrize(("body", "expected"), [
    (b"<html>maintenance</html>", "answered no JSON"),
    (b'{"version": "6.9", "resultList": {}}', "without an integer hitCount (missing)"),
    (b'{"hitCount": "12"}', "without an integer hitCount ('12')"),
    (b'{"hitCount": -1}', "without an integer hitCount (-1)"),
    (b"[1, 2]", "without an integer hitCount (missing)"),
    (b"[" * 200_000, "answered no JSON"),
])
def test_an_answer_that_is_not_europe_pmc_json_is_one_line(server, sources, tmp_path, capsys, body,
                                                           expected) -> None:
    server.reset(lambda n, q: (200, {"Content-Type": "application/json"}, body))
    one_line_error(popularity(server, sources, tmp_path / "p.tsv", "--limit", "3"), capsys,
                   'Europe PMC query "HP:0000001"', expected)
    assert len(server.log) == 1


def test_requests_are_spaced_by_the_rate(server, sources, tmp_path, capsys) -> None:
    argv = popularity(server, sources, tmp_path / "p.tsv", "--limit", "8")
    argv[argv.index("--rate") + 1] = "10"
    assert run(argv, capsys)[0] == 0
    arrivals = [t for t, _ in server.log]
    assert len(arrivals) == 8
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # 0.1 s apart at the client; loopback and thread start-up may shift one arrival a little
    assert min(gaps) >= 0.07, gaps
    assert arrivals[-1] - arrivals[0] >= 0.7 - 0.02, gaps


@pytest.mark.parametrize(("extra", "expected"), [
    (["--query", "title"], "--query 'title': give one of id, name, both"),
    (["--rate", "0"], "--rate 0.0: give a finite number > 0"),
    (["--rate", "nan"], "--rate nan"),
    (["--retries", "-1"], "--retries -1"),
    (["--base-url", "ftp://127.0.0.1/search"], "--base-url 'ftp://127.0.0.1/search'"),
    (["--filter", "  "], "--filter: empty"),
])
def test_bad_options_are_one_line(server, sources, tmp_path, capsys, extra, expected) -> None:
    one_line_error([*popularity(server, sources, tmp_path / "p.tsv"), *extra], capsys, expected)
    assert server.log == []


def test_missing_sources_and_bad_terminology_are_one_line(server, tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(popularity(server, empty, tmp_path / "p.tsv"), capsys, f"--sources {empty}", "hp.obo")
    argv = popularity(server, empty, tmp_path / "p.tsv")
    argv[argv.index("--terminology") + 1] = "mondo"
    one_line_error(argv, capsys, "--terminology 'mondo'")


def test_the_default_endpoint_is_europe_pmc() -> None:
    assert EUROPE_PMC_URL == "https://www.ebi.ac.uk/europepmc/webservices/rest/search"
    url = europepmc.Client().url('"HP:0001250"')
    assert url.startswith(EUROPE_PMC_URL + "?query=%22HP%3A0001250%22&format=json&pageSize=1")
