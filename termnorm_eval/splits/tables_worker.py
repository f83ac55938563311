"""Worker process for the build: reads the annotation tables while the parent parses OBO files.

Started as ``python -m termnorm_eval.splits.tables_worker`` (not through ``multiprocessing``, whose
spawn mode re-imports the caller's ``__main__`` and breaks unguarded user scripts). The job comes
in as a pickle on stdin; the result, or the user error, goes out as a pickle to the file named on
the command line.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError


class TablesWorker:
    """A running worker; ``result()`` waits for it and returns what ``_tables_job`` returned."""

    def __init__(self, job: tuple[Any, ...]) -> None:
        fd, name = tempfile.mkstemp(prefix="termnorm-tables-", suffix=".pickle")
        self._out = Path(name)
        with open(fd, "wb"):
            pass
        # The child imports this package the way the parent did, even from an uninstalled checkout.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "termnorm_eval.splits.tables_worker", str(self._out)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        self._proc.stdin.close()

    def result(self) -> dict[str, Any]:
        try:
            assert self._proc.stderr is not None
            err = self._proc.stderr.read()  # only a crash writes here
            self._proc.wait()
            data = self._out.read_bytes()
            if self._proc.returncode != 0 or not data:
                tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"table worker exited with status {self._proc.returncode}: {tail[0]}")
            status, payload = pickle.loads(data)
        finally:
            self._out.unlink(missing_ok=True)
        if status == "error":
            raise TermnormError(payload)
        if status == "crash":
            raise RuntimeError(f"table worker failed:\n{payload}")
        return payload

    def cancel(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._out.unlink(missing_ok=True)


def main() -> None:
    import gc

    # A short-lived process that builds large sets and dicts and creates no garbage cycles worth
    # collecting: the cyclic collector would only re-scan them (about 20% of the time here).
    gc.disable()
    from termnorm_eval.splits.build import _tables_job

    out = Path(sys.argv[1])
    job = pickle.load(sys.stdin.buffer)
    try:
        result: tuple[str, Any] = ("ok", _tables_job(*job))
    except TermnormError as e:
        result = ("error", str(e))
    except Exception:
        result = ("crash", traceback.format_exc())
    out.write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main()
