"""Run settings: defaults, a YAML config file, then command-line flags (flags win).

Config keys are the field names below (``lora_r`` or ``lora-r``); an unknown key, a value of the
wrong type or out of range is a one-line ``TermnormError`` naming the flag, or the file and the key,
raised before any model is loaded. Flags and config files go through the same checks (``RANGES``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError

BACKENDS = ("auto", "hf", "unsloth")
CHAT_MODES = ("auto", "on", "off")
# Unsloth needs explicit module names; "all-linear" (PEFT) picks the same 7 projections on Llama-style
# models and also works for architectures with other layer names.
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

_I32 = 2**31 - 1
# Allowed ranges. Ints: (lowest, highest). Floats: (low, low included, high or None, high included);
# NaN and infinities are always refused (they train garbage or crash deep inside the Trainer).
INT_RANGES: dict[str, tuple[int, int]] = {
    "seed": (0, 2**32 - 1),  # what numpy's and torch's seeding accept
    "batch_size": (1, 2**16),
    "grad_accum": (1, 2**16),
    "max_seq_length": (1, 2**20),
    "lora_r": (1, 2**16),
    "lora_alpha": (1, 2**20),
    "save_steps": (1, _I32),
    "save_total_limit": (1, _I32),
    "logging_steps": (1, _I32),
    "limit_pairs": (1, _I32),
}
FLOAT_RANGES: dict[str, tuple[float, bool, float | None, bool]] = {
    "epochs": (0.0, False, 10_000.0, True),
    # No upper bound: a rate that is merely too high is caught by the divergence guard in training.
    "learning_rate": (0.0, False, None, False),
    "weight_decay": (0.0, True, None, False),
    "warmup_ratio": (0.0, True, 1.0, False),
    "lora_dropout": (0.0, True, 1.0, False),
}
_MODULE_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
# A config file is a handful of settings: anything larger or deeper is not one (and would make
# the parser or an error message slow).
MAX_CONFIG_BYTES = 1024 * 1024
MAX_YAML_DEPTH = 16

_short_repr = reprlib.Repr()
_short_repr.maxlevel, _short_repr.maxlist, _short_repr.maxdict = 2, 4, 4
_short_repr.maxstring, _short_repr.maxother = 60, 60


def short(value: Any, limit: int = 80) -> str:
    """A repr for error messages: bounded in length and in the work to build it."""
    text = _short_repr.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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

    def __post_init__(self) -> None:
        # The backstop for code that builds a config directly; build_config has already checked
        # every value with the flag or file it came from.
        for key in _FIELDS:
            problem = value_problem(key, getattr(self, key))
            if problem:
                raise TermnormError(f"{key.replace('_', '-')} {problem}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("extra")
        return d


_FIELDS = {f.name: f for f in dataclasses.fields(FinetuneConfig) if f.name != "extra"}


def value_problem(key: str, value: Any) -> str | None:
    """Why ``value`` is not allowed for ``key`` ("must be ... (got ...)"), or None. The one place
    where ranges are checked."""
    if value is None:
        return None
    if key in INT_RANGES:
        lo, hi = INT_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            return f"must be an integer from {lo} to {hi} (got {short(value)})"
    elif key in FLOAT_RANGES:
        lo, lo_in, hi, hi_in = FLOAT_RANGES[key]
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and (value >= lo if lo_in else value > lo)
              and (hi is None or (value <= hi if hi_in else value < hi)))
        if not ok:
            if hi is None:
                rng = f"a finite number {'>=' if lo_in else '>'} {lo:g}"
            else:
                rng = f"a number in {'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"
            return f"must be {rng} (got {short(value)})"
    elif key == "target_modules" and value != "all-linear":
        if not isinstance(value, list) or not value:
            return "must be all-linear or a comma-separated list of module names"
        bad = [m for m in value if not isinstance(m, str) or not _MODULE_NAME.match(m) or m == "all-linear"]
        if bad:
            return (f"must be all-linear or module names such as q_proj,v_proj "
                    f"(got {short(bad[0])})")
    return None


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
        try:
            return int(value)
        except ValueError:
            raise ValueError("expected an integer") from None
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError("expected a number")
        try:
            return float(value)
        except (ValueError, OverflowError):  # OverflowError: an integer beyond float range
            raise ValueError("expected a finite number") from None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise TypeError("expected a string")
    return str(value)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _yaml_loader() -> type:
    import yaml

    class ConfigLoader(yaml.SafeLoader):
        """SafeLoader without aliases (a few lines of ``&a [*a, *a]`` expand to billions of items)
        and without deep nesting (the composer recurses once per level)."""

        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a "
                                                  "config file", mark)
            self.depth += 1
            try:
                if self.depth > MAX_YAML_DEPTH:
                    raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} "
                                                      "levels", self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return ConfigLoader


def _read_yaml(p: Path) -> Any:
    import yaml

    try:
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise TermnormError(f"{p}: config file is {size:,} bytes; a config file holds a few settings "
                                f"(at most {MAX_CONFIG_BYTES:,} bytes)")
        raw = p.read_bytes()
    except OSError as e:
        raise TermnormError(f"{p}: cannot read the config file ({e.strerror})") from None
    nul = raw.find(b"\0")
    if nul >= 0:
        raise TermnormError(f"{p}: not a text file (binary data at byte {nul})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TermnormError(f"{p}: not UTF-8 text (invalid byte at offset {e.start})") from None
    try:
        return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        why = _one_line(e.problem or e.context or "")
        raise TermnormError(f"{p}{where}: not valid YAML ({why})") from None
    except yaml.reader.ReaderError as e:
        raise TermnormError(f"{p}: not valid YAML (unacceptable character #x{e.character:04x} at "
                            f"position {e.position})") from None
    except (yaml.YAMLError, ValueError, RecursionError, OverflowError) as e:
        # ValueError: e.g. an integer of more digits than Python converts.
        raise TermnormError(f"{p}: not valid YAML ({_one_line(str(e)) or type(e).__name__})") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config keys; every key is checked and coerced here."""
    p = Path(path)
    if not p.is_file():
        raise TermnormError(f"{p}: config file not found")
    data = _read_yaml(p)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TermnormError(f"{p}: a config file must be a mapping of keys to values")
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).replace("-", "_")
        if key not in _FIELDS or key == "resume":
            known = ", ".join(k for k in _FIELDS if k != "resume")
            raise TermnormError(f"{p}: unknown config key {short(raw_key)} (known: {known})")
        if value is None:  # `key:` with no value: not set, as for a flag left out
            continue
        try:
            out[key] = coerce(key, value)
        except (TypeError, ValueError) as e:
            raise TermnormError(f"{p}: config key {short(raw_key)}: {e} (got {short(value)})") from None
        problem = value_problem(key, out[key])
        if problem:
            raise TermnormError(f"{p}: config key {short(raw_key)} {problem}")
    return out


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def build_config(config_file: str | Path | None, flags: dict[str, Any]) -> FinetuneConfig:
    """Defaults < config file < flags (a flag left at None is 'not given')."""
    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    for key, value in flags.items():
        if value is not None:
            try:
                values[key] = coerce(key, value)
            except (TypeError, ValueError) as e:
                raise TermnormError(f"{flag_name(key)}: {e} (got {short(value)})") from None
            problem = value_problem(key, values[key])
            if problem:
                raise TermnormError(f"{flag_name(key)} {problem}")
    cfg = FinetuneConfig(**values)
    validate(cfg)
    return cfg


def validate(cfg: FinetuneConfig) -> None:
    """Checks that need no model or data: required settings and choices (ranges: ``value_problem``)."""
    if not cfg.model:
        raise TermnormError("no base model given (--model or `model:` in the config file)")
    if not cfg.output_dir:
        raise TermnormError("no output directory given (--output-dir or `output_dir:` in the config file)")
    if cfg.backend not in BACKENDS:
        raise TermnormError(f"unknown backend {short(cfg.backend)} (known: {', '.join(BACKENDS)})")
    if cfg.chat_template not in CHAT_MODES:
        raise TermnormError(f"chat-template must be one of {', '.join(CHAT_MODES)} "
                            f"(got {short(cfg.chat_template)})")
    if cfg.directions is not None and not cfg.directions:
        raise TermnormError("directions: empty list")
