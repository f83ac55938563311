"""Run a study's steps in order under the study folder's lock, skipping the finished ones.

A step is skipped when its folder's record holds the same inputs; otherwise it runs (the keys
that differ are said) into a staged sibling that replaces its folder in one rename, record
inside, so an interrupted step leaves the previous complete folder or none. Training writes in
its folder through finetune (checkpoints; a rerun continues from the last one). ``--only`` and
``--from`` pick steps by name (``train-go``) or kind (``train``); a step whose inputs come from a
step that is not finished is refused in one line.

Nothing is written before every input is checked (``make_context``: model, paths, device,
model_args; here: the folder, the steps' places and what they read). ``study.json`` goes in with
the first step that writes (before its folder is put in place, or before a training starts in
its own), so a folder with a step in it is always known as a study folder, and a folder that a
failed first step made is removed again: nothing claims a study that has no step.

Under `accelerate launch` or torchrun (``processes``) the first process runs the study as above;
the others join the training steps only (termnorm-finetune's data parallel) and wait while the
first one evaluates, analyses and reports. What runs next, or the error that stops the study, is
decided by the first process and shared with the others.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path

from termnorm_eval import atomic, processes
from termnorm_eval.errors import TermnormError
from termnorm_eval.study import records
from termnorm_eval.study.config import StudyConfig
from termnorm_eval.study.steps import KINDS, Context, Step, make_context, plan

# How long the other processes wait for the first one's evaluation of a step (see processes.start).
WAIT_FOR_FIRST = timedelta(hours=48)


def _say(msg: str) -> None:
    if processes.is_main():
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
    processes.start(WAIT_FOR_FIRST)
    main = processes.is_main()
    # The first process prepares the model (once) and checks everything; then the others.
    made: list[Context] = []
    processes.from_main(main, lambda: made.append(make_context(cfg)))
    ctx = made[0] if main else make_context(cfg)
    steps = plan(ctx)
    chosen = choose(steps, only, start)
    config = cfg.to_dict()
    out = ctx.out
    with contextlib.ExitStack() as held:
        processes.from_main(main, lambda: _lock(ctx, steps, chosen, config, held))
        started = time.perf_counter()
        ran = 0
        for i, step in enumerate(chosen, 1):
            where = (ctx, step, i, len(chosen))
            if step.kind == "train":  # every process trains; the first one decides and records
                if processes.from_main(main, partial(_should_run, *where)):
                    ran += 1
                    _execute_everywhere(*where)
            else:  # the first process alone; the others wait for its outcome
                ran += processes.from_main(main, partial(_run_step, *where))
        if main:
            _claim(ctx)  # the config of this run, all its steps finished
        _say(f"done: {ran} step(s) run, {len(chosen) - ran} reused, {time.perf_counter() - started:.0f} s; "
             f"{out / 'report.md'}")
    processes.stop()
    return out


def _lock(ctx: Context, steps: list[Step], chosen: list[Step], config: dict[str, object],
          held: contextlib.ExitStack) -> None:
    """Check the study folder and what the chosen steps read, and lock the folder (held until
    ``held`` closes). Nothing is written in it yet: the study file goes in with the first step
    (``_claim``), and a folder this run made goes again if the run fails before that."""
    out = ctx.out
    for note in records.check_study_folder(out, config):  # refuse a foreign folder before locking
        _say(note)
    atomic.check_replaceable(out, "--out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TermnormError(f"--out {out}: cannot create its folder ({e.strerror})") from None
    held.enter_context(atomic.output_lock(out, "--out"))
    records.check_study_folder(out, config)  # again, under the lock: the answer that counts
    for step in steps:
        atomic.recover(out / step.name)  # what an interrupted run of a step left (we hold the lock)
    _check_places(out, steps)
    _check_dependencies(ctx, chosen)
    if not out.exists():
        held.enter_context(_removed_unless_claimed(out))
        return
    known = {s.name for s in steps} | {records.STUDY_FILE, "report.md"}
    others = sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and p.name not in known)
    if others:  # e.g. a terminology dropped from the config: its folders stay, untouched
        _say(f"kept, not part of this config: {', '.join(others)}")


def _check_places(out: Path, steps: list[Step]) -> None:
    """Each step's folder, and the files at the top, must be what the study writes there: a
    symbolic link would be replaced or followed, a file where a folder goes (or the reverse) fails
    the step after it has run."""
    places = [(out / s.name, True) for s in steps] + [(out / records.STUDY_FILE, False),
                                                       (out / "report.md", False)]
    for path, folder in places:
        kind = "folder" if folder else "file"
        if path.is_symlink():
            wrong = "is a symbolic link"
        elif path.exists() and path.is_dir() != folder:
            wrong = "is a file" if folder else "is a folder"
        else:
            continue
        raise TermnormError(f"{path}: {wrong}; the study writes its own {kind} there (move it away, or "
                            "choose another --out)")


def _check_dependencies(ctx: Context, chosen: list[Step]) -> None:
    """Every step a chosen step reads is finished, or runs before it in this run."""
    names = {s.name for s in chosen}
    for step in chosen:
        for dep in step.depends:
            if dep not in names and not is_finished(ctx, ctx.steps[dep]):
                raise TermnormError(f"step {step.name} needs step {dep}, which is not finished; run it "
                                    f"first (--from {dep}, or without --only/--from)")


@contextlib.contextmanager
def _removed_unless_claimed(out: Path) -> Iterator[None]:
    """The study folder this run creates goes again if the run fails before a step put anything in
    it (a failed first evaluation, Ctrl-C): nothing is left that looks like a study."""
    try:
        yield
    except BaseException:
        if out.is_dir() and not (out / records.STUDY_FILE).exists():
            with contextlib.suppress(OSError):
                out.rmdir()  # only if empty: a staged step removes its temporary folder first
        raise


def _claim(ctx: Context) -> None:
    """Write the study file: before a step's folder is put in place (or a training writes in its
    own), so that every folder with a step in it is recognised as a study folder."""
    records.write_study_file(ctx.out, ctx.cfg.to_dict())


def _run_step(ctx: Context, step: Step, i: int, n: int) -> int:
    """Run ``step`` unless finished; 1 if it ran."""
    if not _should_run(ctx, step, i, n):
        return 0
    _execute(ctx, step, i, n)
    return 1


def _should_run(ctx: Context, step: Step, i: int, n: int) -> bool:
    """False when ``step`` is finished with the same inputs (said)."""
    folder = ctx.out / step.name
    head = f"[{i}/{n}] {step.name}"
    old = records.read_record(folder)
    lost = step.kind == "report" and not (ctx.out / "report.md").is_file()  # report.md removed by hand
    if old is not None and old["inputs"] == step.inputs and not lost:
        _say(f"{head}: finished earlier, reused")
        return False
    if old is not None:
        changed = records.differences(old["inputs"], step.inputs)
        _say(f"{head}: inputs changed ({', '.join(changed[:6])}{', ...' if len(changed) > 6 else ''}); "
             "running it again")
    return True


def _execute_everywhere(ctx: Context, step: Step, i: int, n: int) -> None:
    """``_execute`` on every process; the first one's error (from its own part: the records, the
    sweep's copies) stops them all, not only itself."""
    failed: list[TermnormError] = []
    try:
        _execute(ctx, step, i, n)
    except TermnormError as e:
        failed.append(e)

    def outcome() -> None:
        if failed:
            raise failed[0]

    processes.from_main(processes.is_main(), outcome)
    outcome()


def _execute(ctx: Context, step: Step, i: int, n: int) -> None:
    """Run ``step`` into its folder, record inside (a training: on every process, recorded by the
    first)."""
    folder = ctx.out / step.name
    head = f"[{i}/{n}] {step.name}"
    _say(f"{head}: {step.describe}")
    t0 = time.perf_counter()
    if step.staged:
        with atomic.staged_folder(folder) as stage:
            outputs = step.run(step, stage)
            report_md = outputs.pop("report_md", None)
            records.write_record(stage, records.make_record(step.name, step.inputs,
                                                            time.perf_counter() - t0, outputs))
            _claim(ctx)
            atomic.replace_folder(stage, folder)
        if report_md is not None:  # the top-level report, once report/ (its figures) is in place
            atomic.write_file(ctx.out / "report.md", report_md)
    else:
        if processes.is_main():
            _claim(ctx)  # training writes in its folder from the start (checkpoints to resume from)
        outputs = step.run(step, folder)
        if processes.is_main():
            records.write_record(folder, records.make_record(step.name, step.inputs,
                                                             time.perf_counter() - t0, outputs))
    _say(f"{head}: finished in {time.perf_counter() - t0:.0f} s")
