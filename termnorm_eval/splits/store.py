"""Reading built splits: the one place that knows the on-disk layout.

Layout of a data folder (the shipped one is ``termnorm_eval/data``; ``add-ontology`` writes the
same layout under its output folder)::

    <data_dir>/manifest.json          sources, parameters, per-terminology specs and counts
    <data_dir>/<key>/train.jsonl      one JSON record per concept, sorted by id
    <data_dir>/<key>/val.jsonl

Record fields: ``id``, ``name``, ``synonyms``, ``alt_ids``, ``popularity`` (int), ``bin``
(0 = least popular), ``aspect`` (GO: BP/MF/CC, else null); genes add ``symbol``,
``protein_name`` (null when the GAF gives none), ``prev_symbols``, ``alias_symbols``,
``prev_names``, ``alias_names``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.terminologies import BUILTIN, SPLITS, Terminology, terminology_from_dict

MANIFEST = "manifest.json"
STRATA = ("low", "mid", "high")  # popularity thirds, by bin


def stratum(bin_index: int, n_bins: int = 20) -> str:
    """Popularity third of a bin (0 = least popular): the study's popularity effect in 3 numbers."""
    if not 0 <= bin_index < n_bins:
        raise ValueError(f"bin {bin_index} outside 0..{n_bins - 1}")
    return STRATA[min(2, bin_index * 3 // n_bins)]


class SplitDataError(TermnormError):
    """A data folder is missing, incomplete or malformed."""


def shipped_data_dir() -> Path:
    return Path(str(resources.files("termnorm_eval") / "data"))


def _dir(data_dir: str | Path | None) -> Path:
    return Path(data_dir) if data_dir is not None else shipped_data_dir()


def read_manifest(data_dir: str | Path | None = None) -> dict[str, Any]:
    path = _dir(data_dir) / MANIFEST
    if not path.is_file():
        raise SplitDataError(f"{path}: no split manifest here (build the splits first)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SplitDataError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e


def terminology(key: str, data_dir: str | Path | None = None) -> Terminology:
    """The terminology ``key``: built in, or described by the manifest of ``data_dir``."""
    if data_dir is None and key in BUILTIN:
        return BUILTIN[key]
    spec = read_manifest(data_dir).get("terminologies", {}).get(key, {}).get("spec")
    if spec is None:
        if key in BUILTIN:
            return BUILTIN[key]
        raise SplitDataError(f"{_dir(data_dir) / MANIFEST}: no terminology {key!r}")
    return terminology_from_dict(spec)


def split_path(key: str, split: str, data_dir: str | Path | None = None) -> Path:
    if split not in SPLITS:
        raise SplitDataError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    return _dir(data_dir) / key / f"{split}.jsonl"


@lru_cache(maxsize=64)
def _load(path: Path) -> tuple[dict[str, Any], ...]:
    if not path.is_file():
        raise SplitDataError(f"{path}: split file not found")
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SplitDataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
    return tuple(records)


def load_records(key: str, split: str, data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """All records of one split (a fresh list; the records themselves are shared, don't mutate)."""
    return list(_load(split_path(key, split, data_dir).resolve()))


def available(data_dir: str | Path | None = None) -> list[str]:
    """Terminology keys that have both splits in ``data_dir``."""
    root = _dir(data_dir)
    return sorted(
        p.name for p in root.iterdir()
        if p.is_dir() and all((p / f"{s}.jsonl").is_file() for s in SPLITS)
    ) if root.is_dir() else []
