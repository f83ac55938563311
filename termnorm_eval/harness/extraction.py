"""Answer extraction: from a model's free-text response to the answer it meant.

Three answer formats, decided by the direction (see ``answer_format``):

* ``curie`` -- an ontology identifier (GO:0005634, HP:0001250, HGNC:11998). The first match of
  ``terminologies.id_pattern`` (what ``Terminology.id_regex`` is) in the response's first 20,000
  characters (free text or JSON) counts, in canonical form (``GO_0005634``, ``go:0005634``,
  ``GO: 0005634`` and ``GO0005634`` all become ``GO:0005634``).
  An identifier of another ontology is not an answer.
* ``symbol`` -- an HGNC gene symbol (TP53, C1orf112, HLA-A). The answer line itself when it is one
  token; else, in a sentence "The ... is X.", the symbol X after the last "is"; else the first
  symbol-like token (2-25 characters, not a common word such as HGNC or GENE) outside quoted
  echoes of the question.
* ``name`` -- a term or gene name. The answer line: the first non-empty line (or the first string
  value of a JSON object), without "Answer:"-style prefixes, surrounding quotes or markup, and
  trailing punctuation; of a sentence "The ... is X." only X.

Everything here is pure string work on the response, linear and length-capped so that no response
costs much more than a short one; answers are ``clean_text`` (encodable). Scoring lives in ``scoring``.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from termnorm_eval.terminologies import id_pattern
from termnorm_eval.text import clean_text

AnswerFormat = Literal["curie", "symbol", "name"]
FORMATS: tuple[str, ...] = ("curie", "symbol", "name")

# Work per response is bounded: every pattern below is linear, and each heuristic sees a prefix
# of the response only. Real answers are a line (max_gen_toks is 24-48 tokens); an API model may
# still return megabytes, and no response may cost much more than a short one.
_HEAD = 4000  # what the line/JSON/symbol heuristics see
_ID_SCAN = 20_000  # what the identifier search sees (an ID after pages of chatter still counts)
_ID_MAX = 256  # an identifier cut by _ID_SCAN is judged on this many more characters

_PREFIX = re.compile(
    r"^\s*(?:(?:the\s+)?(?:final\s+)?answer(?:\s+is)?|gene\s+symbol|symbol|gene\s+name|"
    r"approved\s+name|term\s+name|name|term|identifier|id)\s*[:=]\s*",
    re.IGNORECASE,
)
_QUOTES = "\"'`“”‘’«»*_"
_TRAILING = ".,;:!?。"
# Same matches as the obvious ``[A-Z][A-Z0-9]*(?:orf[0-9]+)?[A-Z0-9]*...``, written so that no two
# quantifiers compete for the same characters: that form backtracks quadratically on a long
# upper-case run ("AAAA...a": 0.25 s per 4000 characters).
_SYMBOL = re.compile(
    r"(?<![A-Za-z0-9_-])[A-Z][A-Z0-9]*(?:orf[0-9][A-Z0-9]*)?(?:[-_][A-Z0-9]+)*@?(?![A-Za-z0-9_])"
)
_ONE_TOKEN_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._\-]*")
_MAX_SYMBOL = 25  # the longest approved HGNC symbols have about 20 characters
# Words a chatty answer puts before the symbol ("The HGNC symbol is TP53"); none is an HGNC symbol.
_NOT_SYMBOLS = frozenset(
    {"HGNC", "HUGO", "GENE", "GENES", "SYMBOL", "ID", "THE", "NCBI", "UNIPROT", "DNA", "RNA", "MRNA",
     "HUMAN", "PROTEIN", "OK", "NO", "YES", "NOTE", "ANSWER", "A", "I", "IS", "OF"}
)


def extract_id(text: str, id_prefix: str, id_local: str) -> str:
    """First identifier of this terminology in ``text``, canonical (``PREFIX:local``); '' if none.

    Only the first ``_ID_SCAN`` characters are searched. An identifier that runs into that limit is
    judged on the characters after it, never cut ("HGNC:12|345" must not become HGNC:12).
    """
    pattern = id_pattern(id_prefix, id_local)
    m = pattern.search(text, 0, _ID_SCAN)
    if m and m.end() == _ID_SCAN < len(text):
        end = _ID_SCAN + _ID_MAX
        m = pattern.match(text, m.start(), end)
        if m and m.end() == end < len(text):  # a "local part" this long is no identifier
            m = None
    return f"{id_prefix}:{m.group(1)}" if m else ""


def _json_objects(text: str, limit: int = 3) -> list[str]:
    """The first ``limit`` spans ``{...}`` up to the first ``}`` after each ``{`` (what the lazy
    ``\\{.*?\\}`` finds), without rescanning the text from every ``{`` that has no ``}``."""
    out: list[str] = []
    pos = 0
    while len(out) < limit:
        start = text.find("{", pos)
        end = text.find("}", start + 1) if start >= 0 else -1
        if end < 0:
            break
        out.append(text[start : end + 1])
        pos = end + 1
    return out


def _json_strings(text: str) -> list[str]:
    """String values of the first JSON object (or array/string) in ``text``, in order."""
    stripped = text.strip()
    candidates = [stripped] if stripped[:1] in "[{\"" else []
    candidates += _json_objects(text)
    for cand in candidates:
        try:
            value = json.loads(cand)
        except (ValueError, RecursionError):
            continue
        out: list[str] = []
        stack = [value]  # depth-first, in document order: children pushed reversed, popped from the end
        while stack:
            v = stack.pop()
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, dict):
                stack.extend(reversed(list(v.values())))
            elif isinstance(v, list):
                stack.extend(reversed(v))
        if out:
            return out
    return []


def answer_line(text: str) -> str:
    """The answer as a line: JSON value or first non-empty line, without prefix, quotes, punctuation."""
    head = text[:_HEAD]
    values = _json_strings(head)
    line = values[0] if values else next((ln for ln in head.splitlines() if ln.strip()), "")
    line = " ".join(line.split())  # collapse whitespace, drop tabs/NBSP runs
    for _ in range(6):  # "Answer: Name: X" -> "X"; quotes, markup and prefixes may nest
        before = line
        line = _unquote(_PREFIX.sub("", line).strip().rstrip(_TRAILING).rstrip())
        if line == before:
            break
    return line


def _unquote(line: str) -> str:
    """Drop one pair of surrounding quotes/markup, or one lone unbalanced quote at an end."""
    if len(line) >= 2 and line[0] in _QUOTES and line[-1] in _QUOTES:
        return line[1:-1].strip()
    inner = line[1:-1]
    if line[-1:] and line[-1] in _QUOTES and not any(q in inner for q in _QUOTES):
        return line[:-1].strip()
    if line[:1] and line[0] in _QUOTES and not any(q in inner for q in _QUOTES):
        return line[1:].strip()
    return line


# A chatty sentence ("The HGNC symbol of ... is TP53.", 'The name of HP:0001250 is "Seizure".'):
# the answer follows its last "is". Only sentences that start like an explanation qualify, so
# names that merely contain "is" are kept whole.
_SENTENCE = re.compile(r"^(?:the|its|this|that)\b.*\bis\s*:?\s+(?P<answer>\S.*)$", re.IGNORECASE)
# Quoted spans inside a sentence echo the question (the gene name, the term); an unclosed quote
# (a sentence cut by max_gen_toks) runs to the end.
_ECHO = re.compile(r'"[^"]*(?:"|$)|“[^”]*(?:”|$)')


def sentence_answer(line: str) -> str | None:
    """What a "The ... is X." sentence gives as X (unquoted, no trailing punctuation), else None."""
    m = _SENTENCE.match(line)
    if not m:
        return None
    answer = m.group("answer")
    for _ in range(3):
        before = answer
        answer = _unquote(answer.strip().rstrip(_TRAILING).rstrip())
        if answer == before:
            break
    return answer or None


def extract_name(text: str) -> str:
    line = answer_line(text)
    return sentence_answer(line) or line


def _is_one_symbol(token: str) -> bool:
    return (len(token) <= _MAX_SYMBOL and _ONE_TOKEN_SYMBOL.fullmatch(token) is not None
            and token.upper() not in _NOT_SYMBOLS)


def _first_symbol(text: str) -> str:
    for m in _SYMBOL.finditer(text):
        sym = m.group(0)
        if 2 <= len(sym) <= _MAX_SYMBOL and sym not in _NOT_SYMBOLS:
            return sym
    return ""


def extract_symbol(text: str) -> str:
    """An HGNC gene symbol as written (case kept).

    The answer line when it is one token; else the first symbol after the last "is" of an
    explanatory sentence; else the first symbol outside quoted echoes of the question.
    """
    line = answer_line(text)
    if _is_one_symbol(line):
        return line
    tail = sentence_answer(line)
    if tail:
        if _is_one_symbol(tail):
            return tail
        found = _first_symbol(_ECHO.sub(" ", tail))
        if found:
            return found
    return _first_symbol(_ECHO.sub(" ", line))


def extract(text: str, answer_format: str, id_prefix: str = "", id_local: str = "") -> str:
    """The answer a response gives, in the form the lenient score compares ('' if none).

    The answer is ``clean_text``: it is embedded (answer similarity) and logged, and a lone surrogate from
    an API model's JSON would make the tokenizer or the samples writer raise.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if answer_format == "curie":
        if not id_prefix:
            raise ValueError("a curie answer needs the terminology's id_prefix")
        return clean_text(extract_id(text, id_prefix, id_local or r"\d+"))  # id_local may be any regex
    if answer_format == "symbol":
        return clean_text(extract_symbol(text))
    if answer_format == "name":
        return clean_text(extract_name(text))
    raise ValueError(f"unknown answer format {answer_format!r} (known: {', '.join(FORMATS)})")
