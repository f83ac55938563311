"""Progress bar (loss, tokens/s) and token/padding counts.

The counts come from the batches the trainer actually consumes (a wrapper around its collator), so
tokens/s and the padding share describe real batches, whatever the sampler did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback


@dataclass
class TokenCounts:
    real: int = 0  # non-padding tokens
    total: int = 0  # tokens including padding
    trained: int = 0  # tokens with a loss (the answers)
    batches: int = 0

    @property
    def padding_share(self) -> float:
        return 1.0 - self.real / self.total if self.total else 0.0


class CountingCollator:
    """Wraps a collator and counts real, padded and trained tokens of every batch it builds."""

    def __init__(self, inner: Any, counts: TokenCounts):
        self.inner = inner
        self.counts = counts

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(examples)
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        self.counts.total += int(ids.numel())
        self.counts.real += int(mask.sum()) if mask is not None else int(ids.numel())
        labels = batch.get("labels")
        if labels is not None:
            self.counts.trained += int((labels != -100).sum())
        self.counts.batches += 1
        return batch


class ProgressCallback(TrainerCallback):
    """A rich progress bar on the main process; timing for tokens/s."""

    def __init__(self, counts: TokenCounts, show: bool = True):
        self.counts = counts
        self.show = show
        self.progress = None
        self.task = None
        self.t_start: float | None = None
        self.t_end: float | None = None
        self.start_step = 0
        self.last_loss: float | None = None

    @property
    def seconds(self) -> float:
        if self.t_start is None:
            return 0.0
        return (self.t_end or time.perf_counter()) - self.t_start

    @property
    def tokens_per_second(self) -> float:
        s = self.seconds
        return self.counts.real / s if s > 0 else 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.t_start = time.perf_counter()
        self.start_step = state.global_step
        if self.show and state.is_world_process_zero:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[tps]} tok/s"),
                TimeRemainingColumn(),
            )
            self.progress.start()
            self.task = self.progress.add_task(
                "train", total=state.max_steps, completed=state.global_step, loss="-", tps="-"
            )

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step, tps=f"{self.tokens_per_second:,.0f}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.last_loss = float(logs["loss"])
            if self.progress is not None:
                self.progress.update(self.task, loss=f"{self.last_loss:.4f}")

    def on_train_end(self, args, state, control, **kwargs):
        self.t_end = time.perf_counter()
        self.close()

    def close(self) -> None:
        """Stop the bar (also when training ends with an exception, so the terminal is restored)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
