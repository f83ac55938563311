"""Which terms of an OBO file lie below a root by ``is_a`` (the HPO pool: Phenotypic abnormality).

``sources.obo`` keeps no ``is_a`` lines (no record needs them), so this reads only ``[Stanza]``,
``id`` and ``is_a`` lines, and only from a file ``read_obo`` has already accepted: every line it
could meet has been checked there, so it raises nothing of its own.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

# "[Term]" and other stanza headers, "id: X" and "is_a: X ! comment" (the id is the first token).
_LINES = re.compile(rb"^[ \t]*(?:\[([A-Za-z]+)\]|(id|is_a):[ \t]*([^\s!{]+))", re.MULTILINE)


def descendants(path: Path, root: str) -> set[str]:
    """Ids of the ``[Term]`` stanzas with an ``is_a`` path up to ``root`` (``root`` itself excluded)."""
    children: defaultdict[bytes, list[bytes]] = defaultdict(list)
    current: bytes | None = None
    in_term = False
    for m in _LINES.finditer(path.read_bytes()):
        stanza, tag, value = m.groups()
        if stanza is not None:
            in_term, current = stanza == b"Term", None
        elif in_term and tag == b"id":
            current = value
        elif in_term and current is not None:  # is_a
            children[value].append(current)
    found: set[bytes] = set()
    stack = [root.encode()]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return {i.decode() for i in found}
