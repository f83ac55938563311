"""Training backends. Both return a PEFT-wrapped model and its tokenizer; training is shared (TRL).

``unsloth`` must be imported before trl/transformers/peft (it patches them process-wide), so the
backend is chosen, and Unsloth imported, before any of those are.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any, get_args

from finetune.config import ALL_LINEAR, Backend
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
    raise TermnormError(f"unknown backend {requested!r} (known: {', '.join(get_args(Backend))})")


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


def _is_linear(module: Any) -> bool:
    import torch
    from transformers.pytorch_utils import Conv1D  # GPT-2's linear layers

    # bitsandbytes' 4-bit and 8-bit layers subclass torch.nn.Linear.
    return isinstance(module, (torch.nn.Linear, Conv1D))


def block_linear_names(model: Any) -> list[str]:
    """The names (last part, first seen first) of the linear layers inside the model's blocks:
    what PEFT's ``all-linear`` targets. A block is an item of a layer list (a numbered part in the
    module path, ``model.layers.0.self_attn.q_proj``); the output head (and anything else outside
    the blocks, such as embeddings) is left out. Llama: q/k/v/o/gate/up/down_proj; Phi-3:
    qkv_proj, o_proj, gate_up_proj, down_proj."""
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    names: dict[str, None] = {}  # an ordered set
    for path, module in model.named_modules():
        if module is not head and _is_linear(module) and any(p.isdigit() for p in path.split(".")):
            names.setdefault(path.rsplit(".", 1)[-1])
    return list(names)


def resolve_target_modules(model: Any, targets: list[str] | str) -> list[str]:
    """``--target-modules`` as layer names of ``model`` (for libraries without PEFT's ``all-linear``,
    such as Unsloth); each named layer must exist."""
    if targets != ALL_LINEAR:
        check_target_modules(model, targets)
        return list(targets)
    names = block_linear_names(model)
    if not names:
        raise TermnormError("--target-modules all-linear: the model has no linear layers inside numbered "
                            "blocks; name the layers to train with --target-modules")
    return names


def check_target_modules(model: Any, targets: list[str] | str) -> None:
    """Every name in ``--target-modules`` must name a layer of the model.

    PEFT raises only when none matches (a traceback) and silently ignores the ones that don't when
    another does, so a typo would train fewer layers than asked for.
    """
    if targets == ALL_LINEAR:
        return
    modules = list(model.named_modules())
    names = [n for n, _ in modules if n]
    linear = sorted({n.rsplit(".", 1)[-1] for n, m in modules if _is_linear(m)})
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise TermnormError(f"--target-modules: no layer named {', '.join(missing)} in the model "
                            f"(its linear layers: {', '.join(linear) or 'none'}; or use all-linear)")
