"""Text from outside (model responses, results files, command-line labels) made safe to encode.

Python strings may hold lone UTF-16 surrogates ("\\ud800" in an API model's JSON, undecodable bytes
in argv under ``surrogateescape``); UTF-8 cannot encode them, so tokenizers, file writers and the
terminal raise on them. Every place that embeds, tokenizes or writes such text goes through
``clean_text``.
"""

from __future__ import annotations

import re

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
