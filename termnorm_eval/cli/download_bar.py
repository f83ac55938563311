"""The progress bar of a download (`data fetch --official`, `add-ontology URL`), as a hook."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from termnorm_eval.sources.fetch import ProgressHook


@contextlib.contextmanager
def download_bar(console: Any, prefix: str = "", transient: bool = True) -> Iterator[ProgressHook]:
    """Yield a ``(file name, bytes done, bytes total)`` hook that draws one bar per file."""
    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

    with Progress(TextColumn(prefix + "{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), console=console, transient=transient) as bar:
        tasks: dict[str, TaskID] = {}

        def hook(name: str, done: int, total: int | None) -> None:
            if name not in tasks:  # TextColumn reads markup: a URL's file name is escaped
                tasks[name] = bar.add_task(escape(name), total=total)
            bar.update(tasks[name], completed=done, total=total)

        yield hook
