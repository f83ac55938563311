"""``termnorm-finetune`` / ``python -m finetune``: train a LoRA adapter on a training split."""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from finetune.config import CONFIG_KEYS, FIELDS, RUN, build_config, choices, flag_name, is_list, value_kind
from termnorm_eval.errors import TermnormError

app = typer.Typer(
    name="termnorm-finetune",
    help=__doc__,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def shown_default(key: str) -> str | bool:
    """The default of a setting as ``--help`` and the README table show it (False: none shown)."""
    f = FIELDS[key]
    if "required" in f.metadata:
        return False
    default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
    if default is None:
        return str(f.metadata["unset"]) if "unset" in f.metadata else False
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, list):
        return ",".join(map(str, default))
    return f"{default:g}" if isinstance(default, float) else str(default)


# typer reads options from the function's signature; ``Annotated`` is applied to a type computed
# at runtime here, which a type checker cannot follow (hence Any).
_annotated: Any = Annotated


def _setting_parameter(key: str) -> inspect.Parameter:
    """One ``--option`` for a setting, built from its field: default None means 'not given', so
    that a config file's value is not overridden by the flag's default."""
    meta = FIELDS[key].metadata
    flag, kind = flag_name(key), value_kind(key)
    decls = [f"{flag}/--no-{flag[2:]}" if kind is bool else flag, *meta.get("flags", ())]
    options = choices(key)
    metavar = meta.get("metavar") or (f"<{'|'.join(options)}>" if options and not is_list(key) else None)
    option = typer.Option(*decls, help=meta["help"], rich_help_panel=meta.get("panel"),
                          show_default=shown_default(key), metavar=metavar)
    return inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=_annotated[kind | None, option])


def finetune(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="YAML file of settings (keys = these options in snake_case); "
        "flags override it.", rich_help_panel=RUN)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help=FIELDS["resume"].metadata["help"], rich_help_panel=RUN)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    **settings: Any,
) -> None:
    """Train a LoRA adapter on the training split of a terminology (each pair in 5 prompt
    phrasings, answer-only loss) and print the lm_eval commands that score it on the training
    and held-out tasks."""
    cfg = build_config(config, {**settings, "resume": resume or None})
    from finetune.train import run

    try:
        run(cfg, show_progress=not quiet)
    except KeyboardInterrupt:
        # click would turn it into "Aborted!" (exit 1): say how to continue instead.
        print(INTERRUPTED, file=sys.stderr)
        raise typer.Exit(130) from None


# One option per config key, generated from FinetuneConfig's fields (their only declaration), then
# the options written out above, which are no config keys: typer builds the command from this
# signature (and calls the function with every option by name, into **settings).
_explicit = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
             for p in inspect.signature(finetune, eval_str=True).parameters.values()
             if p.kind is not inspect.Parameter.VAR_KEYWORD]
finetune.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [*(_setting_parameter(k) for k in CONFIG_KEYS), *_explicit])
app.command()(finetune)


INTERRUPTED = ("termnorm-finetune: interrupted; run the same command with --resume to continue from the "
               "last checkpoint")


def _click_exception() -> type[Exception]:
    # typer >= 0.26 vendors click: find its ClickException through a class typer exports.
    return next(k for k in typer.BadParameter.__mro__ if k.__name__ == "ClickException")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors (ours and bad flag values alike) are one line on stderr, exit
    status 2; Ctrl-C says how to resume."""
    from termnorm_eval.atomic import cleanup_on_sigterm

    cleanup_on_sigterm()  # `kill` too removes the staged adapter and releases the output lock
    try:
        # standalone_mode=False: click raises its usage errors instead of printing a framed box.
        rc = app(args=argv, prog_name="termnorm-finetune", standalone_mode=False)
    except TermnormError as e:
        print(f"termnorm-finetune: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        raise SystemExit(130) from None
    except _click_exception() as e:
        message = " ".join(e.format_message().split())  # type: ignore[attr-defined]
        print(f"termnorm-finetune: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(getattr(e, "exit_code", 2)) from None
    except typer.Abort:
        print("termnorm-finetune: aborted", file=sys.stderr)
        raise SystemExit(1) from None
    if isinstance(rc, int) and rc:
        raise SystemExit(rc)
