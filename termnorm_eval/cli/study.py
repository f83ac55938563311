"""`termnorm study`: base evaluation, LoRA per terminology, adapter evaluation, epoch sweep,
lexicalization and report, resumable, from one YAML config (every key also a flag)."""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from termnorm_eval.study.config import FIELDS, choices, flag_name, list_item, value_kind

# typer reads options from the signature; Annotated over a type computed at runtime (see
# finetune/cli.py, which builds its options the same way).
_annotated: Any = Annotated


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("study")(study)


def _shown_default(key: str) -> str | bool:
    f = FIELDS[key]
    if "unset" in f.metadata:
        return str(f.metadata["unset"])
    default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
    if default is None:
        return False
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, list):
        return ",".join(map(str, default))
    return str(default)


def _setting_parameter(key: str) -> inspect.Parameter:
    meta = FIELDS[key].metadata
    flag, kind = flag_name(key), value_kind(key)
    if list_item(key) is not None:
        kind = str  # comma-separated on the command line
    decls = [f"{flag}/--no-{flag[2:]}" if kind is bool else flag]
    options = choices(key)
    option = typer.Option(*decls, help=meta["help"], rich_help_panel=meta.get("panel"),
                          show_default=_shown_default(key),
                          metavar=f"<{'|'.join(options)}>" if options else None)
    return inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=_annotated[kind | None, option])


def study(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="YAML file of study settings (keys = these options in snake_case); "
        "flags override it. The study folder defaults to <config folder>/<config name>-out.")] = None,
    only: Annotated[str | None, typer.Option(
        "--only", help="Run only this step (a name such as train-go, or a kind: base, train, eval, "
        "sweep, lexicalization, report).")] = None,
    start: Annotated[str | None, typer.Option(
        "--from", help="Run from this step (name or kind) to the end.")] = None,
    **settings: Any,
) -> None:
    """Run the 2025 study on a model: base evaluation on every selected task, one LoRA adapter per
    terminology trained on its training split, each adapter evaluated on its trained and held-out
    tasks, an epoch sweep over checkpoints of one training run, the lexicalization analysis, and
    one report.md. Rerunning the same command skips finished steps and continues an interrupted
    training; a step whose inputs changed runs again."""
    from termnorm_eval.study.config import build_config
    from termnorm_eval.study.pipeline import run_study

    cfg = build_config(config, settings)
    try:
        run_study(cfg, only=only, start=start)
    except KeyboardInterrupt:
        print("termnorm study: interrupted; run the same command to continue (finished steps are kept, "
              "an interrupted training resumes from its last checkpoint)", file=sys.stderr)
        raise typer.Exit(130) from None


_explicit = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
             for p in inspect.signature(study, eval_str=True).parameters.values()
             if p.kind is not inspect.Parameter.VAR_KEYWORD]
study.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [*_explicit, *(_setting_parameter(k) for k in FIELDS)])
