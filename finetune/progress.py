"""Progress bar (loss, tokens/s), token/padding counts and throughput timing.

The counts come from the batches the trainer actually consumes (a wrapper around its collator), so
tokens/s and the padding share describe real batches, whatever the sampler did.

``tokens_per_second_after_warmup`` leaves out the first ``WARMUP_STEPS`` optimizer steps of the
session (their tokens and their time: CUDA context, kernel compilation and autotuning, allocator
growth), so runs of different backends compare at steady state. On a GPU the clock is read after
``torch.cuda.synchronize()``, so queued kernels are counted where they run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainerCallback

WARMUP_STEPS = 5  # optimizer steps left out of tokens_per_second_after_warmup


def _sync_cuda() -> None:
    """Wait for queued GPU work (only where CUDA is already in use: never initialise it here)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def peak_gpu_memory_bytes() -> int | None:
    """``torch.cuda.max_memory_allocated()`` of this process's GPU; None without CUDA."""
    import torch

    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None
    return int(torch.cuda.max_memory_allocated())


@dataclass
class TokenCounts:
    real: int = 0  # non-padding tokens
    total: int = 0  # tokens including padding
    trained: int = 0  # tokens with a loss (the answers)
    batches: int = 0
    real_per_batch: list[int] = field(default_factory=list)  # in the order the batches were built

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
        real = int(mask.sum()) if mask is not None else int(ids.numel())
        self.counts.total += int(ids.numel())
        self.counts.real += real
        self.counts.real_per_batch.append(real)
        labels = batch.get("labels")
        if labels is not None:
            self.counts.trained += int((labels != -100).sum())
        self.counts.batches += 1
        return batch


class ProgressCallback(TrainerCallback):
    """A rich progress bar on the main process; timing for tokens/s (all steps, and after warm-up).

    Batches are built ahead of the step that consumes them (the Trainer prefetches a step's
    micro-batches), so the warm-up mark counts consumed micro-batches (``on_substep_end`` +
    ``on_step_end``) and takes their tokens from ``TokenCounts.real_per_batch``.
    """

    def __init__(self, counts: TokenCounts, show: bool = True):
        self.counts = counts
        self.show = show
        self.progress = None
        self.task = None
        self.t_start: float | None = None
        self.t_end: float | None = None
        self.start_step = 0
        self.last_loss: float | None = None
        self.micro_batches = 0  # consumed this session
        self.warm: tuple[float, int] | None = None  # (clock, micro-batches) after WARMUP_STEPS steps

    @property
    def seconds(self) -> float:
        if self.t_start is None:
            return 0.0
        return (self.t_end or time.perf_counter()) - self.t_start

    @property
    def tokens_per_second(self) -> float:
        s = self.seconds
        return self.counts.real / s if s > 0 else 0.0

    @property
    def tokens_per_second_after_warmup(self) -> float | None:
        """Real tokens/s over the steps after the first ``WARMUP_STEPS`` of this session; None when
        training has ended with no step after them (or has not ended)."""
        if self.warm is None or self.t_end is None:
            return None
        t_warm, skipped = self.warm
        consumed = min(self.micro_batches, len(self.counts.real_per_batch))
        seconds = self.t_end - t_warm
        if consumed <= skipped or seconds <= 0:
            return None
        return sum(self.counts.real_per_batch[skipped:consumed]) / seconds

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

    def on_substep_end(self, args, state, control, **kwargs):
        self.micro_batches += 1

    def on_step_end(self, args, state, control, **kwargs):
        self.micro_batches += 1
        if self.warm is None and state.global_step - self.start_step >= WARMUP_STEPS:
            _sync_cuda()
            self.warm = (time.perf_counter(), self.micro_batches)
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step, tps=f"{self.tokens_per_second:,.0f}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.last_loss = float(logs["loss"])
            if self.progress is not None:
                self.progress.update(self.task, loss=f"{self.last_loss:.4f}")

    def on_train_end(self, args, state, control, **kwargs):
        _sync_cuda()
        self.t_end = time.perf_counter()
        self.close()

    def close(self) -> None:
        """Stop the bar (also when training ends with an exception, so the terminal is restored)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
