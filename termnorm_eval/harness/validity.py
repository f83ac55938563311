"""What a wrong answer is: one validity category per document (names in ``validity_names``).

A document names its release index by digest (``doc["release"]``); the data loader registers
where that index lives (``register``), and the classification looks the extracted answer up there:
a real identifier of another concept (of an ontology: the gold's parent, child, other ancestor or
descendant, sibling, or an unrelated term, by is_a in the same release), an obsolete one, an invented
one. Documents of a data folder without an index (hand-written or older builds) get no validity
metrics at all, never a guess.

Cost per document: a few dictionary lookups and two bounded regex scans of the response's first
``_HEAD`` characters, and for a wrong live ontology identifier the ancestors of the gold and of the
answer (``_relation``); the index is loaded once per process (``release_index.load``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from termnorm_eval.harness import validity_names as names
from termnorm_eval.splits import release_index
from termnorm_eval.splits.release_index import ReleaseIndex, owners
from termnorm_eval.terminologies import id_pattern
from termnorm_eval.text import normalize_text

_HEAD = 4000  # what the other-terminology scan sees (the extraction's heuristics see as much)
_registered: dict[str, Path] = {}  # index digest -> file
# digest -> loaded index (None: no index of this process has it), so that no document pays for a
# file stat or a hash: the digest names the content
_loaded: dict[str, ReleaseIndex | None] = {}

# An identifier of some other terminology: an upper-case prefix (or a known mixed-case one), a
# colon or underscore, digits. Upper case only, so "Answer: 12" is not taken for one.
_OTHER_CURIE = re.compile(
    r"(?<![A-Za-z0-9])([A-Z][A-Z0-9]{1,15}|NCBITaxon|NCBIGene|UniProtKB|Orphanet|MeSH)\s?[:_]\s?\d{2,}"
)
# Refusals and empty answers, as the extracted answer line reads them (folded).
_REFUSALS = frozenset({
    "none", "null", "nil", "n/a", "na", "-", "unknown", "not known", "not available", "not applicable",
    "no answer", "no id", "no identifier", "not found", "invalid", "invalid term", "unknown term",
})
_REFUSAL_START = ("i don't know", "i do not know", "i'm sorry", "i am sorry", "sorry", "i cannot", "i can't",
                  "i am unable", "i'm unable", "unable to", "i'm not sure", "i am not sure", "there is no")


def register(index_path: Path) -> str:
    """Make an index reachable by digest (what documents carry); returns the digest."""
    digest = release_index.digest_of(index_path)
    _registered[digest] = index_path
    if digest in _loaded and _loaded[digest] is None:  # a miss remembered before it was known
        del _loaded[digest]
    return digest


def index_for(digest: str, terminology: str) -> ReleaseIndex | None:
    """The index a document names; the shipped one is found without registration (documents scored
    in another process than the one that loaded them)."""
    if digest in _loaded:
        return _loaded[digest]
    path = _registered.get(digest)
    if path is None:
        from termnorm_eval.splits.store import shipped_data_dir

        shipped = shipped_data_dir() / terminology / release_index.FILE_NAME
        if shipped.is_file() and register(shipped) == digest:
            path = shipped
    index = release_index.load(path) if path is not None else None
    if index is not None and index.digest != digest:  # rebuilt since it was registered
        index = None
    _loaded[digest] = index
    return index


def is_refusal(answer: str) -> bool:
    folded = normalize_text(answer.strip("\"'`*_ "))
    return not folded or folded in _REFUSALS or folded.startswith(_REFUSAL_START)


def _other_terminology(raw: str, own_prefix: str, taken: str = "") -> bool:
    """An identifier of another terminology is in the response (``taken``: only one whose prefix the
    symbol extraction took for the answer, as "HP" from HP:0001250)."""
    own = own_prefix.casefold()
    return any(m.group(1).casefold() != own and (not taken or m.group(1) == taken)
               for m in _OTHER_CURIE.finditer(raw, 0, _HEAD))


def _one_digit_off(answer: str, gold: str) -> bool:
    """Same prefix and length, exactly one digit substituted (GO:0005634 vs GO:0005643 is two)."""
    a_prefix, _, a_local = answer.partition(":")
    g_prefix, _, g_local = gold.partition(":")
    if a_prefix != g_prefix or len(a_local) != len(g_local) or not a_local.isdigit():
        return False
    return sum(x != y for x, y in zip(a_local, g_local, strict=True)) == 1


def _prompt_locals(doc: dict[str, Any], shown: str | None) -> list[str]:
    """Local parts of this terminology's identifiers in the prompt the model saw (the example)."""
    pattern = id_pattern(doc["id_prefix"], doc.get("id_local") or r"\d+")
    return [m.group(1) for m in pattern.finditer(doc["question"] if shown is None else shown)]


def _in_prompt(answer: str, doc: dict[str, Any], shown: str | None) -> bool:
    """The answer is an identifier the prompt itself shows (the ``e.g. GO:1234567`` example)."""
    return any(f"{doc['id_prefix']}:{local}" == answer for local in _prompt_locals(doc, shown))


def _copies_prompt_digits(raw: str, doc: dict[str, Any], shown: str | None) -> bool:
    """No identifier extracted, but the response repeats the local part of one the prompt shows
    ("... is 1234567." after "e.g. GO:1234567": SmolLM2's most common answer)."""
    head = raw[:_HEAD]
    return any(re.search(rf"(?<![0-9]){re.escape(local)}(?![0-9])", head)
               for local in _prompt_locals(doc, shown))


def _identifier_category(doc: dict[str, Any], answer: str, index: ReleaseIndex, shown: str | None) -> str:
    # the gold concept: an identifier direction's answer is its id (item_id names the document, which
    # in a user's mention table is one of several asking about the concept)
    item = doc["answer"]
    if _in_prompt(answer, doc, shown):
        return "prompt_example"
    status = index.status.get(answer)
    concept = index.concept(answer)
    gold_aspect = index.aspect.get(item, "")
    other_aspect = bool(gold_aspect) and index.aspect.get(concept, "") != gold_aspect
    relation = None
    if status in ("live", "alt") and concept != item and not other_aspect:
        relation = _relation(index, item, concept)
    # A relative before a near miss: 8% of the gold terms' parents and children are one digit off
    # them (terms made together got neighbouring numbers), and the relation is what is known.
    if relation is not None and relation != "wrong_unrelated":
        return relation
    if _one_digit_off(answer, doc["answer"]):
        return "near_miss"
    if status is None:
        return "nonexistent"
    if status == "obsolete":
        return "obsolete"
    if concept == item:  # an alt_id of the gold term that lenient_match did not take: cannot happen
        return "lenient_only"
    if other_aspect:
        return "wrong_other_aspect"
    return relation or "wrong_real"


def _relation(index: ReleaseIndex, gold: str, other: str) -> str | None:
    """The is_a relation of a live term to the gold term (both primary ids); None when the index has
    no hierarchy (genes, an index written before the parents column): never a guess.

    Cost: two upward closures (a few dozen terms each in GO and HPO), only for a wrong live answer;
    never the downward closure, which near a root is a scan of the ontology."""
    if not index.parents:
        return None
    gold_parents = index.parents_of(gold)
    if other in gold_parents:
        return "wrong_parent"
    other_parents = index.parents_of(other)
    if gold in other_parents:
        return "wrong_child"
    if other in index.ancestors(gold):
        return "wrong_ancestor"
    if gold in index.ancestors(other):
        return "wrong_descendant"
    if not set(gold_parents).isdisjoint(other_parents):
        return "wrong_sibling"
    return "wrong_unrelated"


def _symbol_category(doc: dict[str, Any], answer: str, index: ReleaseIndex) -> str:
    # An alias of the gold gene itself also lands in wrong_real: lenient_match accepts previous
    # symbols only (aliases are shared between genes), and the shares must add up to it.
    if owners(index.symbols, answer):
        return "wrong_real"
    if owners(index.previous, answer):
        return "obsolete"
    return "nonexistent"


def _name_category(doc: dict[str, Any], answer: str, index: ReleaseIndex) -> str:
    others = [o for o in owners(index.names, answer) if o != doc["item_id"]]
    return "other_concept" if others else "not_a_name"


def classify(doc: dict[str, Any], raw: str, answer: str, strict: float, lenient: float,
             index: ReleaseIndex, shown: str | None = None) -> str:
    """The one category of a scored document (``raw``: the trimmed response; ``answer``: extracted;
    ``shown``: the prompt the model saw, when it is not ``doc["question"]``)."""
    if strict:
        return "correct"
    if lenient:
        return "lenient_only"
    fmt = doc["answer_format"]
    if not answer or is_refusal(answer):
        if fmt != "name" and _other_terminology(raw, doc["id_prefix"]):
            return "other_terminology"
        if fmt == "curie" and not answer and _copies_prompt_digits(raw, doc, shown):
            return "prompt_example"
        return "no_answer"
    if fmt == "curie":
        return _identifier_category(doc, answer, index, shown)
    if fmt == "symbol":
        if _other_terminology(raw, doc["id_prefix"], taken=answer):
            return "other_terminology"
        return _symbol_category(doc, answer, index)
    return _name_category(doc, answer, index)


def validity_metrics(doc: dict[str, Any], raw: str, answer: str, strict: float,
                     lenient: float, shown: str | None = None) -> dict[str, float]:
    """``validity_<category>`` for every category of both answer kinds: 1.0 for the document's own,
    else 0.0, and ``hierarchy_credit``; empty when its data folder has no release index.

    Every category, not only those of the document's kind: lm-eval averages a metric over the
    documents that report it, task by task and in a group over the tasks that have it; with a key
    missing from the name tasks a group row of identifier and name tasks would average each
    category over other tasks, and its shares would not add up to 1. ``hierarchy_credit`` likewise
    on every document (the strict score where there is no hierarchy)."""
    digest = doc.get("release") or ""
    index = index_for(digest, doc["terminology"]) if digest else None
    if index is None:
        return {}
    category = classify(doc, raw, answer, strict, lenient, index, shown)
    return {**_ROWS[category], names.CREDIT: hierarchy_credit(category, raw, answer, strict, index)}


def hierarchy_credit(category: str, raw: str, answer: str, strict: float, index: ReleaseIndex) -> float:
    """1.0 strict-correct; 0.5 for a parent or child given as strict wants the gold: the trimmed
    response is exactly the term's own identifier (not an alt_id, not in a sentence); else 0."""
    if strict:
        return 1.0
    close = category in names.CLOSE_CATEGORIES and raw == answer and index.status.get(answer) == "live"
    return names.CLOSE_CREDIT if close else 0.0


# The metrics of each category, made once: per document only a copy.
_ROWS = {category: {m: float(c == category) for c, m in zip(names.CATEGORIES, names.METRICS, strict=True)}
         for category in names.CATEGORIES}
