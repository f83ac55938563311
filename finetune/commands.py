"""The `lm_eval` commands that score an adapter on the tasks it was trained for."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

from termnorm_eval.harness.runner import model_args as build_model_args
from termnorm_eval.splits import store

SPLIT_SUFFIXES = ("train", "val")


def task_names(key: str, directions: tuple[str, ...] | list[str], split: str) -> list[str]:
    return [f"termnorm_{key}_{d}_{split}" for d in directions]


def _installed_tasks_dir() -> Path | None:
    spec = importlib.util.find_spec("lm_eval")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        p = Path(loc) / "tasks" / "termnorm"
        if p.is_dir():
            return p
    return None


def _checkout_tasks_dir() -> Path | None:
    p = Path(__file__).resolve().parent.parent / "tasks"
    return p if p.is_dir() and any(p.rglob("*.yaml")) else None


def include_path(data_dir: str | Path | None) -> Path | None:
    """Where lm_eval finds the tasks; None when the harness already has them.

    Splits in another folder (``add-ontology`` output) carry their own task YAMLs there. The shipped
    splits' tasks are inside lm_eval after a wheel install, else in the source checkout's tasks/.
    """
    if data_dir is not None and Path(data_dir).resolve() != store.shipped_data_dir().resolve():
        return Path(data_dir).resolve()
    if _installed_tasks_dir() is not None:
        return None
    return _checkout_tasks_dir()


def _local_or_id(model: str) -> str:
    p = Path(model).expanduser()
    return str(p.resolve()) if p.exists() else model


def lm_eval_command(
    *,
    base_model: str,
    adapter_dir: str | Path,
    tasks: list[str],
    gguf_file: str | None = None,
    include: Path | None = None,
    chat: bool = False,
    limit: int | None = None,
    output_path: str | Path | None = None,
    batch_size: int = 16,
) -> str:
    """One shell command line; raises TermnormError for a path lm-eval's --model_args cannot carry."""
    items: list[tuple[str, object, str]] = [("pretrained", _local_or_id(base_model), "--model"),
                                            ("peft", Path(adapter_dir).resolve(), "--output-dir")]
    if gguf_file:
        items.append(("gguf_file", gguf_file, "--gguf-file"))
    model_args = build_model_args(items)
    parts = ["lm_eval", "--model", "hf", "--model_args", model_args, "--tasks", ",".join(tasks)]
    if include is not None:
        parts += ["--include_path", str(include)]
    if chat:
        # Trained on chat-formatted rows: score with the same template.
        parts.append("--apply_chat_template")
    if limit is not None:
        parts += ["--limit", str(limit)]
    parts += ["--batch_size", str(batch_size)]
    if output_path is not None:
        parts += ["--output_path", str(Path(output_path).resolve())]
    return shlex.join(parts)


def scoring_commands(
    *,
    base_model: str,
    adapter_dir: str | Path,
    key: str,
    directions: tuple[str, ...] | list[str],
    data_dir: str | Path | None,
    gguf_file: str | None,
    chat: bool,
    limit: int | None,
) -> dict[str, str]:
    """{"train": cmd, "val": cmd}: memorization on the trained split, generalization on held-out."""
    inc = include_path(data_dir)
    return {
        split: lm_eval_command(
            base_model=base_model,
            adapter_dir=adapter_dir,
            tasks=task_names(key, directions, split),
            gguf_file=gguf_file,
            include=inc,
            chat=chat,
            limit=limit,
            output_path=Path(adapter_dir) / "eval" / split,
        )
        for split in SPLIT_SUFFIXES
    }
