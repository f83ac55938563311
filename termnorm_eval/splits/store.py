"""Reading built splits: the one place that knows the on-disk layout.

Layout of a data folder (the shipped one is ``termnorm_eval/data``; ``add-ontology`` writes the
same layout under its output folder)::

    <data_dir>/manifest.json          sources, parameters, per-terminology specs and counts
    <data_dir>/<key>/train.jsonl      one JSON record per concept, sorted by id
    <data_dir>/<key>/val.jsonl
    <data_dir>/<key>/test.jsonl       (instead of train and val) a user's mentions (add-mentions)
    <data_dir>/<key>/index.tsv.gz     every id, name and symbol of the release (``release_index``)

Record fields: ``id``, ``name``, ``synonyms``, ``alt_ids``, ``popularity`` (int, what the bins
rank by), ``popularity_secondary`` (int, what breaks its ties), ``bin`` (0 = least popular, or
the ``unannotated`` bin when the manifest labels bin 0 so; GO: the bin within its aspect),
``aspect`` (GO: BP/MF/CC, else null), ``mentions`` (``{kind: form}``: the one form each mention
direction asks about the concept, only the kinds it has a usable form of; ``splits.mentions``);
ontology records add ``synonym_types`` (``{synonym: OBO synonym type}``, ``""`` when untyped); genes
add ``symbol``, ``protein_name`` (null when the GAF gives none), ``prev_symbols`` (those no other gene
owns), ``alias_symbols``. A user's mention table (``user_mentions``, ``test.jsonl``) has one record per
scored row: ``popularity`` and ``bin`` null (no stratum), ``mentions.user`` the row's mention and
``item_id`` naming the document (the same concept may be asked through several mentions). The
manifest's ``terminologies.<key>.mention_kinds`` (``{kind: {split: concepts with a form}}``, only kinds
some split has) says which mention tasks the terminology can have; ``terminologies.<key>.mentions``
holds the rule, the seed and the coverage per stratum.

The popularity strata (low/mid/high) are thirds of the build's own bin count (``bin_count``, from
the manifest), and the record caches are keyed on each file's identity (``file_key``), so a
rebuild in the same process is seen at once.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.terminologies import ALL_SPLITS, BUILTIN, SPLITS, Terminology, terminology_from_dict

MANIFEST = "manifest.json"
STRATA = ("low", "mid", "high")  # popularity thirds, by bin
NO_STRATUM = "none"  # a record without popularity (a user's mention: popularity and bin null)
DEFAULT_BINS = 20  # the built-in design; only for manifests that do not say (hand-written ones)

FileKey = tuple[str, int, int, int, int]


class SplitDataError(TermnormError):
    """A data folder is missing, incomplete or malformed."""


def stratum(bin_index: int, n_bins: int = DEFAULT_BINS) -> str:
    """Popularity third of a bin (0 = least popular) among ``n_bins`` (see ``bin_count``)."""
    if not 0 <= bin_index < n_bins:
        raise ValueError(f"bin {bin_index} outside 0..{n_bins - 1}")
    return STRATA[min(2, bin_index * 3 // n_bins)]


def file_key(path: Path, what: str = "split file") -> FileKey:
    """The identity of a file's current content, for caches keyed by file.

    A rebuild replaces the file (new inode, size or mtime), so a cache keyed on this never serves
    records of an earlier build at the same path.
    """
    path = path.resolve()
    try:
        st = path.stat()
    except OSError:
        raise SplitDataError(f"{path}: {what} not found") from None
    return str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def shipped_data_dir() -> Path:
    return Path(str(resources.files("termnorm_eval") / "data"))


def _dir(data_dir: str | Path | None) -> Path:
    return Path(data_dir) if data_dir is not None else shipped_data_dir()


def index_path(key: str, data_dir: str | Path | None = None) -> Path:
    """Where a terminology's release index lives (``release_index``; older builds have none)."""
    from termnorm_eval.splits.release_index import FILE_NAME

    return _dir(data_dir) / key / FILE_NAME


def read_manifest(data_dir: str | Path | None = None) -> dict[str, Any]:
    """The manifest of ``data_dir`` as a JSON object (its fields are checked where they are used)."""
    path = _dir(data_dir) / MANIFEST
    if not path.is_file():
        raise SplitDataError(f"{path}: no split manifest here (build the splits first)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise SplitDataError(f"{path}: not a split manifest (binary data, not UTF-8 text: {e.reason} at "
                             f"byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise SplitDataError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise SplitDataError(f"{path}: not a split manifest (JSON nested too deeply)") from None
    if not isinstance(manifest, dict):
        raise SplitDataError(f"{path}: not a split manifest (a JSON {json_kind(manifest)}, expected an "
                             "object with parameters, sources and terminologies)")
    return manifest


def json_kind(value: Any) -> str:
    kinds = {list: "list", str: "string", bool: "boolean", int: "number", float: "number", dict: "object"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def bin_count(key: str, data_dir: str | Path | None = None) -> int:
    """How many popularity bins the build of ``key`` in ``data_dir`` was sampled with.

    The strata (``stratum``) are thirds of *this* count: ``add-ontology --bins 10`` gives 10 bins,
    a build whose values filled fewer bins than asked for (merged) or that added the unannotated bin
    has its own count. Read from the terminology's per-bin facts, which must agree with the count
    the manifest declares for it (``binning.bins``; builds before v2: ``parameters.bins``); a
    manifest that says neither (hand-written) gets ``DEFAULT_BINS``, and ``stratum`` rejects any
    bin outside it.
    """
    path = _dir(data_dir) / MANIFEST
    manifest = read_manifest(data_dir)
    entry = manifest.get("terminologies", {})
    entry = entry.get(key) if isinstance(entry, dict) else None
    facts = entry.get("bins") if isinstance(entry, dict) else None
    binning = entry.get("binning") if isinstance(entry, dict) else None
    params = manifest.get("parameters")
    where = "parameters.bins"
    given = params.get("bins") if isinstance(params, dict) else None
    if isinstance(binning, dict) and "bins" in binning:
        where, given = f"terminologies.{key}.binning.bins", binning["bins"]
    if facts is not None and (not isinstance(facts, list) or not facts):
        raise SplitDataError(f"{path}: terminologies.{key}.bins must be a non-empty list of per-bin facts")
    if given is not None and (not isinstance(given, int) or isinstance(given, bool) or given < 1):
        raise SplitDataError(f"{path}: {where} must be a positive integer (got {given!r})")
    if facts is not None and given is not None and len(facts) != given:
        raise SplitDataError(f"{path}: {where} is {given} but terminologies.{key}.bins lists "
                             f"{len(facts)} bins")
    if facts is not None:
        return len(facts)
    return given if given is not None else DEFAULT_BINS


def terminology(key: str, data_dir: str | Path | None = None) -> Terminology:
    """The terminology ``key``: built in, or described by the manifest of ``data_dir`` (its ``spec``,
    and its ``mention_kinds`` for the mention directions)."""
    if data_dir is None and key in BUILTIN:
        return BUILTIN[key]
    entry = read_manifest(data_dir).get("terminologies", {}).get(key, {})
    spec = entry.get("spec")
    if spec is None:
        if key in BUILTIN:
            return BUILTIN[key]
        raise SplitDataError(f"{_dir(data_dir) / MANIFEST}: no terminology {key!r}")
    try:  # an added ontology has the mention tasks its build found forms for
        return terminology_from_dict(spec, entry.get("mention_kinds"))
    except ValueError as e:
        raise SplitDataError(f"{_dir(data_dir) / MANIFEST}: terminologies.{key}: {e}") from None


def split_path(key: str, split: str, data_dir: str | Path | None = None) -> Path:
    if split not in ALL_SPLITS:
        raise SplitDataError(f"unknown split {split!r} (known: {', '.join(ALL_SPLITS)})")
    return _dir(data_dir) / key / f"{split}.jsonl"


@lru_cache(maxsize=64)
def _load(key: FileKey) -> tuple[dict[str, Any], ...]:
    path = Path(key[0])
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
    return list(_load(file_key(split_path(key, split, data_dir))))


def available(data_dir: str | Path | None = None) -> list[str]:
    """Terminology keys that have both splits in ``data_dir``."""
    root = _dir(data_dir)
    return sorted(
        p.name for p in root.iterdir()
        if p.is_dir() and all((p / f"{s}.jsonl").is_file() for s in SPLITS)
    ) if root.is_dir() else []
