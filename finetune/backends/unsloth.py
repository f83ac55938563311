"""Unsloth: 4-bit QLoRA (by default) with its fused kernels, on a CUDA GPU.

Written against Unsloth's documented API (``FastLanguageModel.from_pretrained`` /
``get_peft_model``); NOT run in this project's CPU-only development environment. The training
loop is the same TRL SFTTrainer as the hf backend, and ``model.save_pretrained`` writes a standard
PEFT adapter that lm-eval's ``peft=`` loads without Unsloth.
"""

from __future__ import annotations

from typing import Any

from finetune.backends import first_line, resolve_target_modules
from finetune.config import FinetuneConfig, library_kwargs
from termnorm_eval.errors import TermnormError


def load(cfg: FinetuneConfig, tokenizer: Any) -> tuple[Any, Any]:
    if cfg.gguf_file:
        raise TermnormError("GGUF base models are supported by --backend hf only")
    from transformers import set_seed
    from unsloth import FastLanguageModel  # imported first by finetune.backends.import_unsloth_first

    try:
        model, tok = FastLanguageModel.from_pretrained(
            model_name=cfg.model,
            **library_kwargs(cfg, "unsloth"),  # max_seq_length, load_in_4bit
            dtype=None,  # bf16 where supported, else fp16
            # Keep the exact base: lm-eval scores the adapter on `pretrained=<model>`, not a remapped copy.
            use_exact_model_name=True,
        )
    except TermnormError:
        raise
    except Exception as e:  # loaders raise anything for a damaged file: say it in one line
        raise TermnormError(f"cannot load the weights of base model {cfg.model!r}: {first_line(e)}") from None
    # Unsloth takes layer names only: all-linear becomes this model's (Phi-3: qkv_proj, gate_up_proj).
    lora = library_kwargs(cfg, "peft") | {"target_modules": resolve_target_modules(model, cfg.target_modules)}
    set_seed(cfg.seed)
    model = FastLanguageModel.get_peft_model(
        model,
        **lora,
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=cfg.seed,
    )
    # Unsloth's tokenizer may carry fixes (padding side, pad token); the chat decision was taken
    # on the plain tokenizer, whose template Unsloth keeps.
    return model, tok
