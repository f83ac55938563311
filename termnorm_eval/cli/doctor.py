"""``termnorm doctor``: checks that a plain ``lm_eval`` finds the installed tasks."""

from __future__ import annotations

import typer


def doctor() -> None:
    """Check the installation: does a plain `lm_eval --tasks 'termnorm_*'` find the tasks, and is
    `import finetune` ours? Exit status 1 when a check fails."""
    from rich.console import Console
    from rich.markup import escape

    from termnorm_eval.harness.install_check import check_installation
    from termnorm_eval.harness.runner import is_editable_install

    console = Console(highlight=False)
    findings = check_installation(is_editable_install())
    for f in findings:
        console.print(("[green]ok[/green]   " if f.ok else "[red]FAIL[/red] ") + escape(f.what),
                      soft_wrap=True)
    if not all(f.ok for f in findings):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
