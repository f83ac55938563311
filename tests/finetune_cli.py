"""Shared by the fine-tuning tests: run `termnorm-finetune` in-process and return its exit status."""

from __future__ import annotations

from finetune.cli import main


def cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as e:
        return int(e.code or 0)
    return 0
