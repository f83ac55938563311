"""Study settings: ``StudyConfig`` is their only declaration (finetune's ``FinetuneConfig`` style).

Every field has its default and ``metadata={"help": ...}``; the ``termnorm study`` options and
the YAML keys are generated from the fields (a key is the field name, ``-`` or ``_``). Settings
come from the defaults, the YAML file, then flags (flags win). An unknown key, a value of the wrong
type or out of range is one line naming the file and key (or the flag), before anything runs.

Metadata keys: ``help`` (required), ``check`` (a finetune ``Check``), ``unset`` (what None
means), ``panel`` (the ``--help`` panel). The YAML reader is finetune's (no aliases, bounded size
and depth, one-line errors).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from finetune.config import (
    FieldTypes,
    IntRange,
    NonEmpty,
    NumberRange,
    apply_flags,
    coerce_scalar,
    flag_name,
    read_checked_mapping,
    short,
)
from termnorm_eval.errors import TermnormError

# Model types a study can evaluate. hf: weights here, adapters through peft=. The chat-completions
# types talk to a server that is already running (evaluated only). vllm: lm-eval's vllm backend
# (GPU, the `vllm` distribution), the adapter as lora_local_path. vllm-server: the study starts a
# vLLM OpenAI server on loopback for each evaluation (the adapter as a LoRA module) and scores it
# with local-chat-completions. Adapters of hf, vllm and vllm-server are trained here by
# termnorm-finetune (hf or unsloth backend) from the same local weights.
ModelType = Literal["hf", "vllm", "vllm-server", "local-chat-completions", "openai-chat-completions"]
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)
API_TYPES = ("local-chat-completions", "openai-chat-completions")
TRAINABLE_TYPES = ("hf", "vllm", "vllm-server")
# Scored through chat completions (the server applies the chat template).
CHAT_TYPES = (*API_TYPES, "vllm-server")

MODEL, TRAIN, EVAL, ANALYSIS = "Model", "Training", "Evaluation", "Analysis"


@dataclass(frozen=True)
class EpochList:
    """Whole epoch counts, increasing, each at least 1 (checkpoints are taken at epoch ends)."""

    def problem(self, value: object) -> str | None:
        if not isinstance(value, list) or not value:
            return "must list at least one epoch count"
        if any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10_000 for v in value):
            return f"must be whole numbers from 1 to 10000 (got {short(value)})"
        if value != sorted(set(value)):
            return f"must be increasing, without repeats (got {short(value)})"
        return None

    def __str__(self) -> str:
        return "increasing whole numbers"


@dataclass
class StudyConfig:
    """One study: which model, which terminologies, how adapters are trained and scored."""

    model: str | None = field(default=None, metadata={
        "help": "Base model: a local folder, a hub id, or smollm2 (the prepared SmolLM2-135M-Instruct, "
        "offline). For the chat-completions types: the model name the server knows.", "panel": MODEL,
        "required": "base model"})
    model_type: ModelType = field(default="hf", metadata={
        "help": "hf (evaluated and trained here; adapters via peft=), local-chat-completions or "
        "openai-chat-completions (a server at --base-url: evaluated only, never trained), vllm "
        "(trained like hf, scored by lm-eval's vllm backend with the adapter as lora_local_path; "
        "a GPU with the vllm extra), vllm-server (trained like hf; each evaluation starts a vLLM "
        "OpenAI server on 127.0.0.1 serving the adapter, scored with local-chat-completions, then "
        "stops it).", "panel": MODEL})
    base_url: str | None = field(default=None, metadata={
        "help": "Chat-completions endpoint of an API model, e.g. "
        "http://127.0.0.1:8000/v1/chat/completions.", "panel": MODEL})
    num_concurrent: int = field(default=1, metadata={
        "help": "API models: concurrent requests.", "panel": MODEL, "check": IntRange(1, 1024)})
    max_retries: int = field(default=3, metadata={
        "help": "API models: retries of a failed request before the step fails.", "panel": MODEL,
        "check": IntRange(1, 100)})
    server_python: str | None = field(default=None, metadata={
        "help": "vllm-server: the Python that runs the vLLM server (e.g. a venv made by "
        "benchmarks/vllm_cpu_env.sh).", "panel": MODEL, "unset": "this Python"})
    server_timeout: float = field(default=600.0, metadata={
        "help": "vllm-server: seconds to wait for the server to answer before the step fails.",
        "panel": MODEL, "check": NumberRange(0.0, False)})
    server_args: list[str] | None = field(default=None, metadata={
        "help": "vllm-server: more vLLM server arguments, e.g. --tensor-parallel-size,2 (a list in YAML).",
        "panel": MODEL, "unset": "none"})
    model_args: str | None = field(default=None, metadata={
        "help": "Extra lm-eval --model_args appended to the ones the study builds (e.g. dtype=bfloat16).",
        "panel": MODEL})
    terminologies: list[str] = field(default_factory=lambda: ["go", "hpo", "gene"], metadata={
        "help": "Terminologies to study (go, hpo, gene, or keys of --data-dir).", "panel": TRAIN,
        "check": NonEmpty("terminology")})
    directions: list[str] | None = field(default=None, metadata={
        "help": "Label directions to use, e.g. term2id,name2symbol; each terminology takes the ones it "
        "has (one adapter per terminology for its directions); their mention tasks follow them (see "
        "--mentions).", "panel": TRAIN, "unset": "all label directions", "check": NonEmpty("direction")})
    data_dir: str | None = field(default=None, metadata={
        "help": "Split folder (e.g. add-ontology's output).", "panel": TRAIN, "unset": "the shipped splits"})
    train: bool = field(default=True, metadata={
        "help": "Train one LoRA adapter per terminology (off: base evaluation only).", "panel": TRAIN})
    recipe: str | None = field(default=None, metadata={
        "help": "termnorm-finetune YAML config with the training recipe (any of its keys but model, "
        "terminology, directions, data_dir, output_dir, epochs, limit_pairs, mention_tasks).",
        "panel": TRAIN,
        "unset": "termnorm-finetune's defaults"})
    epochs: list[int] = field(default_factory=lambda: [3], metadata={
        "help": "Epoch counts. One: train that long. Several (the study: 1,5,10,15,20): ONE run of the "
        "largest, with the checkpoints at the others evaluated too (the memorization curve).",
        "panel": TRAIN, "check": EpochList()})
    limit_pairs: int | None = field(default=None, metadata={
        "help": "Train on the first N records per direction (store order).", "panel": TRAIN,
        "unset": "all", "check": IntRange(1, 2**31 - 1)})
    learning_rate: float | None = field(default=None, metadata={
        "help": "Peak learning rate (overrides the recipe).", "panel": TRAIN, "unset": "recipe",
        "check": NumberRange(0.0, False)})
    lora_r: int | None = field(default=None, metadata={
        "help": "LoRA rank (overrides the recipe).", "panel": TRAIN, "unset": "recipe",
        "check": IntRange(1, 2**16)})
    lora_alpha: int | None = field(default=None, metadata={
        "help": "LoRA alpha (overrides the recipe).", "panel": TRAIN, "unset": "recipe",
        "check": IntRange(1, 2**20)})
    batch_size: int | None = field(default=None, metadata={
        "help": "Training rows per step (overrides the recipe).", "panel": TRAIN, "unset": "recipe",
        "check": IntRange(1, 2**16)})
    seed: int | None = field(default=None, metadata={
        "help": "Training seed (overrides the recipe).", "panel": TRAIN, "unset": "recipe",
        "check": IntRange(0, 2**32 - 1)})
    backend: Literal["auto", "hf", "unsloth"] | None = field(default=None, metadata={
        "help": "Training backend (overrides the recipe).", "panel": TRAIN, "unset": "recipe"})
    cross_eval: bool = field(default=False, metadata={
        "help": "Also evaluate every adapter on the other terminologies' tasks.", "panel": EVAL})
    limit: int | None = field(default=None, metadata={
        "help": "First N documents of each task (store order: with limit_pairs N these are trained "
        "concepts on the train split, in the mention tasks too).", "panel": EVAL, "unset": "all",
        "check": IntRange(1, 2**31 - 1)})
    mentions: bool = field(default=True, metadata={
        "help": "Also evaluate the mention tasks of the selected directions in every evaluation, train "
        "and val (synonym2id and lay2id with term2id, alias2symbol and prev2symbol with name2symbol): "
        "trained concepts through forms training never showed, unseen concepts through theirs. "
        "Training stays on the labels (a recipe's train_forms adds forms).", "panel": EVAL})
    rag: bool = field(default=True, metadata={
        "help": "The retrieval arm: score the retriever itself (bm25 over every live concept, the asked "
        "form held out: a `retrieve` step) and, in every evaluation, the retrieval-augmented tasks "
        "(termnorm-rag_*: the question after the shipped bm25 candidates) of the selected X->ID "
        "directions beside the plain ones; the report compares each run with and without candidates.",
        "panel": EVAL})
    rag_k: int | None = field(default=None, metadata={
        "help": "Candidates shown per RAG question (at most the 20 shipped).", "panel": EVAL,
        "unset": "the shipped candidates' k (10)", "check": IntRange(1, 20)})
    apply_chat_template: bool | None = field(default=None, metadata={
        "help": "Wrap prompts in the model's chat template. Auto: as the adapters are trained (the "
        "recipe's chat_template, else whether the tokenizer has a template); the chat-completions "
        "types always do.", "panel": EVAL, "unset": "auto"})
    num_fewshot: int | None = field(default=None, metadata={
        "help": "Few-shot examples from the training split.", "panel": EVAL, "unset": "zero-shot",
        "check": IntRange(0, 64)})
    eval_batch_size: str = field(default="16", metadata={
        "help": "Harness --batch_size (or auto).", "panel": EVAL})
    device: str | None = field(default=None, metadata={
        "help": "torch device for hf evaluation and the lexicalization analysis.", "panel": EVAL,
        "unset": "cuda:0 if available, else cpu"})
    lexicalization: bool = field(default=True, metadata={
        "help": "Run the lexicalization analysis on the base LM's own hidden states (hf only).",
        "panel": ANALYSIS})
    lexicalization_limit: int | None = field(default=200, metadata={
        "help": "Pairs per mapping and split in the lexicalization analysis (seeded sample).",
        "panel": ANALYSIS, "unset": "all", "check": IntRange(2, 2**31 - 1)})
    out: str | None = field(default=None, metadata={
        "help": "The study folder.", "panel": ANALYSIS, "unset": "<config folder>/<config name>-out"})

    def __post_init__(self) -> None:
        for key in FIELDS:
            problem = value_problem(key, getattr(self, key))
            if problem:
                raise TermnormError(f"{flag_name(key)} {problem}")
        if not self.model:
            raise TermnormError("no base model given (--model or `model:` in the config file)")
        if self.model_type in API_TYPES:
            if self.train:
                raise TermnormError(f"--model-type {self.model_type}: API models are evaluated only, never "
                                    "trained; set train: false (--no-train)")
            if self.model_type == "local-chat-completions" and not self.base_url:
                raise TermnormError("--model-type local-chat-completions needs --base-url (the server's "
                                    "/v1/chat/completions URL)")
        elif self.base_url:
            hint = (" (a vLLM server already running: model_type local-chat-completions, model = its "
                    "served name)") if self.model_type == "vllm-server" else ""
            raise TermnormError(f"--base-url is for the chat-completions model types, not "
                                f"{self.model_type}{hint}")
        server_set = [flag_name(k) for k in ("server_python", "server_args") if getattr(self, k)]
        if server_set and self.model_type != "vllm-server":
            raise TermnormError(f"{', '.join(server_set)}: only with model_type vllm-server")
        if self.model_type not in TRAINABLE_TYPES and self.train:
            raise TermnormError(f"--model-type {self.model_type}: training goes through the hf backend; "
                                "set train: false or model_type: hf")

    @property
    def sweep(self) -> list[int]:
        """The epochs evaluated from checkpoints (all but the last, which is the final adapter)."""
        return self.epochs[:-1]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(StudyConfig)}
_TYPES = FieldTypes.of(StudyConfig)
choices = _TYPES.choices
list_item = _TYPES.list_item
value_kind = _TYPES.value_kind


def text_problem(value: Any) -> str | None:
    """Why ``value`` (a text, or a list of them; other values pass) cannot be a setting: the study
    writes every setting into its JSON records as UTF-8, and passes them on in command lines and
    lm-eval's model_args."""
    for text in value if isinstance(value, list) else [value]:
        if not isinstance(text, str):
            continue
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: "\ud800" in YAML, a name in another encoding
            return f"must be UTF-8 text (got {short(text)}; a file name in another encoding? rename it)"
        if not text.isprintable() and any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
            return f"must not hold control characters (got {short(text)})"
    return None


def value_problem(key: str, value: Any) -> str | None:
    if value is None:
        return None
    problem = text_problem(value)
    if problem:
        return problem
    options = choices(key)
    if options and value not in options:
        return f"must be one of {', '.join(options)} (got {short(value)})"
    check = FIELDS[key].metadata.get("check")
    return check.problem(value) if check is not None else None


def coerce(key: str, value: Any) -> Any:
    """A YAML or flag value as the field's type; TypeError/ValueError when it cannot be."""
    if value is None:
        return None
    item = list_item(key)
    if item is not None:
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if isinstance(items, (int, float)) and not isinstance(items, bool):
            items = [items]  # `epochs: 10`
        if not isinstance(items, list):
            raise TypeError("expected a list or a comma-separated string")
        if item is int:
            out = []
            for v in items:
                if isinstance(v, bool) or not isinstance(v, (int, str, float)):
                    raise TypeError("expected whole numbers")
                f = float(v)
                if not math.isfinite(f) or not f.is_integer():
                    raise ValueError("expected whole numbers")
                out.append(int(f))
            return out
        if not all(isinstance(v, str) for v in items):
            raise TypeError("expected a list of names")
        return list(items)
    return coerce_scalar(value_kind(key), value)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The YAML mapping of ``path``, every key known, every value converted and checked."""
    p = Path(path)
    out = read_checked_mapping(p, tuple(FIELDS), coerce, value_problem, "a study config")
    # Paths in a config file are relative to the file, wherever the command runs.
    for key in ("out", "recipe", "data_dir"):
        if key in out and not Path(out[key]).expanduser().is_absolute():
            out[key] = str((p.parent / out[key]).resolve())
    if "model" in out and out["model"].startswith("."):  # ./model or ../model: a folder beside it
        out["model"] = str((p.parent / out["model"]).resolve())
    return out


def build_config(config_file: str | Path | None, flags: dict[str, Any]) -> StudyConfig:
    """Defaults < config file < flags (a flag left at None is 'not given')."""
    values = apply_flags(load_config_file(config_file) if config_file else {}, flags, coerce,
                         value_problem, flag_name)
    if not values.get("out") and config_file is not None:
        p = Path(config_file)
        values["out"] = str(p.resolve().parent / f"{p.stem}-out")
    cfg = StudyConfig(**values)
    if not cfg.out:
        raise TermnormError("no study folder given (--out, or a --config file beside which it goes)")
    return cfg
