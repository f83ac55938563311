"""The ``termnorm`` command. Each subcommand lives in its own module with a ``register(app)``."""

from __future__ import annotations

import sys
from typing import Any

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
    from termnorm_eval.cli import (
        data,
        doctor,
        evaluate,
        finetune,
        lexicalization,
        mentions,
        ontology,
        report,
        retrieve,
        study,
    )

    for module in (data, evaluate, lexicalization, report, retrieve, ontology, mentions, finetune, study,
                   doctor):
        module.register(app)


_register_all()


def _click_exceptions() -> Any:
    import importlib

    try:  # typer >= 0.20 carries its own copy of click
        return importlib.import_module("typer._click.exceptions")
    except ImportError:
        return importlib.import_module("click.exceptions")


def main(argv: list[str] | None = None) -> None:
    """Entry point: every user error is one line on stderr, exit status 2, no traceback.

    Click runs in non-standalone mode so that its usage errors (an out-of-range option, a missing
    argument) come out as one line too, not as rich's boxed panel. Ctrl-C exits 130 and SIGTERM
    143, both after the clean-up of temporaries and locks.
    """
    from termnorm_eval.atomic import cleanup_on_sigterm

    cleanup_on_sigterm()
    exc = _click_exceptions()
    try:
        code = app(args=argv, prog_name="termnorm", standalone_mode=False)
    except TermnormError as e:
        print(f"termnorm: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except exc.NoArgsIsHelpError as e:  # `termnorm data`: the help, as in standalone mode
        print(e.ctx.get_help() if e.ctx is not None else "", file=sys.stderr)
        raise SystemExit(2) from None
    except exc.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else "termnorm"
        print(f"termnorm: error: {where}: {' '.join(e.format_message().split())} (see --help)",
              file=sys.stderr)
        raise SystemExit(2) from None
    except exc.ClickException as e:
        print(f"termnorm: error: {' '.join(e.format_message().split())}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    except (typer.Abort, KeyboardInterrupt):
        print("termnorm: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(code if isinstance(code, int) else 0)  # as click's standalone mode ends
