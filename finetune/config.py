"""Run settings: defaults, a YAML config file, then command-line flags (flags win).

Config keys are the field names below (``lora_r`` or ``lora-r``); an unknown key or a value of the
wrong type is a one-line ``TermnormError`` naming the file and the key, raised before any model is
loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError

BACKENDS = ("auto", "hf", "unsloth")
CHAT_MODES = ("auto", "on", "off")
# Unsloth needs explicit module names; "all-linear" (PEFT) picks the same 7 projections on Llama-style
# models and also works for architectures with other layer names.
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class FinetuneConfig:
    model: str | None = None  # hub id or local folder (the folder holding the .gguf for GGUF bases)
    gguf_file: str | None = None  # file name inside `model` (transformers dequantizes it)
    terminology: str = "go"
    directions: list[str] | None = None  # None: every direction of the terminology
    data_dir: str | None = None  # None: the shipped splits
    output_dir: str | None = None
    backend: str = "auto"
    epochs: float = 3.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"
    learning_rate: float = 2e-4
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 8
    grad_accum: int = 1
    max_seq_length: int = 256
    seed: int = 42
    limit_pairs: int | None = None
    save_steps: int = 200
    save_total_limit: int = 2
    logging_steps: int = 10
    chat_template: str = "auto"  # auto: use the base tokenizer's chat template when it has one
    load_in_4bit: bool = True  # unsloth backend only (QLoRA)
    group_by_length: bool = True
    # hf backend: recompute activations in backward (less memory, ~30% more compute). TRL turns it
    # on by default; off here because LoRA on the models this project targets fits without it.
    # Unsloth uses its own ("unsloth") checkpointing regardless.
    gradient_checkpointing: bool = False
    keep_checkpoints: bool = False  # checkpoints are deleted once the final adapter is written
    resume: bool = False
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # not a config key

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("extra")
        return d


_FIELDS = {f.name: f for f in dataclasses.fields(FinetuneConfig) if f.name != "extra"}


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError("expected a list of strings or a comma-separated string")


def coerce(key: str, value: Any) -> Any:
    """Convert a config/flag value to the field's type; raises TypeError/ValueError if impossible."""
    if value is None:
        return None
    if key in ("directions",):
        return _as_list(value)
    if key == "target_modules":
        lst = _as_list(value)
        return "all-linear" if lst == ["all-linear"] else lst
    default = _FIELDS[key].default
    kind = type(default) if default is not None else None
    if key == "limit_pairs":
        kind = int
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise TypeError("expected true or false")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError("expected an integer")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError("expected a number")
        return float(value)
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise TypeError("expected a string")
    return str(value)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config keys; every key is checked and coerced here."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise TermnormError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise TermnormError(f"{p}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TermnormError(f"{p}: a config file must be a mapping of keys to values")
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).replace("-", "_")
        if key not in _FIELDS or key == "resume":
            known = ", ".join(k for k in _FIELDS if k != "resume")
            raise TermnormError(f"{p}: unknown config key {raw_key!r} (known: {known})")
        try:
            out[key] = coerce(key, value)
        except (TypeError, ValueError) as e:
            raise TermnormError(f"{p}: config key {raw_key!r}: {e} (got {value!r})") from None
    return out


def build_config(config_file: str | Path | None, flags: dict[str, Any]) -> FinetuneConfig:
    """Defaults < config file < flags (a flag left at None is 'not given')."""
    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    for key, value in flags.items():
        if value is not None:
            values[key] = coerce(key, value)
    cfg = FinetuneConfig(**values)
    validate(cfg)
    return cfg


def validate(cfg: FinetuneConfig) -> None:
    """Checks that need no model or data: ranges and choices."""
    if not cfg.model:
        raise TermnormError("no base model given (--model or `model:` in the config file)")
    if not cfg.output_dir:
        raise TermnormError("no output directory given (--output-dir or `output_dir:` in the config file)")
    if cfg.backend not in BACKENDS:
        raise TermnormError(f"unknown backend {cfg.backend!r} (known: {', '.join(BACKENDS)})")
    if cfg.chat_template not in CHAT_MODES:
        raise TermnormError(f"chat-template must be one of {', '.join(CHAT_MODES)} "
                            f"(got {cfg.chat_template!r})")
    positive = ("epochs", "lora_r", "lora_alpha", "learning_rate", "batch_size", "grad_accum",
                "max_seq_length", "save_steps", "logging_steps", "save_total_limit")
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise TermnormError(f"{name.replace('_', '-')} must be positive (got {getattr(cfg, name)})")
    if not 0.0 <= cfg.lora_dropout < 1.0:
        raise TermnormError(f"lora-dropout must be in [0, 1) (got {cfg.lora_dropout})")
    if not 0.0 <= cfg.warmup_ratio < 1.0:
        raise TermnormError(f"warmup-ratio must be in [0, 1) (got {cfg.warmup_ratio})")
    if cfg.limit_pairs is not None and cfg.limit_pairs <= 0:
        raise TermnormError(f"limit-pairs must be positive (got {cfg.limit_pairs})")
    if cfg.directions is not None and not cfg.directions:
        raise TermnormError("directions: empty list")
