"""Literature popularity: Europe PMC hit counts per concept, with a resumable on-disk cache.

The study counted PubMed Central hits for each concept; Europe PMC's REST search is the open
equivalent (``GET <base>?query=<q>&format=json&pageSize=1&resultType=lite`` answers a JSON object
whose ``hitCount`` is the number of matching articles, abstracts and the full texts it holds).

What is searched (``--query``), always as quoted phrases so that ``HP:0001250`` is no field search:

* ``id``: what papers write for the concept: the identifier (``"HP:0001250"``, ``"GO:0005634"``),
  for genes the approved symbol (``"BRCA1"``, as the study did; papers do not write HGNC ids);
* ``name``: the concept's name (``"Seizure"``);
* ``both``: one query ``"<id>" OR "<name>"``, so an article naming both counts once.

The table is keyed by the record id the build uses (the CURIE; ``HGNC:...`` for genes).

Requests go through ``sources.fetch``'s opener (http(s) only, bounded redirects, a deadline that
a dripping server cannot stretch), at most ``rate`` per second; 429, 5xx, timeouts and broken
connections (a body shorter than its Content-Length too) are retried with capped exponential backoff
and jitter, honouring ``Retry-After``. A ``hitCount`` is a whole number ``0..text.MAX_COUNT``.

The cache is JSON lines: the first records the setting (terminology, query, filter, base URL), each
further one a finished query and its count, appended and flushed at once, so an interrupted run
loses at most the query in flight and a rerun sends only the missing ones. A cache made with
another setting is refused, never mixed in; counts are reused only for the very same query text.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from termnorm_eval.errors import TermnormError
from termnorm_eval.text import MAX_COUNT, JsonIntegerTooLarge, is_count, json_int, parse_count

EUROPE_PMC_URL = "https://www.ebi.ac.uk/europepmc/webservices/rest/search"
QueryKind = Literal["id", "name", "both"]
QUERY_KINDS: tuple[QueryKind, ...] = ("id", "name", "both")
TERMINOLOGIES = ("go", "hpo", "gene")
CACHE_FORMAT = "termnorm-europepmc-cache/1"
MAX_WAIT_S = 120.0  # no single backoff or Retry-After wait is longer than this
MAX_ANSWER_BYTES = 1 << 20  # a pageSize=1 lite answer is about 2 KB
_QUERY_HELP = {
    "id": 'the identifier as a quoted phrase (genes: the approved symbol), e.g. "{id}"',
    "name": 'the name as a quoted phrase, e.g. "{name}"',
    "both": 'identifier OR name, each a quoted phrase (an article naming both counts once), e.g. {both}',
}

# (done, total) -> None
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Concept:
    id: str  # the table key: the build's record id
    literal: str  # how papers write it: the CURIE, for genes the symbol
    name: str


def _phrase(text: str) -> str:
    # a quote inside would end the phrase; the search tokenizer drops punctuation anyway
    return '"' + " ".join(text.replace('"', " ").split()) + '"'


def query_text(concept: Concept, kind: QueryKind, restrict: str | None = None) -> str:
    """The Europe PMC query for ``concept`` (``restrict``, e.g. ``IN_PMC:Y``, is ANDed on)."""
    q = {"id": _phrase(concept.literal), "name": _phrase(concept.name),
         "both": f"{_phrase(concept.literal)} OR {_phrase(concept.name)}"}[kind]
    return f"({q}) AND ({restrict})" if restrict else q


def describe_query(kind: QueryKind, example: Concept | None = None) -> str:
    ex = example or Concept("HP:0001250", "HP:0001250", "Seizure")
    return f"{kind}: " + _QUERY_HELP[kind].format(id=ex.literal, name=ex.name, both=query_text(ex, "both"))


# ---------------------------------------------------------------- which concepts


@dataclass(frozen=True)
class ConceptList:
    concepts: list[Concept]  # sorted by id
    source: Path
    data_version: str | None


def concepts(terminology: str, sources_dir: Path) -> ConceptList:
    """The concepts a build of ``terminology`` can draw from the files in ``sources_dir``.

    The build's own candidate rules, without annotation counts: live, named, unambiguous terms of
    the OBO release (GO: with an aspect); approved protein-coding HGNC genes. For genes the build's
    list can only be smaller (protein names from the GAF may make more names ambiguous).
    """
    from termnorm_eval.sources.gaf import GafAnnotations
    from termnorm_eval.sources.hgnc import read_hgnc
    from termnorm_eval.sources.obo import read_obo
    from termnorm_eval.splits.build import SOURCE_NAMES
    from termnorm_eval.splits.candidates import gene_candidates, go_aspect, ontology_candidates
    from termnorm_eval.terminologies import BUILTIN

    if terminology not in TERMINOLOGIES:
        raise TermnormError(f"--terminology {terminology!r}: give one of {', '.join(TERMINOLOGIES)}")
    if not sources_dir.is_dir():
        raise TermnormError(f"--sources {sources_dir}: folder not found (run `termnorm data fetch` first)")
    role = {"go": "go_obo", "hpo": "hpo_obo", "gene": "hgnc"}[terminology]
    present = [sources_dir / n for n in SOURCE_NAMES[role] if (sources_dir / n).is_file()]
    if len(present) != 1:
        names = " or ".join(SOURCE_NAMES[role])
        why = "holds more than one of" if present else "has none of"
        raise TermnormError(f"--sources {sources_dir}: {why} {names} (for {terminology})")
    path = present[0]
    if terminology == "gene":
        table = read_hgnc(path)
        records = gene_candidates(table.genes, GafAnnotations(path=path, data_version=None)).records
        version = table.data_version
        found = [Concept(i, r["symbol"], r["name"]) for i, r in records.items()]
    else:
        ontology = read_obo(path, prefix=BUILTIN[terminology].id_prefix)
        version = ontology.data_version
        records = ontology_candidates(ontology, {}, go_aspect if terminology == "go" else None).records
        found = [Concept(i, i, r["name"]) for i, r in records.items()]
    if not found:
        raise TermnormError(f"{path}: no {terminology} concepts to count")
    return ConceptList(sorted(found, key=lambda c: c.id), path, version)


# ---------------------------------------------------------------- the cache


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


@dataclass
class Cache:
    """Finished queries of one setting, appended to ``path`` one JSON line each."""

    path: Path
    setting: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)  # query text -> hitCount
    started: str = ""  # date of the cache's first line
    _fh: IO[str] | None = None

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path, setting: dict[str, Any]) -> Iterator[Cache]:
        """Load ``path`` (or start it) and keep it open for appending. The caller holds its lock."""
        from termnorm_eval import atomic

        cache = cls(path, setting)
        if path.is_dir():
            raise TermnormError(f"--cache {path}: is a folder; give a file")
        good = cache._load() if path.exists() else 0
        try:
            if not good:
                cache.started = _today()
                head = {"format": CACHE_FORMAT, **setting, "started": cache.started}
                atomic.write_file(path, json.dumps(head, ensure_ascii=False) + "\n")
            elif good < path.stat().st_size:  # a line torn by a kill: never confirmed, asked again
                os.truncate(path, good)
            cache._fh = path.open("a", encoding="utf-8")
        except OSError as e:
            raise TermnormError(f"--cache {path}: cannot write ({e.strerror or e})") from None
        try:
            yield cache
        finally:
            cache._fh.close()

    def _load(self) -> int:
        """Read the cache; returns the length of its complete lines (0: empty, start afresh)."""
        try:
            raw = self.path.read_bytes()
        except OSError as e:
            raise TermnormError(f"--cache {self.path}: cannot read ({e.strerror or e})") from None
        good = raw.rfind(b"\n") + 1  # what follows the last newline was being written when killed
        if raw and not good:  # our first line is written whole (atomically): this is someone else's file
            raise TermnormError(f"{self.path}:1: not a Europe PMC cache of `termnorm data popularity`")
        for n, line in enumerate(raw[:good].splitlines(), 1):
            where = f"{self.path}:{n}"
            try:
                entry = json.loads(line, parse_int=json_int)
            except JsonIntegerTooLarge as e:
                raise TermnormError(f"{where}: {e}: no hitCount") from None
            except (UnicodeDecodeError, ValueError):
                raise TermnormError(f"{where}: not a JSON line (not a Europe PMC cache of "
                                    "`termnorm data popularity`)") from None
            if n == 1:
                self._check_head(entry, where)
                continue
            if not isinstance(entry, dict):
                entry = {}
            q, count = entry.get("query"), entry.get("hitCount")
            if not isinstance(q, str) or not is_count(count):
                raise TermnormError(f"{where}: expected {{\"query\": text, \"hitCount\": integer "
                                    f"0..{MAX_COUNT}}}")
            self.counts[q] = count
        return good

    def _check_head(self, head: Any, where: str) -> None:
        if not isinstance(head, dict) or head.get("format") != CACHE_FORMAT:
            raise TermnormError(f"{where}: not a Europe PMC cache of `termnorm data popularity` "
                                f"(no {CACHE_FORMAT!r} first line)")
        differ = [f"--{k.replace('_', '-')} {head.get(k)!r} (this run: {v!r})"
                  for k, v in self.setting.items() if head.get(k) != v]
        if differ:
            raise TermnormError(f"--cache {self.path}: made with another setting, refused rather than "
                                f"mixed in: {'; '.join(differ)}; give another --cache or delete it")
        self.started = str(head.get("started") or "")

    def add(self, concept_id: str, query: str, count: int) -> None:
        assert self._fh is not None
        self._fh.write(json.dumps({"id": concept_id, "query": query, "hitCount": count},
                                  ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.counts[query] = count


# ---------------------------------------------------------------- the client


class _Transient(Exception):
    """A failure worth retrying (429, 5xx, timeout, broken connection)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    seconds = parse_count(value)  # ASCII digits only: "²" is a digit to str.isdigit, not to float
    if seconds is not None:
        return float(seconds)
    from email.utils import parsedate_to_datetime

    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@dataclass
class Client:
    """Europe PMC hit counts, at most ``rate`` requests per second, retried on transient failures."""

    base_url: str = EUROPE_PMC_URL
    rate: float = 5.0  # requests per second, retries included
    retries: int = 5
    backoff: float = 1.0  # seconds before the first retry; doubled each time, jittered, capped
    timeout: float = 30.0  # seconds for one request, redirects and body included
    sleep: Callable[[float], None] = time.sleep
    _next_at: float = 0.0
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        from termnorm_eval.sources.fetch import check_url

        check_url(self.base_url, "--base-url")
        for what, value, low in (("--rate", self.rate, None), ("--backoff", self.backoff, 0.0),
                                 ("--timeout", self.timeout, None)):
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and (value > 0 if low is None else value >= low)):
                bound = "> 0" if low is None else ">= 0"
                raise TermnormError(f"{what} {value!r}: give a finite number {bound}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise TermnormError(f"--retries {self.retries!r}: give a whole number >= 0")

    def url(self, query: str) -> str:
        from urllib.parse import urlencode

        params = {"query": query, "format": "json", "pageSize": "1", "resultType": "lite"}
        return f"{self.base_url}?{urlencode(params)}"

    def hit_count(self, query: str) -> int:
        """``hitCount`` for ``query``; a one-line error once the retries are spent."""
        attempt = 0
        while True:
            self._wait_turn()
            try:
                return self._parse(query, self._get(self.url(query), query))
            except _Transient as e:
                if attempt >= self.retries:
                    raise TermnormError(f"Europe PMC query {query}: {e.reason}, still after {self.retries} "
                                        "retries (--retries)") from None
                if e.retry_after is not None:  # the server's word beats our guess
                    delay = min(e.retry_after, MAX_WAIT_S)
                else:
                    delay = min(self.backoff * 2 ** attempt, MAX_WAIT_S) * self._rng.uniform(0.5, 1.0)
                self.sleep(delay)
                attempt += 1

    def _wait_turn(self) -> None:
        now = time.monotonic()
        if self._next_at > now:
            self.sleep(self._next_at - now)
        self._next_at = max(now, self._next_at) + 1.0 / self.rate

    def _get(self, url: str, query: str) -> bytes:
        import http.client
        import urllib.error
        import urllib.request

        from termnorm_eval.sources.fetch import Deadline, DownloadLimits, bounded_opener

        limits = DownloadLimits(max_bytes=MAX_ANSWER_BYTES, deadline_s=self.timeout,
                                read_timeout_s=self.timeout, max_redirects=5)
        deadline = Deadline(self.timeout)
        too_slow = _Transient(f"no complete answer within {self.timeout:g} s (--timeout)")
        body = bytearray()
        try:
            with deadline:
                req = urllib.request.Request(url, headers={"User-Agent": "termnorm-eval",
                                                           "Accept": "application/json"})
                opener = bounded_opener(url, limits, deadline)
                with opener.open(req, timeout=deadline.timeout(self.timeout)) as resp:
                    while True:
                        if not deadline.before_read(self.timeout):
                            raise too_slow
                        block = resp.read1(MAX_ANSWER_BYTES + 1 - len(body))
                        if not block:
                            break
                        body += block
                        if len(body) > MAX_ANSWER_BYTES:
                            raise TermnormError(f"Europe PMC query {query}: answer larger than "
                                                f"{MAX_ANSWER_BYTES} bytes, not a search result")
                    missing = resp.length  # what Content-Length announced and never came (None: not given)
                if deadline.expired:  # the end of the data may be the timer's shutdown
                    raise too_slow
                if missing:  # a cut-off body may still parse ('{"hitCount": 12' of 123...): never used
                    raise _Transient(f"answer cut off after {len(body)} of {len(body) + missing} bytes "
                                     "(Content-Length)")
        except urllib.error.HTTPError as e:
            retry_after = _retry_after(e.headers.get("Retry-After") if e.headers else None)
            e.close()
            reason = f"HTTP {e.code} {' '.join(str(e.reason).split())}"
            if e.code == 429 or e.code >= 500:
                raise _Transient(reason, retry_after) from None
            raise TermnormError(f"Europe PMC query {query}: {reason} from {self.base_url}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            if deadline.passed():
                raise too_slow from None
            reason = getattr(e, "reason", None) or f"{type(e).__name__}: {e}"
            raise _Transient(" ".join(str(reason).split()) or type(e).__name__) from None
        return bytes(body)

    def _parse(self, query: str, body: bytes) -> int:
        try:
            answer = json.loads(body, parse_int=json_int)
        except JsonIntegerTooLarge as e:
            raise TermnormError(f"Europe PMC query {query}: {self.base_url} answered an {e}: no hit "
                                "count") from None
        except (UnicodeDecodeError, ValueError, RecursionError) as e:  # nesting: a hostile server
            raise TermnormError(f"Europe PMC query {query}: {self.base_url} answered no JSON "
                                f"({' '.join(str(e).split())[:80]})") from None
        count = answer.get("hitCount") if isinstance(answer, dict) else None
        if not is_count(count):
            got = "missing" if count is None else repr(count)[:40]
            raise TermnormError(f"Europe PMC query {query}: {self.base_url} answered JSON without an integer "
                                f"hitCount ({got})")
        return count


# ---------------------------------------------------------------- one run


def collect(targets: Sequence[Concept], kind: QueryKind, client: Client, cache: Cache,
            restrict: str | None = None, progress: Progress | None = None) -> tuple[dict[str, int], int]:
    """Counts per concept id, from the cache where it has the query, else asked (and cached).

    Returns the counts and how many were asked. A failure names the query and says what is kept.
    """
    counts: dict[str, int] = {}
    asked = 0
    for n, concept in enumerate(targets, 1):
        q = query_text(concept, kind, restrict)
        if q not in cache.counts:
            try:
                cache.add(concept.id, q, client.hit_count(q))
            except TermnormError as e:
                kept = len(cache.counts)
                raise TermnormError(f"{e} (concept {concept.id}); {kept} finished queries are kept in "
                                    f"{cache.path}, a rerun continues from there") from None
            asked += 1
        counts[concept.id] = cache.counts[q]
        if progress:
            progress(n, len(targets))
    return counts, asked
