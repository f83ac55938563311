"""What makes a step finished: a record of its inputs in its folder.

Each step folder holds ``step.json`` (written last, inside the staged folder that becomes the step
folder in one rename, or, for training, after the adapter is in place) with the step's inputs: the
config subset it uses, the model's identity, the data's sha256, the package version and the
digests of the steps it reads. A step is finished when that record exists and its inputs equal
the ones the current config gives; any difference reruns it, and the keys that differ are said.
A training step also writes ``step.pending.json`` before it starts, so that a rerun knows whether
the checkpoints there belong to the same training (resume) or to another one (start over).

The study folder itself carries ``study.json`` (written with its first step, ``pipeline``): a
folder without it that is not empty is not a study folder, and is refused rather than written into.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from termnorm_eval import __version__, atomic
from termnorm_eval.errors import TermnormError

STUDY_FILE = "study.json"
STUDY_FORMAT = "termnorm-study/1"
RECORD = "step.json"
PENDING = "step.pending.json"
RECORD_FORMAT = "termnorm-study-step/1"


def digest(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (key order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # unreadable: as if absent (the step reruns)


def read_record(folder: Path, name: str = RECORD) -> dict[str, Any] | None:
    data = _read_json(folder / name)
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT or "inputs" not in data:
        return None
    return data


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ (a nested dict is compared key by key)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(prefix + k)
    return out


def make_record(step: str, inputs: dict[str, Any], seconds: float, outputs: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    return {"format": RECORD_FORMAT, "step": step, "inputs": inputs, "inputs_sha256": digest(inputs),
            "termnorm_eval_version": __version__,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 2), "outputs": outputs or {}}


def write_record(folder: Path, record: dict[str, Any], name: str = RECORD) -> None:
    atomic.write_json(folder / name, record)


def check_study_folder(out: Path, config: dict[str, Any]) -> list[str]:
    """Refuse a folder that is not a study folder; notes on one made by another config or version."""
    if out.exists() and not out.is_dir():
        raise TermnormError(f"--out {out}: exists and is not a folder")
    if out.is_symlink():
        raise TermnormError(f"--out {out}: is a symbolic link; give the real folder")
    if not out.is_dir():
        return []
    entries = [p for p in out.iterdir() if not p.name.startswith(".")]
    study = _read_json(out / STUDY_FILE)
    if not entries:
        return []
    if not isinstance(study, dict) or study.get("format") != STUDY_FORMAT:
        raise TermnormError(f"--out {out}: not empty and not a study folder (no {STUDY_FILE} of a "
                            "termnorm study); choose a new folder")
    notes = []
    if study.get("termnorm_eval_version") != __version__:
        notes.append(f"{out} was made by termnorm-eval {study.get('termnorm_eval_version')} (this is "
                     f"{__version__}): steps whose inputs match are reused, the others rerun")
    old = study.get("config")
    old = old if isinstance(old, dict) else {}
    changed = [k for k in differences(old, config) if k != "out"]
    if changed:
        notes.append(f"{out} was made with another config (differs in {', '.join(changed)}): steps "
                     "whose inputs match are reused, the others rerun")
    return notes


def write_study_file(out: Path, config: dict[str, Any]) -> None:
    atomic.write_json(out / STUDY_FILE, {
        "format": STUDY_FORMAT, "termnorm_eval_version": __version__, "config": config,
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")})
