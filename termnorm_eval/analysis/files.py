"""Writing result files so that a crash or a bad input never leaves a half-written set.

Everything is rendered in memory first; each file goes to a temporary name in the target folder
and all are moved into place only when every one was written (``os.replace`` is atomic).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError


def write_all(out_dir: str | Path, files: Mapping[str, bytes | str]) -> list[Path]:
    """Write ``{file name: content}`` into ``out_dir`` (created if needed); return the paths."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TermnormError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TermnormError(f"--out {out}: cannot create the folder ({e.strerror})") from e
    staged: list[tuple[str, Path]] = []
    try:
        for name, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
            staged.append((tmp, out / name))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        for tmp, final in staged:
            os.replace(tmp, final)
    except OSError as e:
        raise TermnormError(f"--out {out}: cannot write results ({e.strerror})") from e
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return [final for _, final in staged]


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def figure_png(fig: Any, dpi: int = 150) -> bytes:
    """A matplotlib figure as PNG bytes (then closed, so long runs don't pile up figures)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def stdout_console() -> Any:
    """A rich console for result tables: a piped or captured stdout gets a width that fits the
    tables instead of rich's 80-column fallback, which would cut the numbers."""
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend: no display needed (servers, CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
