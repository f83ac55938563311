"""Placeholder: the training command lands with the fine-tuning issue."""

from __future__ import annotations

import sys


def main() -> None:
    print("termnorm-finetune: not implemented yet", file=sys.stderr)
    raise SystemExit(2)
