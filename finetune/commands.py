"""The `lm_eval` commands that score an adapter on the tasks it was trained for (and the mention
tasks that ask its concepts through other forms)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import runner
from termnorm_eval.harness.runner import model_args as build_model_args
from termnorm_eval.harness.taskgen import task_name
from termnorm_eval.splits import store
from termnorm_eval.terminologies import SPLITS, Direction


def include_path(data_dir: str | Path | None) -> Path | None:
    """Where lm_eval finds the tasks; None when the harness already has them.

    Splits in another folder (``add-ontology`` output) carry their own task YAMLs there; the
    shipped splits' tasks are found as ``termnorm eval`` finds them (``runner.include_path_needed``).
    """
    if data_dir is not None and Path(data_dir).resolve() != store.shipped_data_dir().resolve():
        return Path(data_dir).resolve()
    try:
        return runner.include_path_needed()
    except TermnormError:
        # Its advice (--include-path) is an option of `termnorm eval`, not of this command.
        raise TermnormError("cannot find the termnorm task YAMLs that the printed lm_eval commands need "
                            "(neither lm_eval/tasks/termnorm nor a source checkout's tasks/); "
                            "reinstall termnorm-eval") from None


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
    mention_directions: Sequence[Direction] = (),
) -> dict[str, str]:
    """{"train": cmd, "val": cmd}: memorization on the trained split, generalization on held-out;
    each also on the ``mention_directions`` (the same concepts through another form) that have
    documents in that split."""
    inc = include_path(data_dir)
    return {
        split: lm_eval_command(
            base_model=base_model,
            adapter_dir=adapter_dir,
            tasks=[task_name(key, d, split) for d in directions]
            + [task_name(key, m.name, split) for m in mention_directions if split in m.splits],
            gguf_file=gguf_file,
            include=inc,
            chat=chat,
            limit=limit,
            output_path=Path(adapter_dir) / "eval" / split,
        )
        for split in SPLITS
    }
