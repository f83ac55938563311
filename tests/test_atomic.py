"""The one file-writing protocol (termnorm_eval.atomic): atomic files, folder replacement, locks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from termnorm_eval import atomic
from termnorm_eval.errors import TermnormError


def _folder(path: Path, tag: str) -> None:
    path.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (path / name).write_text(tag)


def _siblings(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name != target.name)


def test_write_file_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    target.write_text("old")
    atomic.write_file(target, "new")
    assert target.read_text() == "new" and _siblings(target) == []

    class Boom(Exception):
        pass

    with pytest.raises(Boom), atomic.writing(target) as tmp:
        tmp.write_text("half")
        raise Boom
    assert target.read_text() == "new" and _siblings(target) == []


def test_replace_folder_by_exchange_keeps_a_complete_folder_at_every_instant(tmp_path: Path) -> None:
    target = tmp_path / "out"
    _folder(target, "0")
    probe = tmp_path / "probe"
    probe.mkdir()
    if not atomic._renameat2(probe, target, atomic._RENAME_EXCHANGE):
        pytest.skip("renameat2(RENAME_EXCHANGE) unsupported here: the two-step swap is used (next test)")
    atomic._renameat2(probe, target, atomic._RENAME_EXCHANGE)  # swap back
    probe.rmdir()
    # A second process replaces the folder 300 times while this one keeps reading it.
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from pathlib import Path
        from termnorm_eval import atomic
        target = Path({str(target)!r})
        for i in range(1, 301):
            atomic.write_folder(target, {{n: str(i) for n in ("a.txt", "b.txt", "c.txt")}})
        """)])
    seen: set[str] = set()
    try:
        while writer.poll() is None:
            try:
                texts = {(target / n).read_text() for n in ("a.txt", "b.txt", "c.txt")}
            except FileNotFoundError:
                # a file vanished between listing and reading: the folder moved under us; what is at
                # the path must still be complete
                assert (target / "a.txt").exists() or (target / "b.txt").exists()
                continue
            assert target.is_dir()
            seen |= texts
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0
    assert (target / "a.txt").read_text() == "300" and len(seen) > 1
    assert _siblings(target) == []  # no temporaries left


def test_interrupted_two_step_swap_is_completed_by_the_next_run(tmp_path: Path, monkeypatch) -> None:
    """Where there is no exchange: a kill between the two renames leaves the old folder parked; the
    next lock holder puts it back instead of deleting it."""
    target = tmp_path / "out"
    _folder(target, "old")
    monkeypatch.setattr(atomic, "_renameat2", lambda *a: False)
    real_rename = os.rename
    calls = {"n": 0}

    def rename(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:  # the old folder is parked, the new one not yet in place: "kill -9"
            raise KeyboardInterrupt
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(KeyboardInterrupt), atomic.staged_folder(target) as stage:
        atomic.fill_folder(stage, {"a.txt": "new"})
        atomic.replace_folder(stage, target)
    monkeypatch.setattr(os, "rename", real_rename)
    assert not target.exists()
    parked = [n for n in _siblings(target) if n.startswith(".out.previous-")]
    assert len(parked) == 1
    with atomic.output_lock(target):
        pass
    assert (target / "a.txt").read_text() == "old" and _siblings(target) == []


def test_replace_folder_without_exchange_still_replaces(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(atomic, "_renameat2", lambda *a: False)
    target = tmp_path / "out"
    _folder(target, "old")
    atomic.write_folder(target, {"a.txt": "new", "sub/b.txt": "new"})
    assert sorted(p.name for p in target.iterdir()) == ["a.txt", "sub"]
    assert (target / "sub" / "b.txt").read_text() == "new" and _siblings(target) == []


def test_second_lock_holder_fails_at_once_naming_the_first(tmp_path: Path, lock_holder) -> None:
    target = tmp_path / "out"
    first = lock_holder(target)
    with pytest.raises(TermnormError) as e, atomic.output_lock(target, "OUT"):
        pass
    assert first.poll() is None  # refused while the holder still runs: no waiting for it
    msg = str(e.value)
    assert f"OUT {target}: in use by pid {first.pid} on " in msg and "\n" not in msg
    first.kill()
    first.wait(timeout=30)
    with atomic.output_lock(target, "OUT"):  # a dead holder's lock is free again (flock)
        assert atomic.lock_path(target).exists()
    assert not atomic.lock_path(target).exists()  # the holder removes it


def test_live_runs_temporaries_are_never_cleaned(tmp_path: Path, lock_holder) -> None:
    """A held lock means a live writer (any host sharing the file system): its scratch stays.
    Once the lock is free, they are stale and the next holder removes them."""
    target = tmp_path / "out"
    scratch = tmp_path / ".out.scratch-live"
    first = lock_holder(target, scratch)
    with pytest.raises(TermnormError, match="in use by"), atomic.output_lock(target):
        pass
    assert scratch.is_dir()
    first.kill()
    first.wait(timeout=30)
    with atomic.output_lock(target):
        pass
    assert not scratch.exists() and _siblings(target) == []


def test_check_replaceable_protects_what_force_must_never_take(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    work = home / "work"
    work.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for target, why in [(work, "current folder"), (home, "current folder"), (tmp_path, "current folder")]:
        with pytest.raises(TermnormError, match=why):
            atomic.check_replaceable(target, "--out")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TermnormError, match="home folder"):
        atomic.check_replaceable(home, "--out")
    with pytest.raises(TermnormError, match="an input of this run"):
        atomic.check_replaceable(work, "--out", [work / "src" / "go.obo"])
    link = tmp_path / "link"
    link.symlink_to(work)
    with pytest.raises(TermnormError, match="symbolic link"):
        atomic.check_replaceable(link, "--out")
    atomic.check_replaceable(work / "new", "--out")  # a plain new folder is fine


def test_locked_output_rechecks_under_the_lock_and_removes_only_the_folders_it_made(tmp_path: Path) -> None:
    """add-ontology and add-mentions write through it: a failed run leaves no new parent folder, keeps
    the ones that were there, and a run that succeeds keeps what it made."""
    kept = tmp_path / "kept"
    kept.mkdir()
    out = kept / "new" / "deeper" / "out"
    seen: list[bool] = []

    def recheck() -> None:  # the target checks run again while the lock is held
        seen.append(atomic.lock_path(out.absolute()).exists())

    with pytest.raises(RuntimeError), atomic.locked_output(out, "--out", recheck):
        raise RuntimeError("the build failed")
    assert seen == [True]
    assert kept.is_dir() and list(kept.iterdir()) == []  # new/ and deeper/ removed, kept/ not
    with atomic.locked_output(out, "--out", recheck):
        out.mkdir()
    assert out.is_dir() and seen == [True, True]  # success keeps the folders it made
