"""The ``termnorm`` command. Each subcommand lives in its own module with a ``register(app)``."""

from __future__ import annotations

import sys

import typer

from termnorm_eval.errors import TermnormError

app = typer.Typer(
    name="termnorm",
    help="Biomedical term normalization benchmark (GO, HPO, HGNC genes) for lm-evaluation-harness.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print the versions of termnorm-eval and the libraries it drives."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as v

    for dist in ("termnorm-eval", "lm-eval", "transformers", "peft", "trl", "torch", "pronto"):
        try:
            print(f"{dist} {v(dist)}")
        except PackageNotFoundError:
            print(f"{dist} (not installed)")


def _register_all() -> None:
    # Imported here so `termnorm --help` stays fast: heavy imports live inside the commands.
    from termnorm_eval.cli import alignment, data, evaluate, finetune, ontology, report

    for module in (data, evaluate, alignment, report, ontology, finetune):
        module.register(app)


_register_all()


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit status 2.

    Click (standalone mode) already turns usage errors into one line and exit 2; our own
    ``TermnormError`` is caught here so that no traceback reaches the user. SIGTERM exits 143 after the
    same clean-up of temporaries and locks as Ctrl-C (click: "Aborted!", exit 1).
    """
    from termnorm_eval.atomic import cleanup_on_sigterm

    cleanup_on_sigterm()
    try:
        app(args=argv)
    except TermnormError as e:
        print(f"termnorm: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None

