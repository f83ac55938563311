"""Hostile model responses: bounded extraction cost, and text no encoder can take (lone surrogates,
NUL) flowing from an API-style model through the real harness into the alignment metric."""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from termnorm_eval.harness import extraction
from termnorm_eval.harness.extraction import extract
from termnorm_eval.harness.scoring import score_document, strict_match
from termnorm_eval.terminologies import GENE, GO, id_pattern
from termnorm_eval.text import clean_text

FORMATS: dict[str, tuple[str, ...]] = {
    "go": ("curie", GO.id_prefix, GO.id_local),
    "hgnc": ("curie", GENE.id_prefix, GENE.id_local),
    "symbol": ("symbol",),
    "name": ("name",),
}
SHORT = {"go": "GO:0005634", "hgnc": "HGNC:11998", "symbol": "TP53", "name": "Seizure"}


def _hostile_shapes() -> dict[str, str]:
    """The worst inputs found for each heuristic (the first three were quadratic: 17 s, 0.25 s and
    40 ms on 4000-32,000 characters), plus megabyte-sized ones that only a length cap bounds."""
    return {
        "prefix + 32k spaces": "GO" + " " * 32_000,
        "prefix + 30k mixed whitespace": "HGNC" + " \t\u00a0\u2003" * 7_500 + "x",
        "upper-case run then a letter": "The HGNC symbol is " + "A" * 3_970 + "a",
        "digit run in a symbol": "A" + "0" * 3_990 + "b",
        "orf + digit run": "Corf" + "1" * 3_990 + "b",
        "open braces": "x" + "{" * 100_000,
        "repeated prefixes": "GO " * 100_000,
        "repeated prefix + colon": "HGNC:" * 60_000,
        "prefix + 100k digits": "HGNC:" + "1" * 100_000,
        "100k of one letter": "A" * 100_000,
        "many colons": ":" * 100_000,
        "100k nested brackets": "[" * 100_000,
        "huge JSON": json.dumps({"answer": ["TP53"] * 40_000}),
        "chatty 'is' chain": "The " + "is " * 30_000,
        "quotes": '"“' * 50_000,
        "lone surrogates": "\ud800" * 100_000,
        "mixed unicode": "é核\u200b«»“\u2028" * 20_000,
        "1 MB of prose": "lorem ipsum " * 90_000,
        "1 MB line, answer at the end": "x" * 1_000_000 + " GO:0005634",
    }


def _best(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def test_no_response_costs_much_more_than_a_short_answer() -> None:
    """Issue 9 item 6: each hostile shape, in each answer format, against a short answer measured in
    the same test (a ratio, not an absolute time). Measured here: worst ~0.75 ms, ~500x a short
    answer (~1.4 us); before the fix the first shape alone took 6-17 s (> 1e6x)."""
    calls = [(SHORT[f], args) for f, args in FORMATS.items()] * 50
    short = _best(lambda: [extract(t, *a) for t, a in calls], reps=7) / len(calls)
    worst = (0.0, "")
    for label, text in _hostile_shapes().items():
        for fmt, args in FORMATS.items():
            t = _best(lambda text=text, args=args: extract(text, *args), reps=3)
            worst = max(worst, (t, f"{label} ({fmt})"))
    ratio = worst[0] / short
    # The budget is 5 ms a response, about 5000x a short answer (1-1.5 us); ~10x above what is measured.
    assert ratio < 5000, f"{worst[1]}: {worst[0] * 1e3:.2f} ms = {ratio:.0f}x a short answer"


def test_hostile_shapes_give_the_answers_the_rules_say() -> None:
    shapes = _hostile_shapes()
    assert extract(shapes["1 MB line, answer at the end"], *FORMATS["go"]) == ""  # past the ID scan
    assert extract("lorem ipsum " * 900 + "GO:0005634", *FORMATS["go"]) == "GO:0005634"
    assert extract("GO" + " " * 15_000 + "0005634", *FORMATS["go"]) == "GO:0005634"
    assert extract(shapes["prefix + 32k spaces"] + "0005634", *FORMATS["go"]) == ""  # past the ID scan
    assert extract(shapes["prefix + 100k digits"], *FORMATS["hgnc"]) == ""  # 100k digits: no HGNC ID
    assert extract(shapes["huge JSON"], "symbol") == "" and extract('["TP53"]', "symbol") == "TP53"
    assert extract(shapes["upper-case run then a letter"], "symbol") == ""


def test_identifier_cut_by_the_scan_limit_is_never_shortened() -> None:
    """The ID search sees ``_ID_SCAN`` characters; an ID running into that limit is judged whole
    ("HGNC:12" + "345" must not become HGNC:12, a silent wrong answer)."""
    pad = " " * (extraction._ID_SCAN - len("HGNC:12"))
    text = pad + "HGNC:12345 and more"
    assert text.index("345") == extraction._ID_SCAN
    assert extract(text, *FORMATS["hgnc"]) == "HGNC:12345"
    assert extract(pad + "HGNC:12" + "3" * 1000, *FORMATS["hgnc"]) == ""  # 1000 digits: not an ID
    assert extract(pad + "HGNC:12 is it", *FORMATS["hgnc"]) == "HGNC:12"


# The patterns as they were: the linear rewrites must find exactly the same matches.
OLD_SYMBOL = re.compile(
    r"(?<![A-Za-z0-9_-])[A-Z][A-Z0-9]*(?:orf[0-9]+)?[A-Z0-9]*(?:[-_][A-Z0-9]+)*@?(?![A-Za-z0-9_])"
)
OLD_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


def old_id_regex(local: str) -> re.Pattern[str]:
    """``Terminology.id_regex`` as it was (quadratic on a long whitespace run)."""
    return re.compile(rf"(?<![A-Za-z0-9])GO\s*[:_]?\s*({local})(?![0-9])", re.IGNORECASE)

PIECES = ["A", "B", "0", "1", "orf", "o", "-", "_", "@", "a", " ", "\t", ":", "{", "}", '"', "GO", "go",
          "HP", "0005634", "12", "x", "[", "]", '{"a": "B1"}', "\ud800", "é"]
LOCALS = (r"\d{7}", r"\d{1,6}", r"\d+", r"[_A-Z0-9]+", r":?\d\d", r"\s?\d")


def test_linear_patterns_match_exactly_what_the_originals_matched() -> None:
    rng = random.Random(0)
    for _ in range(20_000):
        s = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))
        spans = [m.span() for m in extraction._SYMBOL.finditer(s)]
        assert spans == [m.span() for m in OLD_SYMBOL.finditer(s)], s
        assert extraction._json_objects(s) == [m.group(0) for m in OLD_JSON_OBJECT.finditer(s)][:3]
        local = LOCALS[rng.randrange(len(LOCALS))]
        old = old_id_regex(local).search(s)
        new = id_pattern("GO", local).search(s)
        assert (old and (old.span(), old.group(1))) == (new and (new.span(), new.group(1))), (s, local)


def test_clean_text() -> None:
    assert clean_text("Seizure") == "Seizure" and clean_text("é核") == "é核"
    assert clean_text("Seiz\ud800ure") == "Seiz\ufffdure"
    assert clean_text("\ud83d\ude00") == "\U0001f600"  # a surrogate pair is the character it encodes
    assert clean_text("\ude00\ud83d") == "\ufffd\ufffd"
    assert clean_text("a\x00b") == "a\ufffdb"


def test_extracted_answers_are_encodable_and_strict_is_unchanged() -> None:
    doc = {"answer": "Seizure", "alternatives": ["Seizure"], "answer_kind": "name", "answer_format": "name",
           "stratum": "low", "embedding_model": ""}
    for raw in ["Seiz\ud800ure", "\udcff Seizure", "Seizure\x00", "\ud800" * 10_000]:
        answer = score_document(doc, raw)["alignment"][0]
        answer.encode("utf-8")  # the embedder and the samples writer need this
    assert score_document(doc, "Seizure\ud800")["lenient_match"] == 0.0  # no accidental match
    assert extract("TP53\ud800", "symbol") == "TP53"
    assert extract("\x00GO:0005634\x00", *FORMATS["go"]) == "GO:0005634"
    # The strict rule is untouched, including its length shortcut for names.
    assert strict_match(" SEIZURE ", "Seizure", "name") == 1.0
    assert strict_match("ss", "ß", "name") == 1.0  # casefold grows "ß" to "ss"
    assert strict_match("\u03b9\u0308\u0301", "\u0390", "name") == 1.0  # ... and "ΐ" to 3 characters
    assert strict_match("ssss", "ß", "name") == 0.0
    assert strict_match("x" * 1_000_000, "Seizure", "name") == 0.0


# --- through the real harness ------------------------------------------------------------------

def _with_lone(text: str, escape: str, at_end: bool = True) -> str:
    """What an API client returns for JSON holding a ``\\udXXX`` escape: Python's json accepts it."""
    body = json.dumps(text)[1:-1]
    return json.loads(f'"{body}{escape}"' if at_end else f'"{escape} {body}"')


# Response of document i (doc_id): only the first is exactly the gold answer.
RESPONSES: list[Callable[[str], str]] = [
    lambda gold: gold,
    lambda gold: _with_lone(gold, "\\ud800"),
    lambda gold: "\x00" + gold + "\x00",
    lambda gold: _with_lone(gold, "\\udcff", at_end=False),
    lambda gold: gold + " " + "y" * 10_000,
    lambda gold: _with_lone(gold, "\\ude00\\ud83d", at_end=False),
]
TASKS = {"termnorm_go_term2id_val": "curie", "termnorm_gene_name2symbol_val": "symbol",
         "termnorm_hpo_id2term_val": "name"}


def _api_like_lm() -> Any:
    from lm_eval.api.model import LM

    class ApiLikeLM(LM):
        """Passes through whatever the (simulated) API's JSON decoded to."""

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            return [RESPONSES[r.doc_id % len(RESPONSES)](r.doc["answer"]) for r in requests]

        def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
            raise NotImplementedError

        def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
            raise NotImplementedError

    return ApiLikeLM()


def test_lone_surrogates_from_an_api_model_still_give_results(repo_root: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9 item 7: before, the answer-similarity (``alignment``) aggregation raised in the
    tokenizer after all generations and the run produced no results."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from termnorm_eval.embedding_model import ENV_VAR

    monkeypatch.delenv(ENV_VAR, raising=False)
    tm = TaskManager(include_path=str(repo_root / "tasks"), include_defaults=False)
    res = lm_eval.simple_evaluate(model=_api_like_lm(), tasks=list(TASKS), task_manager=tm,
                                  limit=len(RESPONSES), log_samples=True, bootstrap_iters=0)
    f = "extract"
    for task, fmt in TASKS.items():
        row = res["results"][task]
        assert res["n-samples"][task]["effective"] == len(RESPONSES)
        assert row[f"exact_match,{f}"] == pytest.approx(1 / len(RESPONSES))  # only the exact copy
        lenient, align = row[f"lenient_match,{f}"], row[f"alignment,{f}"]
        assert math.isfinite(align) and -1.0 <= align <= 1.0 + 1e-6
        if fmt == "name":  # a replaced character is never dropped into a match
            assert lenient == pytest.approx(1 / len(RESPONSES)) and 1 / len(RESPONSES) < align < 1.0
        else:  # the identifier or symbol is found next to the garbage
            assert lenient == 1.0
        if fmt == "curie":  # every extracted ID is the gold one
            assert align == pytest.approx(1.0, abs=1e-5)
        for s in res["samples"][task]:
            # what --log_samples writes for our filter must be encodable (lm_eval writes UTF-8)
            json.dumps(s["filtered_resps"], ensure_ascii=False).encode("utf-8")
            json.dumps(s["resps"], ensure_ascii=False).encode("utf-8")  # the raw ones too
            json.dumps(s["alignment"], ensure_ascii=False).encode("utf-8")
