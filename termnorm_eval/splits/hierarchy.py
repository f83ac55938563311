"""The ``is_a`` hierarchy of an ontology: the HPO pool (below Phenotypic abnormality) and the
relatives the release index answers for (``release_index.ReleaseIndex.ancestors`` and kin).

The readers keep each term's ``is_a`` parents (``OboTerm.parents``), read with the rest of the
file: no second pass over it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from termnorm_eval.sources.obo import OboTerm


def closure(start: str, step: Callable[[str], Iterable[str]]) -> set[str]:
    """Everything reachable from ``start`` by repeated ``step`` (parents: the ancestors; children:
    the descendants), ``start`` itself excluded unless a cycle leads back to it."""
    found: set[str] = set()
    stack = [start]
    while stack:
        for nxt in step(stack.pop()):
            if nxt not in found:
                found.add(nxt)
                stack.append(nxt)
    return found


def children_of(terms: Iterable[OboTerm]) -> dict[str, list[str]]:
    """Parent id -> the ids of the terms that name it in an ``is_a`` line."""
    children: defaultdict[str, list[str]] = defaultdict(list)
    for t in terms:
        for p in t.parents:
            children[p].append(t.id)
    return children


def descendants(terms: Iterable[OboTerm], root: str) -> set[str]:
    """Ids of the terms with an ``is_a`` path up to ``root`` (``root`` itself excluded)."""
    children = children_of(terms)
    return closure(root, lambda i: children.get(i, ())) - {root}
