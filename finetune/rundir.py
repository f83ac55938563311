"""The output directory of a run: who owns it, where its checkpoints are, where to resume.

Layout::

    <output_dir>/termnorm_run.json       written before training: what this run is (fingerprint)
    <output_dir>/checkpoints/checkpoint-N  Trainer checkpoints (adapter + optimizer + RNG state)
    <output_dir>/adapter_model.safetensors, adapter_config.json, tokenizer files,
    <output_dir>/termnorm_manifest.json   written last: the run is finished

A folder holding a different run, a finished run, or anything else is refused (one-line error)
before any model is loaded, so nothing of value is overwritten. One process at a time writes a
folder: the main process holds ``atomic.output_lock`` on it from before the claim through the final
move (``.<name>.lock`` beside it); the final adapter is staged in a fresh ``.<name>.stage-*``
sibling.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.integrity import checkpoint_problem
from termnorm_eval import atomic
from termnorm_eval.errors import TermnormError

RUN_FILE = "termnorm_run.json"
MANIFEST_FILE = "termnorm_manifest.json"
CHECKPOINTS = "checkpoints"
LOCK_OPTION = "--output-dir"
# Settings that don't change what is learned: a resumed run may differ in these.
NOT_FINGERPRINTED = frozenset({"resume", "output_dir", "save_steps", "save_total_limit", "logging_steps",
                               "keep_checkpoints"})


@dataclass(frozen=True)
class RunState:
    output_dir: Path
    resume_from: Path | None  # last valid checkpoint, when resuming
    fresh: bool
    existed: bool = True  # the folder was there before this run (a fresh run may find it empty)
    notes: tuple[str, ...] = field(default=())  # what to tell the user (main process prints them)


def output_path(output_dir: str | Path) -> Path:
    return Path(output_dir).expanduser().resolve()


def fingerprint(config: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {
        "config": {k: v for k, v in sorted(config.items()) if k not in NOT_FINGERPRINTED},
        "data": data,
    }


def _step(p: Path) -> int | None:
    tail = p.name.rsplit("-", 1)[-1]
    return int(tail) if p.name.startswith("checkpoint-") and tail.isdigit() else None


def pick_checkpoint(output_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint that can be resumed from, and a note for each damaged newer one.

    A checkpoint cut short (disk full, killed while saving) must not end the run: the previous
    one is as good a place to continue from, only a few steps earlier.
    """
    root = output_dir / CHECKPOINTS
    if not root.is_dir():
        return None, []
    found = sorted((p for p in root.iterdir() if p.is_dir() and _step(p) is not None),
                   key=lambda p: _step(p) or 0, reverse=True)
    notes: list[str] = []
    for ckpt in found:
        problem = checkpoint_problem(ckpt)
        if problem is None:
            if notes:
                notes.append(f"resuming from {ckpt.name} instead")
            return ckpt, notes
        notes.append(f"{ckpt.name} is damaged ({problem}); skipping it")
    if found:
        notes.append("no usable checkpoint is left; training again from step 0")
    return None, notes


def inspect(output_dir: str | Path, fp: dict[str, Any], resume: bool) -> RunState:
    """Decide between a fresh run and a resumed one; refuse anything else. Writes nothing.

    Called once early (to refuse before the model loads) and again under the output lock, where
    its answer is the one that counts.
    """
    out = output_path(output_dir)
    if out.exists() and not out.is_dir():
        raise TermnormError(f"{out}: output path exists and is not a directory")
    entries = list(out.iterdir()) if out.is_dir() else []
    if not entries:
        notes = (f"nothing to resume in {out}; starting a new run",) if resume else ()
        return RunState(out, None, True, existed=out.is_dir(), notes=notes)
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
    except (OSError, UnicodeDecodeError) as e:
        raise TermnormError(f"{run_file}: cannot be read ({e})") from None
    if not resume:
        raise TermnormError(f"{out}: output directory holds an unfinished run; add --resume to continue it, "
                            "or choose another --output-dir")
    diffs = _differences(stored.get("fingerprint", {}) if isinstance(stored, dict) else {}, fp)
    if diffs:
        raise TermnormError(f"{out}: holds another run (differs in {', '.join(diffs)}); "
                            "resume it with its own settings or choose another --output-dir")
    ckpt, ckpt_notes = pick_checkpoint(out)
    return RunState(out, ckpt, False, notes=tuple(ckpt_notes))


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for section in ("config", "data"):
        sa, sb = a.get(section, {}), b.get(section, {})
        for k in sorted(set(sa) | set(sb)):
            if sa.get(k) != sb.get(k):
                out.append(k)
    return out


def check_not_locked(output_dir: Path) -> None:
    """Fail at once, before any model is loaded, when another run holds ``output_dir``.

    Only a probe (the lock that counts is taken later, around the claim): it creates nothing, as
    a lock file only exists where some run has written this folder before.
    """
    if atomic.lock_path(output_dir).exists():
        with atomic.output_lock(output_dir, LOCK_OPTION):
            pass


def claim(state: RunState, fp: dict[str, Any]) -> None:
    """Mark the directory as this run's (main process, under the output lock)."""
    state.output_dir.mkdir(parents=True, exist_ok=True)
    if state.fresh:
        stamp = {"format": "termnorm-finetune-run/1", "fingerprint": fp}
        atomic.write_json(state.output_dir / RUN_FILE, stamp)


def unclaim(state: RunState) -> None:
    """Remove what a fresh run wrote (its stamp and checkpoints), so that the same command with
    corrected settings can use the folder. Never called for a resumed run: its checkpoints are
    older work."""
    if not state.fresh:
        return
    out = state.output_dir
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    (out / RUN_FILE).unlink(missing_ok=True)
    if not state.existed:
        with contextlib.suppress(OSError):  # not empty: something else is in there; keep it
            out.rmdir()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def move_into_place(stage: Path, output_dir: Path) -> None:
    """Move every file of a finished save into the output dir; the manifest goes last.

    Each file is on disk before it is moved, so once the manifest (the "finished" mark) is there,
    so is everything it describes. An interruption before that leaves an unfinished run that
    ``--resume`` completes from its last checkpoint.
    """
    files = sorted(p for p in stage.iterdir() if p.name != MANIFEST_FILE)
    for p in files:
        if p.is_file():
            _fsync_file(p)
        target = output_dir / p.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(p, target)
    manifest = stage / MANIFEST_FILE
    if manifest.is_file():
        _fsync_file(manifest)
        os.replace(manifest, output_dir / MANIFEST_FILE)
    with contextlib.suppress(OSError):
        fd = os.open(output_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
