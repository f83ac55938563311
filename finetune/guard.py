"""Stop a diverging run: a NaN/inf loss, or LoRA weights that are no longer finite.

Without this a too-high learning rate "succeeds": the Trainer hides NaN losses in its logs
(``logging_nan_inf_filter``, turned off in train.py) and writes an all-NaN adapter with a
normal-looking manifest. The checks are on the main and every other process alike (the logged loss
is averaged over processes and the weights are in sync), so all of them stop together.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback

from termnorm_eval.errors import TermnormError


class Diverged(TermnormError):
    """Training produced a non-finite loss or weights; nothing of it is worth saving."""


def non_finite_weights(model: Any) -> str | None:
    """The name of the first trainable parameter holding NaN/inf, or None (LoRA: a few MB to check)."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and not bool(torch.isfinite(p).all()):
                return name
    return None


class FiniteGuard(TrainerCallback):
    """Raise ``Diverged`` on a non-finite logged loss, and before a checkpoint of non-finite weights."""

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate

    def _stop(self, step: int, what: str) -> None:
        raise Diverged(f"training diverged at step {step} ({what}); no adapter was written; try a lower "
                       f"--learning-rate than {self.learning_rate:g}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if isinstance(loss, (int, float)) and not math.isfinite(loss):
            self._stop(state.global_step, f"loss {loss}")

    def on_step_end(self, args, state, control, model=None, **kwargs):
        # Runs before the Trainer saves this step's checkpoint: never checkpoint NaN weights.
        if control.should_save and model is not None:
            name = non_finite_weights(model)
            if name:
                self._stop(state.global_step, f"weight {name} is not finite")
