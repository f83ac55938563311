"""Answer extraction: from a model's free-text response to the answer it meant.

Three answer formats, decided by the direction (see ``answer_format``):

* ``curie`` -- an ontology identifier (GO:0005634, HP:0001250, HGNC:11998). The first match of the
  terminology's ``id_regex`` anywhere in the response (free text or JSON) counts, in canonical form
  (``GO_0005634``, ``go:0005634``, ``GO: 0005634`` and ``GO0005634`` all become ``GO:0005634``).
  An identifier of another ontology is not an answer.
* ``symbol`` -- an HGNC gene symbol (TP53, C1orf112, HLA-A). The answer line itself when it is one
  token; else, in a sentence "The ... is X.", the symbol X after the last "is"; else the first
  symbol-like token (2-25 characters, not a common word such as HGNC or GENE) outside quoted
  echoes of the question.
* ``name`` -- a term or gene name. The answer line: the first non-empty line (or the first string
  value of a JSON object), without "Answer:"-style prefixes, surrounding quotes or markup, and
  trailing punctuation; of a sentence "The ... is X." only X.

Everything here is pure string work on the response; scoring lives in ``scoring``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Literal

from termnorm_eval.terminologies import Terminology

AnswerFormat = Literal["curie", "symbol", "name"]
FORMATS: tuple[str, ...] = ("curie", "symbol", "name")

# Responses longer than this are cut before the line/JSON heuristics (not before the ID search):
# a real answer is short, and hostile 1 MB responses must not cost more than a short one.
_HEAD = 4000

_PREFIX = re.compile(
    r"^\s*(?:(?:the\s+)?(?:final\s+)?answer(?:\s+is)?|gene\s+symbol|symbol|gene\s+name|"
    r"approved\s+name|term\s+name|name|term|identifier|id)\s*[:=]\s*",
    re.IGNORECASE,
)
_QUOTES = "\"'`“”‘’«»*_"
_TRAILING = ".,;:!?。"
_SYMBOL = re.compile(
    r"(?<![A-Za-z0-9_-])[A-Z][A-Z0-9]*(?:orf[0-9]+)?[A-Z0-9]*(?:[-_][A-Z0-9]+)*@?(?![A-Za-z0-9_])"
)
_ONE_TOKEN_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._\-]*")
_MAX_SYMBOL = 25  # the longest approved HGNC symbols have about 20 characters
# Words a chatty answer puts before the symbol ("The HGNC symbol is TP53"); none is an HGNC symbol.
_NOT_SYMBOLS = frozenset(
    {"HGNC", "HUGO", "GENE", "GENES", "SYMBOL", "ID", "THE", "NCBI", "UNIPROT", "DNA", "RNA", "MRNA",
     "HUMAN", "PROTEIN", "OK", "NO", "YES", "NOTE", "ANSWER", "A", "I", "IS", "OF"}
)
_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


@lru_cache(maxsize=64)
def id_pattern(id_prefix: str, id_local: str) -> re.Pattern[str]:
    """The contract's ``Terminology.id_regex`` for a prefix and local-part regex (cached)."""
    return Terminology(
        key="x", label=id_prefix, id_prefix=id_prefix, id_local=id_local, id_example="", directions=()
    ).id_regex


def extract_id(text: str, id_prefix: str, id_local: str) -> str:
    """First identifier of this terminology in ``text``, canonical (``PREFIX:local``); '' if none."""
    m = id_pattern(id_prefix, id_local).search(text)
    return f"{id_prefix}:{m.group(1)}" if m else ""


def _json_strings(text: str) -> list[str]:
    """String values of the first JSON object (or array/string) in ``text``, in order."""
    stripped = text.strip()
    candidates = [stripped] if stripped[:1] in "[{\"" else []
    candidates += [m.group(0) for m in _JSON_OBJECT.finditer(text)][:3]
    for cand in candidates:
        try:
            value = json.loads(cand)
        except (ValueError, RecursionError):
            continue
        out: list[str] = []
        stack = [value]
        while stack:
            v = stack.pop(0)
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, dict):
                stack[:0] = list(v.values())
            elif isinstance(v, list):
                stack[:0] = v
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
    """The answer a response gives, in the form the lenient score compares ('' if none)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if answer_format == "curie":
        if not id_prefix:
            raise ValueError("a curie answer needs the terminology's id_prefix")
        return extract_id(text, id_prefix, id_local or r"\d+")
    if answer_format == "symbol":
        return extract_symbol(text)
    if answer_format == "name":
        return extract_name(text)
    raise ValueError(f"unknown answer format {answer_format!r} (known: {', '.join(FORMATS)})")
