"""The output directory of a run: who owns it, where its checkpoints are, where to resume.

Layout::

    <output_dir>/termnorm_run.json       written before training: what this run is (fingerprint)
    <output_dir>/checkpoints/checkpoint-N  Trainer checkpoints (adapter + optimizer + RNG state)
    <output_dir>/adapter_model.safetensors, adapter_config.json, tokenizer files,
    <output_dir>/termnorm_manifest.json   written last: the run is finished

A folder holding a different run, a finished run, or anything else is refused (one-line error)
before any model is loaded, so nothing of value is overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError

RUN_FILE = "termnorm_run.json"
MANIFEST_FILE = "termnorm_manifest.json"
CHECKPOINTS = "checkpoints"
# Settings that don't change what is learned: a resumed run may differ in these.
NOT_FINGERPRINTED = frozenset({"resume", "output_dir", "save_steps", "save_total_limit", "logging_steps",
                               "keep_checkpoints"})


@dataclass(frozen=True)
class RunState:
    output_dir: Path
    resume_from: Path | None  # last checkpoint, when resuming
    fresh: bool


def fingerprint(config: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {
        "config": {k: v for k, v in sorted(config.items()) if k not in NOT_FINGERPRINTED},
        "data": data,
    }


def last_checkpoint(output_dir: Path) -> Path | None:
    root = output_dir / CHECKPOINTS
    if not root.is_dir():
        return None
    done = [p for p in root.glob("checkpoint-*")
            if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[-1])) if done else None


def inspect(output_dir: str | Path, fp: dict[str, Any], resume: bool) -> RunState:
    """Decide between a fresh run and a resumed one; refuse anything else. Writes nothing."""
    out = Path(output_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise TermnormError(f"{out}: output path exists and is not a directory")
    entries = [p for p in out.iterdir()] if out.is_dir() else []
    if not entries:
        if resume:
            print(f"termnorm-finetune: nothing to resume in {out}; starting a new run")
        return RunState(out, None, True)
    run_file = out / RUN_FILE
    if not run_file.is_file():
        raise TermnormError(f"{out}: output directory is not empty and holds no termnorm-finetune run; "
                            "choose another --output-dir")
    if (out / MANIFEST_FILE).is_file():
        raise TermnormError(f"{out}: output directory holds a finished run ({MANIFEST_FILE}); "
                            "choose another --output-dir")
    try:
        stored = json.loads(run_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TermnormError(f"{run_file}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not resume:
        raise TermnormError(f"{out}: output directory holds an unfinished run; add --resume to continue it, "
                            "or choose another --output-dir")
    diffs = _differences(stored.get("fingerprint", {}), fp)
    if diffs:
        raise TermnormError(f"{out}: holds another run (differs in {', '.join(diffs)}); "
                            "resume it with its own settings or choose another --output-dir")
    return RunState(out, last_checkpoint(out), False)


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for section in ("config", "data"):
        sa, sb = a.get(section, {}), b.get(section, {})
        for k in sorted(set(sa) | set(sb)):
            if sa.get(k) != sb.get(k):
                out.append(k)
    return out


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def claim(state: RunState, fp: dict[str, Any]) -> None:
    """Mark the directory as this run's (main process only)."""
    state.output_dir.mkdir(parents=True, exist_ok=True)
    if state.fresh:
        stamp = {"format": "termnorm-finetune-run/1", "fingerprint": fp}
        write_json_atomic(state.output_dir / RUN_FILE, stamp)


def move_into_place(tmp_dir: Path, output_dir: Path) -> None:
    """Move every file of a finished save into the output dir; the manifest goes last."""
    files = sorted(p for p in tmp_dir.iterdir() if p.name != MANIFEST_FILE)
    for p in files:
        target = output_dir / p.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(p, target)
    if (tmp_dir / MANIFEST_FILE).is_file():
        os.replace(tmp_dir / MANIFEST_FILE, output_dir / MANIFEST_FILE)
    shutil.rmtree(tmp_dir, ignore_errors=True)
