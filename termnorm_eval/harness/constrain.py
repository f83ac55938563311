"""Constrained decoding: a prefix tree of the token sequences of every answer a document may be given.

What a document may answer (``answer_set``), from the release index its documents name
(``doc["release"]``, ``validity.index_for``):

* identifier directions (``answer_format`` curie): every live identifier of the terminology with the
  document's prefix (the extraction reads no other);
* symbol directions: every live approved gene symbol;
* name directions (ID->term): every live label (genes: the approved name);
* the retrieval-augmented tasks (documents with ``candidates``): the shown candidates that are live
  answers of the above; a document shown none gets the whole set.

Each answer is tokenized as it follows a prompt: bare (after a chat template's assistant turn, or a
prompt ending in a space) and after a space ("Answer:" + " GO:0005634"); a sequence counts only when
the tokenizer decodes it back to the answer, which is what lm-eval's response then is. An answer with
no such sequence is *unreachable* (``Tree.unreachable``): a tokenizer that cannot spell any answer
of a set is refused. The tree is flat (CSR arrays: each node's children sorted, a terminal flag per
node), built once per (tokenizer, release index, answer set) and process (``Constrainer``), and
stepped one token per generated position by ``constrained_lm`` (the lm-eval model).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import validity
from termnorm_eval.harness.extraction import FORMATS
from termnorm_eval.harness.rag import CANDIDATES
from termnorm_eval.harness.taskgen import STUDY_PREFIX
from termnorm_eval.splits import release_index

MODEL_NAME = "termnorm-hf"  # the lm-eval model type that constrains (``constrained_lm.TermnormHFLM``)
MODEL_TARGET = "termnorm_eval.harness.constrained_lm:TermnormHFLM"
# What each answer format's answers are called in messages.
WHAT = {"curie": "identifiers", "symbol": "approved symbols", "name": "labels"}
_FULL_TREES = 16  # full-set trees kept per process (GO labels: 7.4 MB with SmolLM2's tokenizer)
_CHUNK = 4096  # texts tokenized at once


def register_model() -> None:
    """Make ``termnorm-hf`` a model type of lm-eval in this process, lazily: the class (and torch) is
    imported only when a run asks for it. lm-eval 0.4.13 reads no model entry points, so whatever runs
    lm-eval for a user (``termnorm eval``, ``python -m termnorm_eval.harness.constrained_lm``) calls this."""
    from lm_eval.api.registry import model_registry

    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=MODEL_TARGET)


@dataclass(frozen=True)
class AnswerSet:
    """The answers a document may be given (hashable: documents with equal sets share one tree)."""

    terminology: str
    release: str  # digest of the release index the documents name
    answer_format: str  # curie, symbol or name
    id_prefix: str = ""  # curie: only identifiers with this prefix and local part
    id_local: str = ""
    candidates: tuple[str, ...] | None = None  # RAG: the answers the prompt shows

    @property
    def full(self) -> AnswerSet:
        """The same set without the candidates: every live answer."""
        return dataclasses.replace(self, candidates=None)

    def describe(self) -> str:
        return f"live {self.terminology} {WHAT[self.answer_format]}"


def answer_set(doc: Mapping[str, Any], task: str) -> AnswerSet:
    """What a termnorm document may answer; a one-line error for a document that cannot be constrained."""
    if task.startswith(f"{STUDY_PREFIX}_"):
        raise TermnormError(f"task {task}: the study family answers in JSON; constrained decoding covers the "
                            "plain (termnorm_*) and retrieval-augmented (termnorm-rag_*) tasks")
    missing = [f for f in ("terminology", "answer_format", "release", "id_prefix") if f not in doc]
    if missing:
        raise TermnormError(f"task {task}: its documents have no {missing[0]} field; {MODEL_NAME} constrains "
                            "termnorm tasks only (use --model hf for others)")
    fmt = str(doc["answer_format"])
    if fmt not in FORMATS:
        raise TermnormError(f"task {task}: answer_format {fmt!r} (known: {', '.join(FORMATS)})")
    if not doc["release"]:
        raise TermnormError(f"task {task}: its documents name no release index (the data folder has no "
                            f"{doc['terminology']}/{release_index.FILE_NAME}); constrained decoding needs "
                            "one (termnorm data build and add-ontology write it)")
    curie = fmt == "curie"
    candidates = doc.get(CANDIDATES)
    return AnswerSet(terminology=str(doc["terminology"]), release=str(doc["release"]), answer_format=fmt,
                     id_prefix=str(doc["id_prefix"]) if curie else "",
                     id_local=str(doc.get("id_local") or r"\d+") if curie else "",
                     candidates=None if candidates is None else tuple(str(c) for c in candidates))


def index_file(spec: AnswerSet) -> Path:
    """The release index file that ``spec`` names, as it is now (a one-line error if it changed)."""
    index = validity.index_for(spec.release, spec.terminology)
    if index is None or release_index.digest_of(index.path) != spec.release:
        raise TermnormError(f"{spec.terminology}: the documents name release index {spec.release}, which is "
                            "not the index there now (stale: rebuilt since the documents were made?); "
                            "run again to load documents of the current index")
    return index.path


def live_answers(spec: AnswerSet) -> tuple[str, ...]:
    """Every live answer of ``spec``'s format in its release index (sorted, distinct; candidates aside)."""
    path = index_file(spec)
    found = _live(str(path), spec.release, spec.answer_format, spec.id_prefix, spec.id_local)
    if not found:
        raise TermnormError(f"{path}: no {spec.describe()} in the release index: nothing to constrain "
                            "the answers to")
    return found


@lru_cache(maxsize=32)
def _live(path: str, _digest: str, fmt: str, prefix: str, local: str) -> tuple[str, ...]:
    rows = [r for r in release_index.read_rows(path) if r[1] == "live"]
    if fmt == "curie":
        pattern = re.compile(rf"{re.escape(prefix)}:(?:{local})")
        out = [r[0] for r in rows if pattern.fullmatch(r[0])]
    elif fmt == "symbol":
        out = [r[5][0] for r in rows if r[5]]
    else:
        out = [r[4][0] for r in rows if r[4]]
    return tuple(sorted(set(out)))


def check_stops(spec: AnswerSet, stops: tuple[str, ...], task: str) -> None:
    """Refuse a stop string that occurs inside an allowed answer: lm-eval would cut the answer there."""
    problem = _stop_inside(spec, stops)
    if problem:
        stop, count, example = problem
        raise TermnormError(f"task {task}: the stop string {stop!r} occurs in {count:,} of the "
                            f"{spec.describe()} (e.g. {example!r}), which generation would cut there; leave "
                            "it out of until")


@lru_cache(maxsize=256)
def _stop_inside(spec: AnswerSet, stops: tuple[str, ...]) -> tuple[str, int, str] | None:
    # a document shown no candidate may be given any answer of the set (``Constrainer.tree``)
    answers = spec.candidates or live_answers(spec.full)
    for stop in dict.fromkeys(s for s in stops if s):
        inside = [a for a in answers if stop in a]
        if inside:
            return stop, len(inside), inside[0]
    return None


@dataclass(frozen=True)
class Tree:
    """A prefix tree over token sequences; node 0 is the root. Children of node ``n``: the edges
    ``offsets[n]:offsets[n + 1]``, their tokens ascending in ``tokens``, their nodes in ``targets``."""

    offsets: np.ndarray  # int64, nodes + 1
    tokens: np.ndarray  # int32, one per edge
    targets: np.ndarray  # int32, one per edge
    terminal: np.ndarray  # bool, one per node: a whole answer ends here
    depth: int  # tokens of the longest answer
    answers: int  # answers it spells
    unreachable: tuple[str, ...] = ()  # answers of the set the tokenizer cannot spell

    @property
    def nodes(self) -> int:
        return len(self.terminal)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.offsets, self.tokens, self.targets, self.terminal))

    def next_tokens(self, node: int) -> np.ndarray:
        return self.tokens[self.offsets[node]:self.offsets[node + 1]]

    def step(self, node: int, token: int) -> int:
        """The child of ``node`` along ``token``; -1 if there is none."""
        lo, hi = int(self.offsets[node]), int(self.offsets[node + 1])
        i = lo + int(np.searchsorted(self.tokens[lo:hi], token))
        return int(self.targets[i]) if i < hi and self.tokens[i] == token else -1

    def accepts(self, ids: Iterable[int]) -> bool:
        """``ids`` spell a whole answer."""
        node = 0
        for t in ids:
            node = self.step(node, int(t))
            if node < 0:
                return False
        return bool(self.terminal[node])


def build_tree(sequences: list[list[int]], answers: int = 0, unreachable: Sequence[str] = ()) -> Tree:
    """The tree of ``sequences`` (each non-empty; sorted here, in place). Sorted, the sequences create
    their nodes in depth-first order, each node's children in ascending token order; a stable sort of
    the edges by parent then lays out every node's children together, still ascending."""
    sequences.sort()
    parent = array("i")  # per node but the root: its parent and the token that leads to it
    token = array("i")
    terminal = bytearray(1)
    path = [0]  # the nodes along the previous sequence
    prev: list[int] = []
    depth = 0
    for seq in sequences:
        if seq == prev:
            continue
        common = 0
        for a, b in zip(prev, seq, strict=False):
            if a != b:
                break
            common += 1
        del path[common + 1:]
        for t in seq[common:]:
            parent.append(path[-1])
            token.append(t)
            terminal.append(0)
            path.append(len(terminal) - 1)
        terminal[path[-1]] = 1
        prev, depth = seq, max(depth, len(seq))
    parents = np.frombuffer(parent, dtype=np.int32) if parent else np.zeros(0, dtype=np.int32)
    order = np.argsort(parents, kind="stable")
    offsets = np.zeros(len(terminal) + 1, dtype=np.int64)
    np.cumsum(np.bincount(parents, minlength=len(terminal)), out=offsets[1:])
    tokens = np.frombuffer(token, dtype=np.int32) if token else np.zeros(0, dtype=np.int32)
    return Tree(offsets=offsets, tokens=tokens[order], targets=(order + 1).astype(np.int32),
                terminal=np.frombuffer(bytes(terminal), dtype=bool), depth=depth, answers=answers,
                unreachable=tuple(unreachable))


def spell(tokenizer: Any, answers: Sequence[str]) -> tuple[list[list[int]], list[str]]:
    """The token sequences of ``answers`` as they follow a prompt (bare and after a space) that the
    tokenizer decodes back to the answer (``skip_special_tokens``, as lm-eval decodes a response), and
    the answers without one."""
    if not answers:
        return [], []
    texts = [*answers, *(f" {a}" for a in answers)]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    encoded: list[list[int]] = []
    for start in range(0, len(texts), _CHUNK):  # in chunks: a batch's encodings (offsets, masks) are large
        chunk = texts[start:start + _CHUNK]
        if backend is not None:  # the same ids, without the Python wrapper's per-text cost (2-3x faster)
            encoded += [e.ids for e in backend.encode_batch(chunk, add_special_tokens=False)]
        else:
            encoded += tokenizer(chunk, add_special_tokens=False)["input_ids"]
    decoded = tokenizer.batch_decode(encoded, skip_special_tokens=True)  # what lm-eval's response reads
    n = len(answers)
    sequences: list[list[int]] = []
    unreachable: list[str] = []
    for i, answer in enumerate(answers):
        ok = [encoded[j] for j in (i, i + n) if encoded[j] and decoded[j].strip() == answer]
        sequences += ok
        if not ok:
            unreachable.append(answer)
    return sequences, unreachable


def tokenizer_identity(tokenizer: Any) -> str:
    """A digest of what decides how text is tokenized and decoded (trees are shared by it)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    h = hashlib.sha256()
    for part in (type(tokenizer).__name__, repr(getattr(tokenizer, "clean_up_tokenization_spaces", None)),
                 spec):
        h.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()[:16]


_full_trees: dict[tuple[str, AnswerSet], Tree] = {}


class Constrainer:
    """The trees of one tokenizer: the full sets shared by the process, candidate trees per instance."""

    def __init__(self, tokenizer: Any, name: str = "") -> None:
        self.tokenizer = tokenizer
        self.name = name or str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
        self.identity = tokenizer_identity(tokenizer)
        self._candidate_trees: dict[AnswerSet, Tree] = {}
        self.built: dict[AnswerSet, Tree] = {}  # the full-set trees this instance used
        self.fallbacks = 0  # RAG documents shown no spellable live candidate: given the full set

    def tree(self, spec: AnswerSet) -> Tree:
        if spec.candidates is None:
            return self._full(spec)
        found = self._candidate_trees.get(spec)
        if found is None:
            live = set(live_answers(spec))
            shown = sorted({c for c in spec.candidates if c in live})
            sequences, unreachable = spell(self.tokenizer, shown)
            if sequences:
                found = build_tree(sequences, len(shown) - len(unreachable), unreachable)
            else:
                self.fallbacks += 1
                found = self._full(spec.full)
            self._candidate_trees[spec] = found
        return found

    def _full(self, spec: AnswerSet) -> Tree:
        key = (self.identity, spec)
        found = _full_trees.get(key)
        if found is None:
            answers = live_answers(spec)
            sequences, unreachable = spell(self.tokenizer, answers)
            if not sequences:
                sample = answers[0]
                shown = self.tokenizer.decode(self.tokenizer.encode(sample, add_special_tokens=False),
                                              skip_special_tokens=True)
                raise TermnormError(f"tokenizer of {self.name}: cannot spell any of the {len(answers):,} "
                                    f"{spec.describe()} (e.g. {sample!r} decodes as {shown!r}); "
                                    "constrained decoding needs a tokenizer that can write them")
            found = build_tree(sequences, len(answers) - len(unreachable), unreachable)
            if len(_full_trees) >= _FULL_TREES:
                del _full_trees[next(iter(_full_trees))]
            _full_trees[key] = found
        if spec not in self.built:
            self.built[spec] = found
            if found.unreachable:
                total = found.answers + len(found.unreachable)
                print(f"termnorm: constrained decoding: the tokenizer of {self.name} cannot spell "
                      f"{len(found.unreachable):,} of the {total:,} {spec.describe()} (e.g. "
                      f"{found.unreachable[0]!r}); no answer can be one of them", file=sys.stderr, flush=True)
        return found

    def summary(self) -> dict[str, Any]:
        """What the run constrained to, for the results' config (``TermnormHFLM.get_model_info``)."""
        sets = {" ".join(p for p in (s.terminology, s.answer_format, s.id_prefix) if p): {
            "answers": t.answers, "unreachable": len(t.unreachable), "tree_nodes": t.nodes,
            "release": s.release} for s, t in self.built.items()}
        return {"answer_sets": sets, "rag_documents": len(self._candidate_trees),
                "rag_full_set_fallbacks": self.fallbacks, "tokenizer": self.identity}
