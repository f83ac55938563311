"""Worker process for the build: reads the annotation tables while the parent parses OBO files.

Started as ``python -m termnorm_eval.splits.tables_worker`` (not through ``multiprocessing``, whose
spawn mode re-imports the caller's ``__main__`` and breaks unguarded user scripts). The job comes
in as a pickle on stdin; the result, or the user error, goes out as a pickle into an *unnamed*
temporary file whose descriptor the worker inherits. Having no name, it cannot be left behind in
the temp folder, whichever process is killed (kill -9 included); and the worker asks the kernel to
kill it when the build process dies, so it does not run on as an orphan either.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import traceback
from typing import Any

from termnorm_eval.errors import TermnormError


class TablesWorker:
    """A running worker; ``result()`` waits for it and returns what ``_tables_job`` returned."""

    def __init__(self, job: tuple[Any, ...]) -> None:
        # O_TMPFILE where the file system has it, else unlinked right after creation: no name to leak.
        self._out = tempfile.TemporaryFile(prefix="termnorm-tables-")  # noqa: SIM115 (closed by result/cancel)
        fd = self._out.fileno()
        # The child imports this package the way the parent did, even from an uninstalled checkout.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "termnorm_eval.splits.tables_worker", str(fd), str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                pass_fds=(fd,),
            )
        except BaseException:
            self._out.close()
            raise
        assert self._proc.stdin is not None
        self._proc.stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        self._proc.stdin.close()

    def result(self) -> dict[str, Any]:
        try:
            assert self._proc.stderr is not None
            err = self._proc.stderr.read()  # only a crash writes here
            self._proc.wait()
            self._out.seek(0)  # the child wrote through the same open file (shared offset)
            data = self._out.read()
            if self._proc.returncode != 0 or not data:
                tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"table worker exited with status {self._proc.returncode}: {tail[0]}")
            status, payload = pickle.loads(data)
        finally:
            self._out.close()
        if status == "error":
            raise TermnormError(payload)
        if status == "crash":
            raise RuntimeError(f"table worker failed:\n{payload}")
        return payload

    def cancel(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._out.close()


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel kill this process when the build process dies (kill -9 included)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1  # linux/prctl.h
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def main() -> None:
    import gc

    # A short-lived process that builds large sets and dicts and creates no garbage cycles worth
    # collecting: the cyclic collector would only re-scan them (about 20% of the time here).
    gc.disable()
    fd, parent = int(sys.argv[1]), int(sys.argv[2])
    _die_with_parent(parent)
    from termnorm_eval.splits.build import _tables_job

    job = pickle.load(sys.stdin.buffer)
    try:
        result: tuple[str, Any] = ("ok", _tables_job(*job))
    except TermnormError as e:
        result = ("error", str(e))
    except Exception:
        result = ("crash", traceback.format_exc())
    with os.fdopen(fd, "wb") as out:
        out.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main()
