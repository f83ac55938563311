"""Run settings: ``FinetuneConfig`` is their only declaration.

Each field is declared once, PEFT ``LoraConfig`` style, as ``field(default=..., metadata={...})``;
the ``termnorm-finetune`` options (finetune/cli.py), the config-file keys and the options table of
finetune/README.md (finetune/docs.py) are generated from the fields. Metadata keys (``METADATA``):

- ``help``: the option's help text (required).
- ``flags``: option names besides ``--<key-with-dashes>`` (``-m``, ``--lr``); a ``bool`` field is
  ``--x/--no-x``.
- ``panel``: the ``--help`` panel; ``metavar``: the value's name in ``--help``.
- ``unset``: what the default ``None`` means (shown as the default).
- ``required``: the setting must be given; the value names it in the error.
- ``check``: a ``Check`` (range, non-empty, module names); a ``Literal`` type is its own check.
- ``trl`` / ``peft`` / ``unsloth``: the name of the same knob in ``SFTConfig``, ``LoraConfig``
  or Unsloth's ``FastLanguageModel.from_pretrained`` (``library_kwargs``): the one mapping.
- ``config_key``: False for a field that a config file may not set (``resume``).

Settings come from the defaults, a YAML config file, then command-line flags (flags win). Config
keys are the field names (``lora_r`` or ``lora-r``); an unknown key, a value of the wrong type or
out of range is a one-line ``TermnormError`` naming the flag, or the file and the key, raised
before any model is loaded. Values are converted by the field's type (``coerce``) and checked by
``value_problem``, for flags, config files and ``__post_init__`` alike.

Not ``trl.TrlParser`` (or transformers' ``HfArgumentParser``, which reads the same
``metadata["help"]``): importing it imports trl/transformers/peft before the backend is chosen,
and Unsloth must be imported before them (finetune/backends).
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol, Union, get_args, get_origin, get_type_hints

from termnorm_eval.errors import TermnormError
from termnorm_eval.terminologies import MENTION_DIRECTIONS

Backend = Literal["auto", "hf", "unsloth"]
ChatTemplate = Literal["auto", "on", "off"]
ALL_LINEAR: Final = "all-linear"  # PEFT's name for "every linear layer but the output head"
Library = Literal["trl", "peft", "unsloth"]
LIBRARY_LABELS: dict[Library, str] = {"trl": "TRL", "peft": "PEFT", "unsloth": "Unsloth"}
METADATA = frozenset({"help", "flags", "panel", "metavar", "unset", "required", "check", "config_key",
                      *LIBRARY_LABELS})
HYPER, DATA, RUN = "Hyperparameters", "Data", "Run"  # --help panels

# A config file is a handful of settings: anything larger or deeper is not one (and would make
# the parser or an error message slow).
MAX_CONFIG_BYTES = 1024 * 1024
MAX_YAML_DEPTH = 16
_I32 = 2**31 - 1

_short_repr = reprlib.Repr()
_short_repr.maxlevel, _short_repr.maxlist, _short_repr.maxdict = 2, 4, 4
_short_repr.maxstring, _short_repr.maxother = 60, 60


def short(value: Any, limit: int = 80) -> str:
    """A repr for error messages: bounded in length and in the work to build it."""
    text = _short_repr.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Check(Protocol):
    """A field's ``check``: ``problem`` says why a (converted) value is not allowed, or None;
    ``str()`` is the allowed values, for the README table."""

    def problem(self, value: object) -> str | None: ...


@dataclass(frozen=True)
class IntRange:
    lo: int
    hi: int

    def problem(self, value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not self.lo <= value <= self.hi:
            return f"must be an integer from {self.lo} to {self.hi} (got {short(value)})"
        return None

    def __str__(self) -> str:
        return f"{self.lo} to {self.hi}"


@dataclass(frozen=True)
class NumberRange:
    """A finite number above ``lo`` (or at it, ``lo_in``), below ``hi`` (or at it, ``hi_in``).
    NaN and infinities are always refused: they train garbage or crash deep inside the Trainer."""

    lo: float
    lo_in: bool
    hi: float | None = None  # None: no upper bound
    hi_in: bool = False

    def problem(self, value: object) -> str | None:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and (value >= self.lo if self.lo_in else value > self.lo)
              and (self.hi is None or (value <= self.hi if self.hi_in else value < self.hi)))
        return None if ok else f"must be {self} (got {short(value)})"

    def __str__(self) -> str:
        if self.hi is None:
            return f"a finite number {'>=' if self.lo_in else '>'} {self.lo:g}"
        return f"a number in {'[' if self.lo_in else '('}{self.lo:g}, {self.hi:g}{']' if self.hi_in else ')'}"


@dataclass(frozen=True)
class NonEmpty:
    what: str

    def problem(self, value: object) -> str | None:
        return None if value else f"must name at least one {self.what} (got {short(value)})"

    def __str__(self) -> str:
        return f"one or more {self.what}s"


_MODULE_NAME = re.compile(r"^[A-Za-z0-9_.]+$")


@dataclass(frozen=True)
class ModuleNames:
    """``all-linear`` (its ``Literal``) or layer names; a name is never a regex (PEFT reads a
    plain string as one)."""

    def problem(self, value: object) -> str | None:
        if value == ALL_LINEAR:
            return None
        if not isinstance(value, list) or not value:
            return f"must be {ALL_LINEAR} or a comma-separated list of module names"
        bad = [m for m in value if not isinstance(m, str) or not _MODULE_NAME.match(m) or m == ALL_LINEAR]
        if bad:
            return f"must be {ALL_LINEAR} or module names such as q_proj,v_proj (got {short(bad[0])})"
        return None

    def __str__(self) -> str:
        return f"{ALL_LINEAR} or module names"


FORM_KINDS: Final = ("label", *MENTION_DIRECTIONS)  # train_forms values: label and the mention kinds


@dataclass(frozen=True)
class FormKinds:
    """``train_forms``: ``label`` (always trained, so always listed) and mention kinds; which kinds a
    terminology has is checked with its data (finetune/data.py)."""

    def problem(self, value: object) -> str | None:
        if not isinstance(value, list) or not value:
            return f"must list label and any of {', '.join(FORM_KINDS[1:])}"
        bad = [v for v in value if v not in FORM_KINDS]
        if bad:
            return f"must be among {', '.join(FORM_KINDS)} (got {short(bad[0])})"
        if FORM_KINDS[0] not in value:
            return f"must include label: the labels are always trained (got {short(value)})"
        return None

    def __str__(self) -> str:
        return f"label plus any of {', '.join(FORM_KINDS[1:])}"


@dataclass
class FinetuneConfig:
    """Settings of one ``termnorm-finetune`` run (each field's ``help`` says what it does).

    Config keys and flags are the field names (``--lora-r``, ``lora_r:``). ``__post_init__``
    refuses a missing required setting and any value of the wrong type, out of range or not
    among the choices, so no object holds a setting that would fail later, inside a library.
    """

    model: str | None = field(default=None, metadata={
        "help": "Base model: hub id or local folder (the folder of the .gguf file for GGUF).",
        "flags": ("-m",), "required": "base model"})
    gguf_file: str | None = field(default=None, metadata={
        "help": "GGUF file name inside --model (transformers dequantizes it; hf backend only)."})
    terminology: str = field(default="go", metadata={
        "help": "Terminology key (go, hpo, gene, or one added with add-ontology).",
        "flags": ("-t",), "panel": DATA})
    directions: list[str] | None = field(default=None, metadata={
        "help": "Comma-separated label directions, e.g. term2id,id2term (a mention direction such as "
        "synonym2id is refused: see --train-forms).", "panel": DATA,
        "unset": "all label directions of the terminology", "check": NonEmpty("direction")})
    train_forms: list[str] = field(default_factory=lambda: ["label"], metadata={
        "help": "What the trained concepts are asked through: label (always), plus forms of the kinds "
        "synonym, lay (ontologies), alias, prev (genes): every usable form of the kind except the one "
        "a mention task asks, in that task's prompts, so its _train split still asks a form training "
        "never showed (does form training transfer to unseen forms?).", "panel": DATA,
        "check": FormKinds()})
    mention_tasks: bool = field(default=False, metadata={
        "help": "Score the mention tasks of the trained directions too (synonym2id, lay2id, alias2symbol, "
        "prev2symbol: the trained concepts through forms training never showed): the printed lm_eval "
        "commands include them, and with --limit-pairs N the concepts of their first N training "
        "documents are trained too (through their labels), so --limit N scores trained concepts only.",
        "panel": DATA})
    data_dir: str | None = field(default=None, metadata={
        "help": "Split folder (manifest.json + <key>/train.jsonl); e.g. add-ontology's output.",
        "panel": DATA, "metavar": "<path>", "unset": "the shipped splits"})
    output_dir: str | None = field(default=None, metadata={
        "help": "Where the adapter, checkpoints and termnorm_manifest.json go.",
        "flags": ("-o",), "panel": RUN, "metavar": "<path>", "required": "output directory"})
    backend: Backend = field(default="auto", metadata={
        "help": "auto (Unsloth if installed and a CUDA GPU is present, else hf), hf (transformers + "
        "PEFT, CPU or GPU), unsloth (GPU, 4-bit QLoRA; its slow CPU fallback without one).", "panel": RUN})
    epochs: float = field(default=3.0, metadata={
        "help": "Training epochs.", "panel": HYPER, "check": NumberRange(0.0, False, 10_000.0, True),
        "trl": "num_train_epochs"})
    lora_r: int = field(default=16, metadata={
        "help": "LoRA rank.", "panel": HYPER, "check": IntRange(1, 2**16), "peft": "r"})
    lora_alpha: int = field(default=32, metadata={
        "help": "LoRA alpha (scale = alpha / r).", "panel": HYPER, "check": IntRange(1, 2**20),
        "peft": "lora_alpha"})
    lora_dropout: float = field(default=0.0, metadata={
        "help": "LoRA dropout.", "panel": HYPER, "check": NumberRange(0.0, True, 1.0, False),
        "peft": "lora_dropout"})
    target_modules: list[str] | Literal["all-linear"] = field(default=ALL_LINEAR, metadata={
        "help": "Comma-separated layer names, or all-linear: every linear layer inside the model's "
        "blocks (PEFT's all-linear; for Unsloth resolved to the loaded model's layer names).",
        "panel": HYPER, "check": ModuleNames(), "peft": "target_modules"})
    learning_rate: float = field(default=2e-4, metadata={
        # No upper bound: a rate that is merely too high is caught by the divergence guard.
        "help": "Peak learning rate.", "flags": ("--lr",), "panel": HYPER,
        "check": NumberRange(0.0, False), "trl": "learning_rate"})
    lr_scheduler: str = field(default="linear", metadata={
        # Checked by SFTConfig (its list lives in transformers, which cannot be imported this early).
        "help": "transformers scheduler name (linear, cosine, constant, ...).", "panel": HYPER,
        "trl": "lr_scheduler_type"})
    warmup_ratio: float = field(default=0.0, metadata={
        "help": "Share of steps spent warming up the learning rate.", "panel": HYPER,
        "check": NumberRange(0.0, True, 1.0, False), "trl": "warmup_ratio"})
    weight_decay: float = field(default=0.0, metadata={
        "help": "AdamW weight decay.", "panel": HYPER, "check": NumberRange(0.0, True),
        "trl": "weight_decay"})
    batch_size: int = field(default=8, metadata={
        "help": "Rows per device per step.", "panel": HYPER, "check": IntRange(1, 2**16),
        "trl": "per_device_train_batch_size"})
    grad_accum: int = field(default=1, metadata={
        "help": "Gradient accumulation steps.", "panel": HYPER, "check": IntRange(1, 2**16),
        "trl": "gradient_accumulation_steps"})
    max_seq_length: int = field(default=256, metadata={
        # Not TRL's max_length, which truncates silently (left at None in train._sft_config).
        "help": "Longest allowed row in tokens; a longer row is an error, never silently cut.",
        "panel": HYPER, "check": IntRange(1, 2**20), "unsloth": "max_seq_length"})
    seed: int = field(default=42, metadata={
        "help": "Seed for LoRA init, data order and dropout.", "panel": RUN,
        "check": IntRange(0, 2**32 - 1),  # what numpy's and torch's seeding accept
        "trl": "seed"})
    limit_pairs: int | None = field(default=None, metadata={
        "help": "Train only on the first N records per direction, in store order (tests, demos); "
        "the printed lm_eval commands then use --limit N (with --mention-tasks, the records of the "
        "first N documents of those tasks are trained too).", "panel": DATA, "unset": "all records",
        "check": IntRange(1, _I32)})
    save_steps: int = field(default=200, metadata={
        "help": "Write a checkpoint every N optimizer steps.", "panel": RUN, "check": IntRange(1, _I32),
        "trl": "save_steps"})
    save_total_limit: int = field(default=2, metadata={
        "help": "Keep at most N checkpoints.", "panel": RUN, "check": IntRange(1, _I32),
        "trl": "save_total_limit"})
    logging_steps: int = field(default=10, metadata={
        "help": "Log the loss every N steps (the loss curve in the manifest).", "panel": RUN,
        "check": IntRange(1, _I32), "trl": "logging_steps"})
    chat_template: ChatTemplate = field(default="auto", metadata={
        "help": "auto: chat-formatted rows when the base tokenizer has a chat template; on; off.",
        "panel": DATA})
    load_in_4bit: bool = field(default=True, metadata={
        "help": "Unsloth backend: 4-bit QLoRA.", "panel": HYPER, "unsloth": "load_in_4bit"})
    group_by_length: bool = field(default=True, metadata={
        # Our own sampler (finetune/sampling.py), not TrainingArguments.group_by_length.
        "help": "Batch rows of similar length together (less padding).", "panel": HYPER})
    gradient_checkpointing: bool = field(default=False, metadata={
        # TRL turns it on by default; off here because LoRA on the models this project targets fits
        # without it (~30% more compute). Unsloth uses its own ("unsloth") checkpointing regardless.
        "help": "hf backend: recompute activations in the backward pass (less memory, ~30% more compute).",
        "panel": HYPER, "trl": "gradient_checkpointing"})
    keep_checkpoints: bool = field(default=False, metadata={
        "help": "Keep checkpoints after the final adapter is written.", "panel": RUN})
    # An action, not a setting: --resume is declared in finetune/cli.py; kept here because the run
    # reads it and the manifest records it.
    resume: bool = field(default=False, metadata={
        "help": "Continue the unfinished run in --output-dir from its last checkpoint.",
        "config_key": False})

    def __post_init__(self) -> None:
        # build_config has already checked each value naming the flag or file it came from; this is
        # the check for code that builds a config directly, and for required settings.
        for key in FIELDS:
            problem = value_problem(key, getattr(self, key))
            if problem:
                raise TermnormError(f"{flag_name(key)} {problem}")
        for key, f in FIELDS.items():
            if "required" in f.metadata and not getattr(self, key):
                raise TermnormError(f"no {f.metadata['required']} given ({flag_name(key)} or `{key}:` "
                                    "in the config file)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FieldTypes:
    """What a settings dataclass's type hints say of each field: its alternatives without None,
    the choices of a ``Literal``, the item type of a list, the scalar a flag is parsed as. One
    reading for ``FinetuneConfig`` and the study's ``StudyConfig``."""

    hints: dict[str, Any]

    @classmethod
    def of(cls, config_class: type) -> FieldTypes:
        return cls(get_type_hints(config_class))

    def members(self, key: str) -> list[Any]:
        """The field's type as a list of alternatives, without None."""
        hint = self.hints[key]
        alternatives = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
        return [a for a in alternatives if a is not type(None)]

    def choices(self, key: str) -> tuple[str, ...]:
        """The values a ``Literal`` in the field's type allows (``("auto", "hf", "unsloth")``)."""
        return tuple(v for m in self.members(key) if get_origin(m) is Literal for v in get_args(m))

    def list_item(self, key: str) -> type | None:
        """The item type of a list field (``str`` or ``int``), else None."""
        for m in self.members(key):
            if get_origin(m) is list:
                item: type = get_args(m)[0]
                return item
        return None

    def value_kind(self, key: str) -> type:
        """What a command-line value of ``key`` is parsed as: bool, int, float, or str (lists and
        choices are strings; ``coerce`` splits and checks them)."""
        plain = [m for m in self.members(key) if m in (bool, int, float)]
        return plain[0] if plain else str


FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
CONFIG_KEYS = tuple(k for k, f in FIELDS.items() if f.metadata.get("config_key", True))
_TYPES = FieldTypes.of(FinetuneConfig)
choices = _TYPES.choices
value_kind = _TYPES.value_kind


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def is_list(key: str) -> bool:
    return _TYPES.list_item(key) is not None


def allowed(key: str) -> str:
    """The allowed values in words, for the README table ('' when any value of the type is)."""
    check = FIELDS[key].metadata.get("check")
    if check is not None:
        return str(check)
    return ", ".join(choices(key))


def library_kwargs(cfg: FinetuneConfig, library: Library) -> dict[str, Any]:
    """The settings that are ``library``'s knobs, under its names (``lora_r`` -> PEFT ``r``)."""
    return {f.metadata[library]: getattr(cfg, f.name) for f in FIELDS.values() if library in f.metadata}


def value_problem(key: str, value: Any) -> str | None:
    """Why ``value`` is not allowed for ``key`` ("must be ... (got ...)"), or None: choices and the
    field's ``check``. None means "not set" (required settings: ``__post_init__``)."""
    if value is None:
        return None
    options = choices(key)
    if options and not is_list(key) and value not in options:
        return f"must be one of {', '.join(options)} (got {short(value)})"
    check: Check | None = FIELDS[key].metadata.get("check")
    return check.problem(value) if check is not None else None


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
    if is_list(key):
        items = _as_list(value)
        # A list of just one choice is that choice: `target_modules: [all-linear]` is all-linear.
        return items[0] if len(items) == 1 and items[0] in choices(key) else items
    return coerce_scalar(value_kind(key), value)


def coerce_scalar(kind: type, value: Any) -> Any:
    """A config/flag value as ``kind`` (bool, int, float or str); TypeError/ValueError if it cannot be."""
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


Coerce = Callable[[str, Any], Any]
ValueCheck = Callable[[str, Any], str | None]


def read_checked_mapping(path: str | Path, known: Sequence[str], coerce_value: Coerce, check: ValueCheck,
                         what: str = "a config file") -> dict[str, Any]:
    """The YAML mapping of ``path``, every key one of ``known``, every value converted by
    ``coerce_value`` and checked by ``check`` (each problem a one-line error naming the file and key).

    Shared by the fine-tuning config and `termnorm study`'s, which differ only in their fields.
    """
    p = Path(path)
    if not p.is_file():
        raise TermnormError(f"{p}: config file not found")
    data = _read_yaml(p)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TermnormError(f"{p}: {what} must be a mapping of keys to values")
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).replace("-", "_")
        if key not in known:
            raise TermnormError(f"{p}: unknown config key {short(raw_key)} (known: {', '.join(known)})")
        if value is None:  # `key:` with no value: not set, as for a flag left out
            continue
        out[key] = _checked(key, value, coerce_value, check, f"{p}: config key {short(raw_key)}")
    return out


def apply_flags(values: dict[str, Any], flags: dict[str, Any], coerce_value: Coerce, check: ValueCheck,
                flag: Callable[[str], str]) -> dict[str, Any]:
    """``values`` with every flag that was given (None: not given) converted, checked and set."""
    for key, value in flags.items():
        if value is None:
            continue
        values[key] = _checked(key, value, coerce_value, check, flag(key))
    return values


def _checked(key: str, value: Any, coerce_value: Coerce, check: ValueCheck, name: str) -> Any:
    """``value`` converted and checked for ``key``; a one-line error that starts with ``name``."""
    try:
        converted = coerce_value(key, value)
    except (TypeError, ValueError) as e:
        raise TermnormError(f"{name}: {e} (got {short(value)})") from None
    problem = check(key, converted)
    if problem:
        raise TermnormError(f"{name} {problem}")
    return converted


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config keys; every key is checked and coerced here."""
    return read_checked_mapping(path, CONFIG_KEYS, coerce, value_problem)


def build_config(config_file: str | Path | None, flags: dict[str, Any]) -> FinetuneConfig:
    """Defaults < config file < flags (a flag left at None is 'not given')."""
    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    return FinetuneConfig(**apply_flags(values, flags, coerce, value_problem, flag_name))
