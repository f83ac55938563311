"""Shared by the fine-tuning tests: run `termnorm-finetune` in-process and return its exit status;
add a TrainerCallback to the runs of a test (e.g. a simulated Ctrl-C)."""

from __future__ import annotations

from typing import Any

import pytest

from finetune.cli import main


def cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def add_callbacks(monkeypatch: pytest.MonkeyPatch, *callbacks: Any) -> None:
    """Give every trainer built during the test these callbacks, after termnorm-finetune's own."""
    from finetune import train

    build = train.build_trainer

    def build_with(model, tokenizer, tset, args, own, *rest, **kw):
        return build(model, tokenizer, tset, args, [*own, *callbacks], *rest, **kw)

    monkeypatch.setattr(train, "build_trainer", build_with)


def interrupt_after(step: int) -> Any:
    """A callback that presses Ctrl-C right after the checkpoint of ``step`` is written."""
    from transformers import TrainerCallback

    class InterruptAfter(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= step:
                raise KeyboardInterrupt(f"test: interrupted after step {state.global_step}")

    return InterruptAfter()
