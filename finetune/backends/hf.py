"""transformers + PEFT: the base model in full precision (bf16 on a GPU that has it), LoRA on top.

Runs on CPU or GPU and unchanged under ``accelerate launch`` (the Trainer does the data parallel
part; the model is loaded without a device map so each process holds a full copy).
"""

from __future__ import annotations

from typing import Any

from finetune.backends import check_target_modules, first_line
from finetune.config import FinetuneConfig, library_kwargs
from termnorm_eval.errors import TermnormError


def load_tokenizer(cfg: FinetuneConfig) -> Any:
    from transformers import AutoTokenizer

    kw = {"gguf_file": cfg.gguf_file} if cfg.gguf_file else {}
    return AutoTokenizer.from_pretrained(cfg.model, **kw)


def _dtype_kwarg(dtype: Any) -> dict[str, Any]:
    # transformers renamed `torch_dtype` to `dtype` in 4.56; older releases ignore `dtype` silently.
    import transformers
    from packaging.version import Version

    key = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    return {key: dtype}


def compute_dtype() -> Any:
    import torch

    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.float32


def untag_gguf(model: Any) -> None:
    """transformers dequantizes GGUF weights into plain tensors but still tags the model as
    GGUF-quantized, and the Trainer refuses to train such a model; LoRA on the dequantized weights
    is ordinary LoRA, so drop the tag."""
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    if "is_quantized" in vars(model):
        model.is_quantized = False


def load(cfg: FinetuneConfig, tokenizer: Any) -> tuple[Any, Any]:
    """Base model with fresh LoRA weights (seeded right before they are created)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, set_seed

    assert cfg.model is not None  # a required setting: FinetuneConfig refuses None
    kw: dict[str, Any] = {"gguf_file": cfg.gguf_file} if cfg.gguf_file else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(cfg.model, **_dtype_kwarg(compute_dtype()), **kw)
    except TermnormError:
        raise
    except Exception as e:  # loaders raise anything for a damaged file: say it in one line
        raise TermnormError(f"cannot load the weights of base model {cfg.model!r}: {first_line(e)}") from None
    if cfg.gguf_file:
        untag_gguf(model)
    check_target_modules(model, cfg.target_modules)
    set_seed(cfg.seed)
    # PEFT resolves all-linear itself; the other settings are renamed by their "peft" metadata.
    lora = LoraConfig(**library_kwargs(cfg, "peft"), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lora), tokenizer
