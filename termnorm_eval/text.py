"""Text from outside (model responses, results files, command-line labels, ontology files) made safe.

Python strings may hold lone UTF-16 surrogates ("\\ud800" in an API model's JSON, undecodable bytes
in argv under ``surrogateescape``); UTF-8 cannot encode them, so tokenizers, file writers and the
terminal raise on them. Every place that embeds, tokenizes or writes such text goes through
``clean_text``. Names and synonyms of ontologies and gene tables go through ``clean_label`` as
they are read. Counts read from files and servers are whole numbers ``0..MAX_COUNT`` (``parse_count``,
``is_count``, ``json_int``).
"""

from __future__ import annotations

import re
from typing import TypeGuard

REPLACEMENT = "\ufffd"
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _join_pair(m: re.Match[str]) -> str:
    return m.group(0).encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def clean_text(text: str) -> str:
    """``text`` as valid Unicode: lone surrogates and NUL become U+FFFD; unchanged when already clean.

    A surrogate *pair* (two code points that UTF-16 reads as one character) becomes that character.
    NUL is replaced too: C-string code truncates at it, and a replaced character never makes an
    answer equal a gold answer by accident (removing it could).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # the rare case; a plain-string sub, not an error handler per character
        text = _SURROGATE.sub(REPLACEMENT, _PAIR.sub(_join_pair, text))
    return text.replace("\x00", REPLACEMENT) if "\x00" in text else text


TRAILING = ".,;:!?"


def normalize_text(text: str) -> str:
    """Case- and whitespace-insensitive form of a name or symbol: what the lenient score compares, and
    what the release index looks names up by."""
    return " ".join(text.split()).rstrip(TRAILING).strip().casefold()


# Every other C0 or C1 control character (ESC, BEL, DEL, ...): invisible, or a terminal command.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")


def clean_label(text: str) -> str:
    """A name or synonym as one line of plain text, what a model can be asked for and answer with.

    Each run of whitespace, line and paragraph breaks included (tab, CR, LF, VT, FF, the separators
    U+001C-001F, NEL U+0085, no-break and other Unicode spaces, U+2028, U+2029), becomes one space, and
    none is left at either end; every other control character (C0, DEL, C1: ESC, BEL, ...) is removed;
    lone surrogates become U+FFFD (``clean_text``). A label with none of these is returned as it is
    (as every label of the releases the shipped splits come from is). An empty result means the file
    gave no usable label.
    """
    if text.isprintable() and not text.startswith(" ") and not text.endswith(" ") and "  " not in text:
        return text  # nearly every label: one C-speed scan
    return " ".join(_CONTROL.sub("", clean_text(text)).split())


MAX_COUNT = 2**53 - 1
"""The largest count (Europe PMC hit count, annotation count, popularity) taken from a file or server.

2^53-1 is the largest integer every JSON reader holds exactly (I-JSON, RFC 7493; a float64 column in
pandas too), far inside pyarrow's int64 even summed over a term's alt_ids, and far above any real
count (Europe PMC's largest hit counts are below 10^8)."""
_COUNT_DIGITS = len(str(MAX_COUNT))


def parse_count(text: str) -> int | None:
    """``text`` (ASCII digits only) as a count ``0..MAX_COUNT``; None if it is none.

    The digits are counted before ``int`` converts them: Python refuses more than 4300 with a
    ValueError, and fewer take quadratic time.
    """
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > _COUNT_DIGITS:
        return None
    value = int(text)
    return value if value <= MAX_COUNT else None


def is_count(value: object) -> TypeGuard[int]:
    """A whole number ``0..MAX_COUNT`` (a JSON value; ``True`` is no count)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def shown_number(text: str) -> str:
    """A number as an error message quotes it: whole if short, else its start and its length."""
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} characters)"


def count_error(value: str, of: str = "") -> str:
    """Why ``value`` is no count, for a message that says where it was (``of``: whose count)."""
    digits = value.isascii() and value.isdigit()
    what = f"count {shown_number(value) if digits else repr(value[:40])}{f' of {of}' if of else ''}"
    if digits:
        return f"{what} is larger than {MAX_COUNT} (2^53-1), the largest count accepted"
    return f"{what} is not a non-negative integer"


class JsonIntegerTooLarge(ValueError):
    """An integer literal in JSON beyond +-MAX_COUNT; ``literal`` is its text."""

    def __init__(self, literal: str) -> None:
        super().__init__(f"integer {shown_number(literal)} beyond +-{MAX_COUNT} (2^53-1)")
        self.literal = literal


def json_int(literal: str) -> int:
    """``parse_int`` for ``json.loads`` of files and answers from outside: integers beyond
    +-MAX_COUNT raise ``JsonIntegerTooLarge`` (before ``int`` spends time on them), never a value
    that no count can be and that overflows int64 columns."""
    value = parse_count(literal.removeprefix("-"))
    if value is None:
        raise JsonIntegerTooLarge(literal)
    return -value if literal.startswith("-") else value
