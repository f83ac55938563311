"""Run a study's steps in order under the study folder's lock, skipping the finished ones.

A step is skipped when its folder's record holds the same inputs; otherwise it runs (the keys
that differ are said) into a staged sibling that replaces its folder in one rename, record
inside, so an interrupted step leaves the previous complete folder or none. Training writes in
its folder through finetune (checkpoints; a rerun continues from the last one). ``--only`` and
``--from`` pick steps by name (``train-go``) or kind (``train``); a step whose inputs come from a
step that is not finished is refused in one line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from termnorm_eval import atomic
from termnorm_eval.errors import TermnormError
from termnorm_eval.study import records
from termnorm_eval.study.config import StudyConfig
from termnorm_eval.study.steps import KINDS, Context, Step, make_context, plan


def _say(msg: str) -> None:
    print(f"termnorm study: {msg}", file=sys.stderr, flush=True)


def _matches(step: Step, wanted: str) -> bool:
    return step.name == wanted or step.kind == wanted


def choose(steps: list[Step], only: str | None, start: str | None) -> list[Step]:
    """The steps to consider this run (the others are neither run nor checked)."""
    if only is not None and start is not None:
        raise TermnormError("--only and --from: give one of them")
    wanted = only or start
    if wanted is None:
        return steps
    if not any(_matches(s, wanted) for s in steps):
        names = ", ".join(s.name for s in steps)
        raise TermnormError(f"{'--only' if only else '--from'} {wanted}: no such step in this study "
                            f"(steps: {names}; kinds: {', '.join(KINDS)})")
    if only is not None:
        return [s for s in steps if _matches(s, only)]
    first = next(i for i, s in enumerate(steps) if _matches(s, wanted))
    return steps[first:]


def is_finished(ctx: Context, step: Step) -> bool:
    rec = records.read_record(ctx.out / step.name)
    return rec is not None and rec["inputs"] == step.inputs


def run_study(cfg: StudyConfig, only: str | None = None, start: str | None = None) -> Path:
    """Run (or finish) the study; returns the study folder."""
    ctx = make_context(cfg)
    steps = plan(ctx)
    chosen = choose(steps, only, start)
    config = cfg.to_dict()
    out = ctx.out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TermnormError(f"--out {out}: cannot create its folder ({e.strerror})") from None
    for note in records.check_study_folder(out, config):  # refuse a foreign folder before locking
        _say(note)
    with atomic.output_lock(out, "--out"):
        records.check_study_folder(out, config)  # again, under the lock: the answer that counts
        atomic.check_replaceable(out, "--out")
        out.mkdir(exist_ok=True)
        records.write_study_file(out, config)
        known = {s.name for s in steps} | {records.STUDY_FILE, "report.md"}
        others = sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and p.name not in known)
        if others:  # e.g. a terminology dropped from the config: its folders stay, untouched
            _say(f"kept, not part of this config: {', '.join(others)}")
        started = time.perf_counter()
        ran = 0
        for i, step in enumerate(chosen, 1):
            ran += _run_step(ctx, step, i, len(chosen))
        records.write_study_file(out, config)
        _say(f"done: {ran} step(s) run, {len(chosen) - ran} reused, {time.perf_counter() - started:.0f} s; "
             f"{out / 'report.md'}")
    return out


def _run_step(ctx: Context, step: Step, i: int, n: int) -> int:
    """Run ``step`` unless finished; 1 if it ran."""
    folder = ctx.out / step.name
    atomic.recover(folder)  # what an interrupted run of this step left (we hold the study lock)
    head = f"[{i}/{n}] {step.name}"
    old = records.read_record(folder)
    lost = step.kind == "report" and not (ctx.out / "report.md").is_file()  # report.md removed by hand
    if old is not None and old["inputs"] == step.inputs and not lost:
        _say(f"{head}: finished earlier, reused")
        return 0
    for dep in step.depends:
        if not is_finished(ctx, ctx.steps[dep]):
            raise TermnormError(f"step {step.name} needs step {dep}, which is not finished; run it first "
                                f"(--from {dep}, or without --only/--from)")
    if old is not None:
        changed = records.differences(old["inputs"], step.inputs)
        _say(f"{head}: inputs changed ({', '.join(changed[:6])}{', ...' if len(changed) > 6 else ''}); "
             "running it again")
    _say(f"{head}: {step.describe}")
    t0 = time.perf_counter()
    if step.staged:
        with atomic.staged_folder(folder) as stage:
            outputs = step.run(step, stage)
            report_md = outputs.pop("report_md", None)
            records.write_record(stage, records.make_record(step.name, step.inputs,
                                                            time.perf_counter() - t0, outputs))
            atomic.replace_folder(stage, folder)
        if report_md is not None:  # the top-level report, once report/ (its figures) is in place
            atomic.write_file(ctx.out / "report.md", report_md)
    else:
        outputs = step.run(step, folder)
        records.write_record(folder, records.make_record(step.name, step.inputs, time.perf_counter() - t0,
                                                         outputs))
    _say(f"{head}: finished in {time.perf_counter() - t0:.0f} s")
    return 1
