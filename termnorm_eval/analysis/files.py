"""Writing result files so that a crash or a bad input never leaves a half-written set.

Everything is rendered in memory first; then the output folder is replaced as a whole
(``termnorm_eval.atomic``), so it holds either the previous complete set or the new one, never a
mix, even when the run is killed during the final step.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from termnorm_eval import atomic
from termnorm_eval.errors import TermnormError


def write_all(out_dir: str | Path, files: Mapping[str, bytes | str]) -> list[Path]:
    """Replace ``out_dir`` by a folder holding ``files`` ``{name: content}``; return the paths.

    ``out_dir`` must be new, empty, or hold only files of these names (an earlier run's output):
    a folder with anything else in it is refused, never replaced.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TermnormError(f"--out {out}: exists and is not a folder")
    try:
        with atomic.output_lock(out, "--out"):
            if out.exists():
                atomic.check_replaceable(out, "--out")
                foreign = sorted(p.name for p in out.iterdir() if p.name not in files or not p.is_file())
                if foreign:
                    raise TermnormError(f"--out {out}: holds files this command does not write "
                                        f"({', '.join(foreign[:3])}); choose a new folder")
            return atomic.write_folder(out, files)
    except OSError as e:
        raise TermnormError(f"--out {out}: cannot write results ({e.strerror})") from e


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
