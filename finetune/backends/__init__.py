"""Training backends. Both return a PEFT-wrapped model and its tokenizer; training is shared (TRL).

``unsloth`` must be imported before trl/transformers/peft (it patches them process-wide), so the
backend is chosen, and Unsloth imported, before any of those are.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from termnorm_eval.errors import TermnormError

GPU_EXTRA_HINT = "install it with: pip install 'termnorm-eval[gpu]' (needs a CUDA GPU)"


def unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def choose_backend(requested: str) -> str:
    """auto: Unsloth when it is installed and a CUDA GPU is present, else transformers + PEFT."""
    if requested == "hf":
        return "hf"
    if requested == "unsloth":
        if not unsloth_installed():
            raise TermnormError(f"backend 'unsloth' needs the Unsloth package; {GPU_EXTRA_HINT}")
        if not cuda_available():
            # Asked for explicitly: Unsloth >= 2026.10.9 falls back to CPU (slowly) and says so.
            print("termnorm-finetune: no CUDA GPU; Unsloth will use its (slow) CPU fallback", file=sys.stderr)
        return "unsloth"
    if requested == "auto":
        return "unsloth" if unsloth_installed() and cuda_available() else "hf"
    raise TermnormError(f"unknown backend {requested!r} (known: auto, hf, unsloth)")


def import_unsloth_first() -> str:
    """Import Unsloth before trl/transformers/peft; returns its version."""
    late = [m for m in ("transformers", "trl", "peft") if m in sys.modules]
    if late:
        # Unsloth would only warn and run unpatched (slow): refuse instead of silently losing its speed.
        raise TermnormError(f"Unsloth must be imported before {', '.join(late)}; run termnorm-finetune "
                            "in a fresh process")
    try:
        import unsloth
    except (ImportError, NotImplementedError, RuntimeError) as e:
        # Releases before 2026.10.9 raise NotImplementedError without a GPU.
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TermnormError(f"cannot import Unsloth ({first}); {GPU_EXTRA_HINT}") from None
    return getattr(unsloth, "__version__", "unknown")


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def check_target_modules(model: Any, targets: list[str] | str) -> None:
    """Every name in ``--target-modules`` must name a layer of the model.

    PEFT raises only when none matches (a traceback) and silently ignores the ones that don't when
    another does, so a typo would train fewer layers than asked for.
    """
    if targets == "all-linear":
        return
    import torch

    modules = list(model.named_modules())
    names = [n for n, _ in modules if n]
    linear = sorted({n.rsplit(".", 1)[-1] for n, m in modules if isinstance(m, torch.nn.Linear)})
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise TermnormError(f"--target-modules: no layer named {', '.join(missing)} in the model "
                            f"(its linear layers: {', '.join(linear) or 'none'}; or use all-linear)")
