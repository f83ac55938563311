"""``termnorm-finetune`` / ``python -m finetune``: train a LoRA adapter on a training split."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from termnorm_eval.errors import TermnormError

app = typer.Typer(
    name="termnorm-finetune",
    help=__doc__,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_H = "Hyperparameters"
_D = "Data"
_R = "Run"


@app.command()
def finetune(
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Base model: hub id or local folder (the folder of the .gguf file for GGUF).",
        show_default=False)] = None,
    gguf_file: Annotated[str | None, typer.Option(
        help="GGUF file name inside --model (transformers dequantizes it; hf backend only).")] = None,
    terminology: Annotated[str | None, typer.Option(
        "--terminology", "-t", help="Terminology key (go, hpo, gene, or one added with add-ontology).",
        rich_help_panel=_D, show_default="go")] = None,
    directions: Annotated[str | None, typer.Option(
        help="Comma-separated directions, e.g. term2id,id2term.",
        rich_help_panel=_D, show_default="all of the terminology")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Split folder (manifest.json + <key>/train.jsonl); e.g. add-ontology's output.",
        rich_help_panel=_D, show_default="the shipped splits")] = None,
    limit_pairs: Annotated[int | None, typer.Option(
        help="Train only on the first N records per direction, in store order (tests, demos); "
        "the printed lm_eval commands then use --limit N.", rich_help_panel=_D)] = None,
    chat_template: Annotated[str | None, typer.Option(
        help="auto: chat-formatted rows when the base tokenizer has a chat template; on; off.",
        rich_help_panel=_D, show_default="auto")] = None,
    output_dir: Annotated[Path | None, typer.Option(
        "--output-dir", "-o", help="Where the adapter, checkpoints and termnorm_manifest.json go.",
        rich_help_panel=_R)] = None,
    backend: Annotated[str | None, typer.Option(
        help="auto (Unsloth if installed and a CUDA GPU is present, else hf), hf (transformers + PEFT, "
        "CPU or GPU), unsloth (GPU, 4-bit QLoRA).", rich_help_panel=_R, show_default="auto")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="YAML file of settings (keys = these options in snake_case); "
        "flags override it.", rich_help_panel=_R)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the unfinished run in --output-dir from its last checkpoint.",
        rich_help_panel=_R)] = False,
    seed: Annotated[int | None, typer.Option(
        help="Seed for LoRA init, data order and dropout.", rich_help_panel=_R, show_default="42")] = None,
    save_steps: Annotated[int | None, typer.Option(
        help="Write a checkpoint every N optimizer steps.", rich_help_panel=_R, show_default="200")] = None,
    save_total_limit: Annotated[int | None, typer.Option(
        help="Keep at most N checkpoints.", rich_help_panel=_R, show_default="2")] = None,
    keep_checkpoints: Annotated[bool | None, typer.Option(
        "--keep-checkpoints/--no-keep-checkpoints", help="Keep checkpoints after the final adapter "
        "is written.", rich_help_panel=_R, show_default="no")] = None,
    logging_steps: Annotated[int | None, typer.Option(
        help="Log the loss every N steps (the loss curve in the manifest).",
        rich_help_panel=_R, show_default="10")] = None,
    epochs: Annotated[float | None, typer.Option(
        help="Training epochs.", rich_help_panel=_H, show_default="3")] = None,
    learning_rate: Annotated[float | None, typer.Option(
        "--learning-rate", "--lr", help="Peak learning rate.", rich_help_panel=_H,
        show_default="2e-4")] = None,
    lr_scheduler: Annotated[str | None, typer.Option(
        help="transformers scheduler name (linear, cosine, constant, ...).",
        rich_help_panel=_H, show_default="linear")] = None,
    warmup_ratio: Annotated[float | None, typer.Option(
        help="Share of steps spent warming up the learning rate.", rich_help_panel=_H,
        show_default="0")] = None,
    weight_decay: Annotated[float | None, typer.Option(
        help="AdamW weight decay.", rich_help_panel=_H, show_default="0")] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="Rows per device per step.", rich_help_panel=_H, show_default="8")] = None,
    grad_accum: Annotated[int | None, typer.Option(
        help="Gradient accumulation steps.", rich_help_panel=_H, show_default="1")] = None,
    max_seq_length: Annotated[int | None, typer.Option(
        help="Longest allowed row in tokens; a longer row is an error, never silently cut. ",
        rich_help_panel=_H, show_default="256")] = None,
    lora_r: Annotated[int | None, typer.Option(
        help="LoRA rank.", rich_help_panel=_H, show_default="16")] = None,
    lora_alpha: Annotated[int | None, typer.Option(
        help="LoRA alpha (scale = alpha / r).", rich_help_panel=_H, show_default="32")] = None,
    lora_dropout: Annotated[float | None, typer.Option(
        help="LoRA dropout.", rich_help_panel=_H, show_default="0")] = None,
    target_modules: Annotated[str | None, typer.Option(
        help="Comma-separated module names, or all-linear (PEFT; the 7 attention/MLP projections "
        "for Unsloth).", rich_help_panel=_H, show_default="all-linear")] = None,
    load_in_4bit: Annotated[bool | None, typer.Option(
        "--load-in-4bit/--no-load-in-4bit", help="Unsloth backend: 4-bit QLoRA.",
        rich_help_panel=_H, show_default="on")] = None,
    group_by_length: Annotated[bool | None, typer.Option(
        "--group-by-length/--no-group-by-length", help="Batch rows of similar length together "
        "(less padding).", rich_help_panel=_H, show_default="on")] = None,
    gradient_checkpointing: Annotated[bool | None, typer.Option(
        "--gradient-checkpointing/--no-gradient-checkpointing", help="hf backend: recompute activations "
        "in the backward pass (less memory, more compute).", rich_help_panel=_H,
        show_default="off")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a LoRA adapter on the training split of a terminology (each pair in 5 prompt
    phrasings, answer-only loss) and print the lm_eval commands that score it on the training
    and held-out tasks."""
    from finetune.config import build_config

    flags = {
        "model": model, "gguf_file": gguf_file, "terminology": terminology, "directions": directions,
        "data_dir": str(data_dir) if data_dir is not None else None, "limit_pairs": limit_pairs,
        "chat_template": chat_template, "output_dir": str(output_dir) if output_dir is not None else None,
        "backend": backend, "seed": seed, "save_steps": save_steps, "save_total_limit": save_total_limit,
        "keep_checkpoints": keep_checkpoints, "logging_steps": logging_steps, "epochs": epochs,
        "learning_rate": learning_rate, "lr_scheduler": lr_scheduler, "warmup_ratio": warmup_ratio,
        "weight_decay": weight_decay, "batch_size": batch_size, "grad_accum": grad_accum,
        "max_seq_length": max_seq_length, "lora_r": lora_r, "lora_alpha": lora_alpha,
        "lora_dropout": lora_dropout, "target_modules": target_modules, "load_in_4bit": load_in_4bit,
        "group_by_length": group_by_length, "gradient_checkpointing": gradient_checkpointing,
        "resume": resume or None,
    }
    cfg = build_config(config, flags)
    from finetune.train import run

    try:
        run(cfg, show_progress=not quiet)
    except KeyboardInterrupt:
        # click would turn it into "Aborted!" (exit 1): say how to continue instead.
        print(INTERRUPTED, file=sys.stderr)
        raise typer.Exit(130) from None


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
