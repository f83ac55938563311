"""Which retriever: its kind, its embedder, and its identity (what a cached index is keyed on).

The identity says everything that changes the scores and nothing that does not: never a path (a model
folder moved elsewhere is the same model; two checkpoints in one folder are not), so a dense index
names its embedder by the sha256 of each of its files (``fingerprint.model_identity``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from termnorm_eval import embedding_model
from termnorm_eval.embedding_model import ModelChoice
from termnorm_eval.errors import TermnormError
from termnorm_eval.retrieval.entries import VERSION as ENTRIES_VERSION

RETRIEVERS = ("bm25", "dense", "hybrid")
RRF_K = 60  # reciprocal rank fusion: sum of 1 / (RRF_K + rank), the constant of Cormack et al. (2009)
RRF_DEPTH = 100  # hits of each retriever fused
# bm25s's parameters, stated here (not left to its defaults) because they are the identity
BM25 = {"k1": 1.5, "b": 0.75, "method": "lucene"}
TOKENS = "fold-split/1"  # bm25.tokens: mentions.fold, split on spaces; 1-character tokens kept


@dataclass(frozen=True)
class RetrieverSpec:
    kind: str
    embedder: ModelChoice | None = None  # dense/hybrid only
    _identity: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, kind: str, embedder: str | None) -> RetrieverSpec:
        """From ``--retriever`` and ``--embedder`` (None: the default model); bad values are one line."""
        if kind not in RETRIEVERS:
            raise TermnormError(f"--retriever {kind}: not a retriever (choose {', '.join(RETRIEVERS)})")
        if kind == "bm25":
            if embedder:
                raise TermnormError(f"--embedder {embedder}: only the dense and hybrid retrievers embed "
                                    "(--retriever bm25 is lexical)")
            return cls(kind)
        choice = embedding_model.resolve(embedder, "--embedder")
        folder = Path(choice.spec).expanduser()
        # A hub id would be looked up on the network and named by no file content: refused.
        if not folder.is_dir():
            raise TermnormError(f"{_setting(choice)}: not a folder (a local sentence-transformers model "
                                "folder, e.g. the shipped all-MiniLM-L6-v2, SapBERT or BioLORD)")
        if not any((folder / f).is_file() for f in ("modules.json", "config.json")):
            raise TermnormError(f"{_setting(choice)}: not a sentence-transformers model folder (no "
                                "modules.json or config.json)")
        return cls(kind, ModelChoice(str(folder.resolve()), choice.origin))

    def _bm25_identity(self) -> dict[str, Any]:
        from importlib.metadata import version

        major_minor = ".".join(version("bm25s").split(".")[:2])  # a new minor version: a new index
        return {"kind": "bm25", "bm25s": major_minor, **BM25, "tokens": TOKENS, "entries": ENTRIES_VERSION}

    def _dense_identity(self) -> dict[str, Any]:
        from termnorm_eval.fingerprint import model_identity

        assert self.embedder is not None
        return {"kind": "dense", "embedder": self.embedder.name,
                "files": model_identity(Path(self.embedder.spec))["files"], "normalize": True,
                "entries": ENTRIES_VERSION}

    def part(self, kind: str) -> RetrieverSpec:
        """The bm25 or dense part of a hybrid (itself for those)."""
        return self if kind == self.kind else RetrieverSpec(kind, self.embedder if kind != "bm25" else None)

    def identity(self) -> dict[str, Any]:
        """JSON-able, never a path; computed once (hashing the embedder's files)."""
        if not self._identity:
            if self.kind == "bm25":
                ident = self._bm25_identity()
            elif self.kind == "dense":
                ident = self._dense_identity()
            else:
                ident = {"kind": "hybrid", "bm25": self.part("bm25").identity(),
                         "dense": self.part("dense").identity(), "fusion": "rrf", "k": RRF_K,
                         "depth": RRF_DEPTH}
            self._identity.update(ident)
        return dict(self._identity)

    def digest(self) -> str:
        """sha256 of the identity as sorted JSON, 12 hex digits: the cache folder's name."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def label(self) -> str:
        """How tables name it: ``bm25``, ``dense (all-MiniLM-L6-v2)``,
        ``hybrid (bm25 + all-MiniLM-L6-v2)``."""
        if self.embedder is None:
            return self.kind
        name = self.embedder.name
        return f"dense ({name})" if self.kind == "dense" else f"hybrid (bm25 + {name})"


def _setting(choice: ModelChoice) -> str:
    """``--embedder X`` as the user wrote it (the environment variable when that chose the model)."""
    if choice.origin.startswith("--embedder"):
        return f"--embedder {choice.spec}"
    return choice.origin
