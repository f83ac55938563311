"""`termnorm finetune`: the same command as `termnorm-finetune` (see finetune.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add `finetune` to `app` (the training code is imported only when it runs)."""
    from finetune.cli import finetune

    app.command(name="finetune")(finetune)
