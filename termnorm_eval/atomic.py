"""Every file and folder this tool writes goes through here: atomic files, crash-safe folder
replacement, and an exclusive lock per output.

The protocol (pip's and conda's): write into a temporary sibling, fsync, then one rename that is
the commit point. A folder is replaced by exchanging two names (``renameat2(RENAME_EXCHANGE)``), so
at every instant either the old or the new complete folder sits at the target. Where the kernel
or file system has no exchange, a two-step swap parks the old folder under a recognisable name,
and the next run, under the lock, puts it back instead of deleting it.

Temporary names are ``.<target name>.<kind>-<random>`` beside the target. Only a process that holds
the target's lock ever removes them: a held lock means a live writer (on any host that shares the
lock file), so nothing a running process still needs is cleaned away.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from termnorm_eval.errors import TermnormError

# Kinds of temporary siblings (``.<name>.<kind>-<random>``).
STAGE = "stage"  # a new folder being written
PREVIOUS = "previous"  # the old folder during a two-step swap: restored if the target is missing
SCRATCH = "scratch"  # working files of a run (downloads, unpacked archives)
PART = "part"  # a file being written
_KINDS = (STAGE, PREVIOUS, SCRATCH, PART)

_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def temp_prefix(target: Path, kind: str) -> str:
    return f".{target.name}.{kind}-"


def lock_path(target: Path) -> Path:
    """The lock file of ``target``: beside it, so it survives the target being replaced."""
    return target.parent / f".{target.name}.lock"


# ---------------------------------------------------------------- files


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened or synced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_file(path: str | Path, data: bytes | str, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` atomically: readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path, PART), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def write_json(path: str | Path, data: object) -> Path:
    return write_file(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to stream into; it becomes ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path, PART), dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def cleanup_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit(143)`` so that the ``finally`` blocks (and context managers)
    that remove temporaries and release locks run on ``kill`` too, as they do on Ctrl-C.

    Called by the command-line entry points only; a library caller keeps its own handlers.
    """

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():  # signals can only be set there
        signal.signal(signal.SIGTERM, _exit)


# ---------------------------------------------------------------- folders


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2``; False where the C library, kernel or file system lacks it."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def new_temp_dir(target: Path, kind: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=temp_prefix(target, kind), dir=target.parent))


def replace_folder(stage: Path, target: Path) -> None:
    """Make the complete folder ``stage`` appear at ``target``; an old ``target`` is removed after.

    The caller holds ``output_lock(target)``. ``stage`` must be a sibling of ``target`` (one file
    system) and is gone afterwards.
    """
    stage.chmod(0o755)
    _fsync_dir(stage)
    if not target.exists() and not target.is_symlink():
        os.rename(stage, target)
    elif _renameat2(stage, target, _RENAME_EXCHANGE):
        shutil.rmtree(stage)  # now holds the old folder
    else:
        previous = new_temp_dir(target, PREVIOUS)
        previous.rmdir()
        os.rename(target, previous)  # from here until the next rename, recover() restores it
        os.rename(stage, target)
        shutil.rmtree(previous)
    _fsync_dir(target.parent)


def recover(target: Path) -> list[str]:
    """Finish what an interrupted writer of ``target`` left; return what was done, for a message.

    Call only under ``output_lock(target)``: then no live process owns these temporaries.
    """
    done: list[str] = []
    parent = target.parent
    if not parent.is_dir():
        return done
    previous = sorted(parent.glob(temp_prefix(target, PREVIOUS) + "*"))
    if previous and not target.exists() and not target.is_symlink():
        os.rename(previous[-1], target)
        done.append(f"restored {target} from an interrupted replacement")
        previous = previous[:-1]
    stale = [p for kind in _KINDS for p in parent.glob(temp_prefix(target, kind) + "*")]
    if target.is_dir() and not target.is_symlink():  # files being written inside the locked folder
        stale += target.glob(f".*.{PART}-*")
    for p in stale:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return done


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A fresh temporary sibling of ``target`` to build into; removed if the block fails."""
    stage = new_temp_dir(target, STAGE)
    try:
        yield stage
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def scratch_folder(target: Path) -> Iterator[Path]:
    """A temporary sibling of ``target`` for working files; always removed at the end."""
    scratch = new_temp_dir(target, SCRATCH)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fill_folder(folder: Path, files: Mapping[str, bytes | str]) -> list[Path]:
    """Write ``files`` (names may contain ``/``) into ``folder``, each synced to disk."""
    written = []
    for name, content in files.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(content.encode("utf-8") if isinstance(content, str) else content)
            fh.flush()
            os.fsync(fh.fileno())
        written.append(p)
    return written


def write_folder(target: Path, files: Mapping[str, bytes | str],
                 before_commit: Callable[[], object] | None = None) -> list[Path]:
    """Replace ``target`` by a folder holding exactly ``files``, in one step.

    ``before_commit`` runs right before the final move (re-check that ``target`` may still be
    replaced: it may have changed while the files were written).
    """
    with staged_folder(target) as stage:
        fill_folder(stage, files)
        if before_commit is not None:
            before_commit()
        replace_folder(stage, target)
    return [target / n for n in files]


# ---------------------------------------------------------------- what may be replaced


def check_replaceable(target: Path, option: str, protected: Iterable[Path] = ()) -> None:
    """Refuse to replace a folder whose loss the user would not expect from ``--force``.

    Never a symlink (replacing the link would drop it, following it would wipe its target), the
    current folder or one above it, the home folder or one above it, or a folder that holds any of
    ``protected`` (e.g. the sources being read).
    """
    if target.is_symlink():
        raise TermnormError(f"{option} {target}: is a symbolic link; give the real folder")
    real = target.resolve()
    cwd = Path.cwd().resolve()
    home = Path.home().resolve()
    if real == cwd or real in cwd.parents:
        raise TermnormError(f"{option} {target}: is the current folder or one above it; choose a new folder")
    if real == home or real in home.parents:
        raise TermnormError(f"{option} {target}: is the home folder or one above it; choose a new folder")
    for p in protected:
        rp = Path(p).resolve()
        if rp == real or real in rp.parents:
            raise TermnormError(f"{option} {target}: holds {p}, an input of this run; choose a new folder")


# ---------------------------------------------------------------- locks


def _holder_text() -> str:
    argv = " ".join(Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv[:6]))
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": argv[:200],
                       "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def _describe_holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _acquire(lock: Path, option: str, target: Path) -> int:
    """Open and flock ``lock``; the file is removed by its holder at the end, so check that the
    locked file is still the one at that path (else another process replaced it: try again)."""
    for _ in range(100):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise TermnormError(f"{option} {target}: cannot create the lock file {lock} "
                                f"({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TermnormError(f"{option} {target}: in use by {_describe_holder(lock)}; "
                                "wait for it to finish or choose another folder") from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    raise TermnormError(f"{option} {target}: could not lock {lock}")


@contextlib.contextmanager
def locked_output(out: Path, option: str, recheck: Callable[[], None]) -> Iterator[None]:
    """``output_lock`` for a command that writes the folder ``out``: ``recheck`` (the target checks)
    runs again under the lock, now that no other writer can change it; if the block fails, the parent
    folders the lock had to create are removed again (innermost first, only those left empty)."""
    created = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    done = False
    try:
        with output_lock(out, option):
            recheck()
            yield
        done = True
    finally:
        if not done:
            for p in created:
                try:
                    p.rmdir()
                except OSError:
                    break


@contextlib.contextmanager
def output_lock(target: str | Path, option: str = "output") -> Iterator[Path]:
    """Hold an exclusive lock on writing ``target`` for the whole block; fail at once if taken.

    The lock is ``flock`` on ``.<name>.lock`` beside the target (it survives the target being
    replaced; the holder removes it at the end). On entry, what an interrupted earlier writer left
    beside ``target`` is finished or cleaned (``recover``).
    """
    target = Path(target).absolute()
    lock = lock_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TermnormError(f"{option} {target}: cannot create its folder ({e.strerror})") from None
    fd = _acquire(lock, option, target)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_text().encode("utf-8"), 0)
        for line in recover(target):
            print(f"termnorm: {line}", file=sys.stderr)
        yield target
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still held: a waiter that opened it re-checks the inode
        os.close(fd)  # releases the lock
