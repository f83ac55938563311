"""Which concepts a fine-tuned run's adapter was trained on (issue 21 review).

The transfer table's "trained concept" cells score only the documents whose concept (``item_id``, the
record's id) the adapter trained through the label direction the cell's mention direction mirrors:
``termnorm-finetune --limit-pairs N`` without ``--mention-tasks`` trains the first N label documents,
and ``--limit N`` on a mention task then asks mostly other concepts; an adapter of another terminology
(the study's ``cross_eval``) trained none of them.

termnorm-finetune writes ``termnorm_manifest.json`` into the adapter folder (``peft=`` of the run's
model_args). It records the terminology, the label directions, the pairs per direction and what chose
them (``limit_pairs``, ``mention_tasks``, the data folder, the training split's sha256), but not the
record ids. Until it does (``data.trained_record_ids``: label direction -> record ids, read first when
present), they are rebuilt with finetune's own choice (``finetune.data.build_training_set``) on a training
split with the recorded sha256 (the recorded data folder, else the shipped one), and must give the
recorded pairs per direction. Anything else (no adapter, no manifest, another split) is "not known",
with the reason, never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError

RECORD_IDS = "trained_record_ids"  # the manifest field (data.<it>) that would list them


@dataclass(frozen=True)
class Trained:
    """What a run's adapter trained: its terminology and, per label direction, the record ids."""

    terminology: str | None = None  # None: not known
    ids: Mapping[str, frozenset[str]] | None = None  # label direction -> record ids; None: not known
    why: str = ""  # why ``ids`` (or the terminology) is not known
    source: str = ""  # where it was read

    @property
    def records(self) -> int | None:
        """Distinct concepts trained (any direction); None when not known."""
        return None if self.ids is None else len(set().union(*self.ids.values()))

    def to_dict(self) -> dict[str, Any]:
        return {"terminology": self.terminology, "source": self.source, "records": self.records,
                "pairs_per_direction": None if self.ids is None else {d: len(v) for d, v in self.ids.items()},
                "not_known": self.why or None}


def of_pairs(key: str, pairs: Iterable[tuple[str, str]], source: str) -> Trained:
    """From (direction, record id) pairs, as ``TrainingSet.pairs`` holds them."""
    ids: dict[str, set[str]] = {}
    for direction, record in pairs:
        ids.setdefault(direction, set()).add(record)
    return Trained(key, {d: frozenset(v) for d, v in ids.items()}, source=source)


def _rebuilt(path: Path, data: dict[str, Any], settings: dict[str, Any]) -> Trained:
    """The record ids, rebuilt from the manifest's settings on a training split with its sha256."""
    from finetune.data import build_training_set
    from termnorm_eval.sources.mirrors import sha256_file
    from termnorm_eval.splits import store

    key = data["terminology"]
    limit = data.get("limit_pairs")
    if limit is not None and "mention_tasks" not in settings:
        return Trained(key, why=f"{path}: made before mention_tasks was recorded, so which records "
                                f"limit_pairs {limit} chose is not known", source=str(path))
    recorded = data.get("data_dir")
    for data_dir in dict.fromkeys([recorded if isinstance(recorded, str) else None, None]):
        try:
            split = store.split_path(key, "train", data_dir)
            if not split.is_file() or sha256_file(split) != data.get("train_split_sha256"):
                continue
            tset = build_training_set(key, list(data.get("directions") or []) or None, data_dir, chat=False,
                                      limit_pairs=limit, mention_tasks=bool(settings.get("mention_tasks")))
        except (TermnormError, OSError, ValueError) as e:
            return Trained(key, why=f"{path}: its training records cannot be rebuilt ({e})", source=str(path))
        if tset.pairs_per_direction != data.get("train_pairs_per_direction"):
            return Trained(key, why=f"{path}: rebuilt, its settings give other pairs per direction "
                                    f"({tset.pairs_per_direction}) than it records", source=str(path))
        return of_pairs(key, tset.pairs, str(path))
    return Trained(key, why=f"{path}: its training split (sha256 {data.get('train_split_sha256')}) is not "
                            "here", source=str(path))


def from_manifest(adapter: str | Path) -> Trained:
    """What the adapter folder's manifest says it trained."""
    from finetune.rundir import MANIFEST_FILE

    path = Path(adapter) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Trained(why=f"{path}: not found (an adapter made elsewhere?)")
    except (OSError, ValueError) as e:
        return Trained(why=f"{path}: not readable ({type(e).__name__})")
    data = manifest.get("data") if isinstance(manifest, dict) else None
    settings = manifest.get("hyperparameters") if isinstance(manifest, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("terminology"), str):
        return Trained(why=f"{path}: no data.terminology (not a termnorm-finetune manifest?)")
    key = data["terminology"]
    listed = data.get(RECORD_IDS)
    if isinstance(listed, dict) and all(isinstance(v, list) for v in listed.values()):
        return of_pairs(key, ((d, str(i)) for d, v in listed.items() for i in v), str(path))
    return _rebuilt(path, data, settings if isinstance(settings, dict) else {})


def of_run(adapter: str | None) -> Trained:
    """What the adapter of a run (``peft=`` of its model_args) trained."""
    if not adapter:
        return Trained(why="no adapter (peft=) in its model_args: an API or merged model?")
    return from_manifest(adapter)

