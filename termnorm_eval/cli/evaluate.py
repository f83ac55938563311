"""`termnorm eval` (run the harness on the termnorm tasks) and `termnorm model path`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

model_app = typer.Typer(help="The default evaluation model (real SmolLM2-135M-Instruct, offline).",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(model_app, name="model")
    app.command(
        "eval",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(evaluate)


def _prepare(name: str, force: bool = False) -> Path:
    from rich.console import Console

    from termnorm_eval import models

    console = Console(stderr=True)
    if models.is_prepared(name) and not force:
        return models.prepared_path(name)
    with console.status("preparing the model") as status:
        def step(msg: str) -> None:
            status.update(msg)
            console.log(msg)

        return models.prepare_model(name, force=force, step=step)


@model_app.command("path")
def model_path(
    name: Annotated[str, typer.Argument(help="Model key (known: smollm2).")] = "smollm2",
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if already prepared.")] = False,
) -> None:
    """Print the folder of a prepared model (preparing it first if needed: ~30 s once).

    Use it as `lm_eval --model hf --model_args pretrained=$(termnorm model path) ...`.
    """
    print(_prepare(name, force))


def evaluate(
    ctx: typer.Context,
    model_args: Annotated[
        str | None,
        typer.Option("--model-args", help="Harness --model_args (default: pretrained=<prepared "
                     "SmolLM2-135M-Instruct>,dtype=float32). Add peft=<adapter> for a LoRA adapter."),
    ] = None,
    model: Annotated[str, typer.Option("--model", help="Harness backend: hf, vllm, ...")] = "hf",
    tasks: Annotated[
        str, typer.Option("--tasks", help="Tasks or groups: termnorm (all), termnorm-go, termnorm-val, "
                          "termnorm_go_term2id_val, 'termnorm_*', ...")
    ] = "termnorm",
    limit: Annotated[
        float | None, typer.Option("--limit", help="First N documents of each task (store order), or a "
                                   "fraction < 1. Default: all.")
    ] = None,
    apply_chat_template: Annotated[
        bool, typer.Option("--apply-chat-template", help="Wrap prompts in the model's chat template.")
    ] = False,
    num_fewshot: Annotated[
        int | None, typer.Option("--num-fewshot", min=0, help="Examples from the training split.")
    ] = None,
    batch_size: Annotated[str, typer.Option("--batch-size", help="Harness batch size (or auto).")] = "16",
    device: Annotated[
        str | None, typer.Option("--device", help="torch device (default: cuda:0 if available, else cpu).")
    ] = None,
    output_path: Annotated[
        Path | None, typer.Option("--output-path", help="Write results JSON (and samples) here.")
    ] = None,
    log_samples: Annotated[
        bool, typer.Option("--log-samples", help="Also write every prompt, response and score.")
    ] = False,
    include_path: Annotated[
        Path | None, typer.Option("--include-path", help="Extra task folder (e.g. from add-ontology). "
                                  "Without it the built-in termnorm tasks are found automatically.")
    ] = None,
    via_cli: Annotated[
        bool, typer.Option("--via-cli", help="Run the printed lm_eval command in a subprocess. Default: "
                           "run it in this process, indexing only the termnorm task folders (the CLI "
                           "first indexes all ~14.7k built-in harness tasks: 5-50 s). Tasks from "
                           "outside those folders always go through the CLI.")
    ] = False,
) -> None:
    """Run lm-evaluation-harness on the termnorm tasks and print its results table.

    Without --model-args it evaluates the embedded default model (real SmolLM2-135M-Instruct, offline).
    Any further option is passed to the harness unchanged (e.g. --gen_kwargs, --seed, --metadata).
    """
    from termnorm_eval.errors import TermnormError
    from termnorm_eval.harness import runner

    extra = list(ctx.args)
    runner.check_limit(limit)
    if log_samples and output_path is None:
        raise TermnormError("--log-samples needs --output-path")
    if include_path is not None and not include_path.is_dir():
        raise TermnormError(f"--include-path {include_path}: not a folder")
    if include_path is None:  # the built-in tasks read the shipped splits: fail here, in one line
        from termnorm_eval.splits import store

        store.read_manifest()
    if model_args is None:
        if model != "hf":
            raise TermnormError(f"--model {model} needs --model-args (the default model is for hf)")
        from termnorm_eval import models

        # The prepared folder lies under TERMNORM_CACHE, which may be any path: check it before
        # spending ~30 s preparing the model there.
        source = "the default model folder (under TERMNORM_CACHE)"
        runner.model_args([("pretrained", models.prepared_path("smollm2"), source)])
        model_args = runner.model_args([("pretrained", _prepare("smollm2"), source),
                                        ("dtype", "float32", "dtype")])
        # Here, not only in the child: the hub libraries read these once, when first imported.
        os.environ.update(runner.offline_env())
    device = device or runner.default_device()
    # The harness CLI takes one include path. A user folder (e.g. from add-ontology) wins; in an
    # editable install the built-in family is then not indexed (it is when installed from a wheel).
    auto = runner.include_path_needed() if include_path is None else None
    cmd = runner.EvalCommand(
        model=model, model_args=model_args, tasks=tasks, limit=limit, batch_size=batch_size,
        device=device, num_fewshot=num_fewshot,
        apply_chat_template=apply_chat_template, output_path=output_path, log_samples=log_samples,
        include_path=include_path or auto, extra=extra,
    ).argv()
    shown = " ".join(["lm_eval", *cmd[3:]])

    from termnorm_eval.harness import inprocess

    namespace = inprocess.parse(cmd[3:])  # a bad pass-through option: one line, either way
    plan = None if via_cli else inprocess.plan(namespace)
    if isinstance(plan, inprocess.Plan):
        print(f"termnorm: running in-process the equivalent of {shown}", file=sys.stderr, flush=True)
        inprocess.run(plan)
        return
    if plan is not None:  # why the slow path
        print(f"termnorm: {plan}: running the lm_eval CLI (it indexes ~14.7k built-in tasks first)",
              file=sys.stderr)
    print(f"termnorm: running {shown}", file=sys.stderr, flush=True)
    rc = subprocess.call(cmd, env=dict(os.environ))
    if rc != 0:
        raise typer.Exit(rc)
