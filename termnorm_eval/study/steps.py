"""The study's steps, built from a ``StudyConfig``: what each one reads, runs and writes.

Order (``plan``): ``base`` (the base model on every selected task, train and val splits,
samples logged), ``train-<key>`` (one LoRA adapter per terminology on its training split, through
termnorm-finetune's ``run`` in this process), ``eval-<key>`` (that adapter on its own tasks and,
with ``cross_eval``, every other terminology's), ``sweep-<key>-e<K>`` (the checkpoint of epoch K
of the same training run), ``lexicalization`` (the base LM's own hidden states), ``report``.

A terminology's tasks (``Context.tasks``) are those of its selected label directions and, with
``mentions``, of the mention directions that mirror them (the same concepts through a synonym, lay
term, alias or previous symbol); training is on the label directions (and of the recipe's
``train_forms``, the kinds each terminology has: ``forms_per_terminology``).

A step builds into a staged sibling of its folder and becomes it in one rename, its record
inside (``records``); a training step writes into its folder through finetune, whose checkpoints
let an interrupted training continue.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from termnorm_eval import __version__, atomic, fingerprint, processes
from termnorm_eval.errors import TermnormError
from termnorm_eval.study import records
from termnorm_eval.study.config import API_TYPES, CHAT_TYPES, TRAINABLE_TYPES, StudyConfig, text_problem
from termnorm_eval.study.names import ADAPTER, EPOCHS, RESULTS, RETRIEVE, rag_name, task_names
from termnorm_eval.study.training import training_set

KINDS = ("base", "retrieve", "train", "eval", "sweep", "lexicalization", "report")
# Settings of a recipe the study decides itself.
STUDY_SETS = ("model", "terminology", "directions", "data_dir", "output_dir", "epochs", "limit_pairs",
              "mention_tasks", "resume")


@dataclass
class Step:
    name: str  # folder name and what --only/--from take
    kind: str
    inputs: dict[str, Any]
    run: Callable[[Step, Path], dict[str, Any]]  # builds into the folder given; returns outputs
    depends: list[str] = field(default_factory=list)  # steps whose records it reads
    staged: bool = True  # False: run() writes in the step folder itself (training)
    describe: str = ""


@dataclass
class Context:
    """What every step shares: the config, resolved model, data identity, the study folder."""

    cfg: StudyConfig
    out: Path
    model_path: str  # a local folder for hf (prepared smollm2 resolved), else the name
    model_identity: dict[str, Any]
    data: dict[str, Any]  # sha256 of the data manifest and of each split used
    selected: dict[str, list[str]]  # terminology -> its selected directions
    recipe: dict[str, Any]  # finetune settings from the recipe file and the study's overrides
    include_path: Path | None
    chat: bool = True  # --apply_chat_template for every evaluation
    steps: dict[str, Step] = field(default_factory=dict)
    # terminology -> the tasks its evaluations score: its selected label directions' and (mentions)
    # the mention directions' that mirror them, each on the splits that have documents
    tasks: dict[str, list[str]] = field(default_factory=dict)
    # terminology -> (the recipe's train_forms its adapter trains, those it has not); {}: no train_forms
    train_forms: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)


# ------------------------------------------------------------------ context


def resolve_model(cfg: StudyConfig) -> tuple[str, dict[str, Any]]:
    """(model as given to lm-eval and finetune, its identity for the records: a local folder's
    files by content, ``fingerprint``)."""
    assert cfg.model is not None
    if cfg.model_type in API_TYPES:
        return cfg.model, {"name": cfg.model, "base_url": cfg.base_url}
    try:
        return _local_model(cfg)
    except OSError as e:  # a name too long, a folder or file that cannot be read
        raise TermnormError(f"--model {cfg.model}: cannot read {e.filename or 'it'} ({e.strerror})") from None


def _local_model(cfg: StudyConfig) -> tuple[str, dict[str, Any]]:
    from termnorm_eval import models

    assert cfg.model is not None
    if cfg.model in models.MODELS and not Path(cfg.model).exists():
        if not models.is_prepared(cfg.model):
            print(f"termnorm study: preparing the {cfg.model} model (once, ~30 s)", file=sys.stderr)
        path = models.prepare_model(cfg.model)
    else:
        path = Path(cfg.model).expanduser()
        if not path.exists():
            if cfg.model.startswith(("/", ".", "~")):
                raise TermnormError(f"--model {cfg.model}: model folder not found")
            _check_hub_id(cfg.model)
            return cfg.model, {"name": cfg.model}  # a hub id: its name is all we know
    path = path.resolve()
    if not (path / "config.json").is_file():
        raise TermnormError(f"--model {path}: not a model folder (no config.json)")
    return str(path), fingerprint.model_identity(path)


def _check_hub_id(name: str) -> None:
    """A name that is no folder here must be a hub id, or the first evaluation fails after the
    study has started."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError as e:
        why = (str(e).strip().splitlines() or ["invalid"])[0]
        raise TermnormError(f"--model {name}: no such model folder, and not a hub id ({why})") from None


def check_device(cfg: StudyConfig) -> None:
    """``cfg.device`` must exist here when a step uses it (hf evaluation, the lexicalization
    analysis): lm-eval quietly falls back to another device, the analysis fails after the
    evaluations and the training."""
    if cfg.device is None or not (cfg.model_type == "hf" or (cfg.lexicalization and cfg.model_type in
                                                             TRAINABLE_TYPES)):
        return
    import torch

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = torch.backends.mps.is_available()
    here = ["cpu", *(f"cuda:{i}" for i in range(cuda)), *(["mps"] if mps else [])]
    try:
        dev = torch.device(cfg.device)
    except (RuntimeError, ValueError):
        raise TermnormError(f"--device {cfg.device}: not a torch device (available: {', '.join(here)})"
                            ) from None
    index = dev.index or 0
    exists = (dev.type == "cpu" and index == 0) or (dev.type == "cuda" and index < cuda) or (
        dev.type == "mps" and mps and index == 0)
    if not exists:
        raise TermnormError(f"--device {cfg.device}: no such device here (available: {', '.join(here)})")


def check_adapter_paths(ctx: Context) -> None:
    """The adapter folders the study will make go into lm-eval's --model_args (peft=,
    lora_local_path=, and the scoring commands finetune prints): refuse a study folder whose
    paths lm-eval cannot carry before the first step, not at the first training."""
    from termnorm_eval.harness import runner

    if not ctx.cfg.train:
        return
    for key in ctx.selected:
        for folder in (_adapter_folder(ctx, key), *(_adapter_folder(ctx, key, k) for k in ctx.cfg.sweep)):
            problem = runner.model_arg_problem(str(folder))
            if problem:
                raise TermnormError(f"--out {ctx.out}: the adapter folder {folder} {problem}, which "
                                    "lm-eval's --model_args cannot carry (it splits the list on commas); "
                                    "choose a study folder without it")


def check_name_lengths(out: Path) -> None:
    """Each name in ``out``, and its lock file beside it, within the file system's limit on a name."""
    import os

    limit = 255
    for folder in out.parents:  # the nearest one there is: its file system will hold the names
        try:
            if folder.is_dir():
                limit = os.pathconf(folder, "PC_NAME_MAX")
                break
        except (OSError, ValueError):  # a name too long itself, a file system without the limit
            continue
    for name in (*out.parts[1:], atomic.lock_path(out).name):
        size = len(os.fsencode(name))
        if size > limit:
            raise TermnormError(f"--out {out}: the name {name[:24]}... ({size} bytes) is longer than this "
                                f"file system takes ({limit}); choose a shorter one")


def _adapter_folder(ctx: Context, key: str, epoch: int | None = None) -> Path:
    """The final adapter of ``key``'s training, or the one of epoch ``epoch`` of its sweep."""
    train = ctx.out / f"train-{key}"
    return train / ADAPTER if epoch is None else train / EPOCHS / f"epoch-{epoch}"


def select(cfg: StudyConfig) -> dict[str, list[str]]:
    """terminology -> its directions among ``cfg.directions``; every name must be used."""
    from termnorm_eval.splits import store

    keys = store.available(cfg.data_dir)
    unknown = [k for k in cfg.terminologies if k not in keys]
    if unknown:
        raise TermnormError(f"--terminologies {', '.join(unknown)}: not in the data (available: "
                            f"{', '.join(keys)})")
    selected: dict[str, list[str]] = {}
    used: set[str] = set()
    mirrored: dict[str, str] = {}  # mention direction -> its label direction, for the error below
    for key in dict.fromkeys(cfg.terminologies):
        term = store.terminology(key, cfg.data_dir)
        mirrored |= {m.name: m.label_direction for m in term.mention_directions}
        names = [d.name for d in term.directions]
        chosen = [d for d in names if cfg.directions is None or d in cfg.directions]
        if not chosen:
            raise TermnormError(f"--directions {','.join(cfg.directions or [])}: none is a direction of "
                                f"{key} ({', '.join(names)})")
        used.update(chosen)
        selected[key] = chosen
    stray = [d for d in cfg.directions or [] if d not in used]
    mention = next((d for d in stray if d in mirrored), None)
    if mention is not None:
        raise TermnormError(f"--directions {mention}: a mention direction; select the label direction it "
                            f"mirrors ({mirrored[mention]}): its mention tasks are evaluated with it "
                            "(mentions: true), and training stays on labels (a recipe's train_forms adds "
                            "forms)")
    if stray:
        raise TermnormError(f"--directions {', '.join(stray)}: not a direction of "
                            f"{', '.join(selected)}")
    return selected


def evaluated_tasks(cfg: StudyConfig, selected: dict[str, list[str]]) -> dict[str, list[str]]:
    """terminology -> the tasks every evaluation scores for it: its selected label directions' train
    and val tasks, and with ``mentions`` those of the mention directions mirroring them."""
    from termnorm_eval.harness.taskgen import task_name
    from termnorm_eval.splits import store

    out: dict[str, list[str]] = {}
    for key, dirs in selected.items():
        out[key] = task_names(key, dirs)
        if cfg.mentions:
            out[key] += [task_name(key, m.name, split) for m in store.terminology(key, cfg.data_dir)
                         .mirroring(dirs) for split in m.splits]
        if cfg.rag and has_candidates(cfg, key):
            out[key] += [rag_name(t) for t in retrieved_tasks(cfg, {key: out[key]})]
    return out


def has_candidates(cfg: StudyConfig, key: str) -> bool:
    """Whether the data folder ships retrieval candidates for ``key`` (its manifest's ``rag`` block):
    the shipped splits do; a folder built before them, or an added ontology, may not (no RAG tasks
    then: the arm is left out for that terminology, and the study says so)."""
    from termnorm_eval.splits import store

    entry = (store.read_manifest(cfg.data_dir).get("terminologies") or {}).get(key) or {}
    if isinstance(entry, dict) and entry.get("rag"):
        return True
    print(f"termnorm study: {key}: no retrieval candidates in the data folder (rebuild it with termnorm data "
          "build): no retrieval-augmented tasks for it", file=sys.stderr)
    return False


def retrieved_tasks(cfg: StudyConfig, tasks: dict[str, list[str]]) -> list[str]:
    """The plain X->ID tasks among ``tasks`` (what a retriever answers and the RAG family asks)."""
    from termnorm_eval.harness.taskgen import task_name
    from termnorm_eval.splits import store
    from termnorm_eval.splits.rag import retrievable

    out = []
    for key, names in tasks.items():
        term = store.terminology(key, cfg.data_dir)
        wanted = {task_name(key, d.name, split) for d in term.all_directions if retrievable(d)
                  for split in d.splits}
        out += [t for t in names if t in wanted]
    return out


def data_identity(cfg: StudyConfig, selected: dict[str, list[str]]) -> dict[str, Any]:
    from termnorm_eval.sources import mirrors
    from termnorm_eval.splits import store

    root = Path(cfg.data_dir) if cfg.data_dir else store.shipped_data_dir()
    out: dict[str, Any] = {"manifest_sha256": mirrors.sha256_file(root / "manifest.json")}
    for key in selected:
        for split in ("train", "val"):
            out[f"{key}/{split}"] = mirrors.sha256_file(store.split_path(key, split, cfg.data_dir))
    return out


def recipe_settings(cfg: StudyConfig) -> dict[str, Any]:
    """The finetune settings every adapter is trained with: recipe file < study overrides."""
    from finetune.config import load_config_file

    values: dict[str, Any] = load_config_file(cfg.recipe) if cfg.recipe else {}
    for key, value in values.items():  # into the training steps' JSON records
        problem = text_problem(value)
        if problem:
            raise TermnormError(f"{cfg.recipe}: config key {key!r} {problem}")
    clash = [k for k in values if k in STUDY_SETS]
    if clash:
        raise TermnormError(f"{cfg.recipe}: the study sets {', '.join(clash)} itself; remove it from the "
                            "recipe (use the study's keys: epochs, limit_pairs, terminologies, ...)")
    for key in ("learning_rate", "lora_r", "lora_alpha", "batch_size", "seed", "backend"):
        value = getattr(cfg, key)
        if value is not None:
            values[key] = value
    return values


def forms_per_terminology(cfg: StudyConfig, selected: dict[str, list[str]], recipe: dict[str, Any]
                          ) -> dict[str, tuple[list[str], list[str]]]:
    """terminology -> (what its adapter trains of the recipe's ``train_forms``: label and each kind it
    has, a mention direction of that kind mirroring one of its selected directions; the kinds it has
    not). finetune refuses a kind its one terminology lacks; a study of several applies each kind where
    it exists, and refuses only a kind that no selected terminology has."""
    from finetune.data import LABEL
    from termnorm_eval.splits import store

    asked = [k for k in recipe.get("train_forms") or () if k != LABEL]
    if not asked:
        return {}
    have = {}
    for key, dirs in selected.items():
        term = store.terminology(key, cfg.data_dir)
        have[key] = [m.mention or "" for m in term.mirroring(dirs)]
    for kind in asked:
        if not any(kind in kinds for kinds in have.values()):
            can = "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in have.items())
            raise TermnormError(f"{cfg.recipe}: train_forms {kind}: no selected terminology has {kind} forms "
                                f"for its selected directions ({can})")
    return {key: ([LABEL, *(k for k in asked if k in kinds)], [k for k in asked if k not in kinds])
            for key, kinds in have.items()}


def trains(ctx: Context, key: str) -> str:
    """What the adapter of ``key`` trains, in words: ``labels`` or ``labels and synonym forms``, and the
    recipe's kinds it leaves out."""
    forms, lacking = ctx.train_forms.get(key, ([], []))
    text = "labels" + (f" and {', '.join(forms[1:])} forms" if forms[1:] else "")
    return text + (f" (train_forms {', '.join(lacking)}: none for {key}'s directions)" if lacking else "")


def make_context(cfg: StudyConfig) -> Context:
    from finetune.commands import include_path

    assert cfg.out is not None
    selected = select(cfg)
    model_path, identity = resolve_model(cfg)
    ctx = Context(cfg=cfg, out=Path(cfg.out).expanduser().absolute(), model_path=model_path,
                  model_identity=identity, data=data_identity(cfg, selected), selected=selected,
                  recipe=recipe_settings(cfg) if cfg.train else {}, include_path=include_path(cfg.data_dir),
                  tasks=evaluated_tasks(cfg, selected))
    ctx.train_forms = forms_per_terminology(cfg, selected, ctx.recipe)
    # Before any step runs: what lm-eval, the records or a device would refuse later.
    for flag, text in (("--model", ctx.model_path), ("--out", str(ctx.out))):
        problem = text_problem(text)
        if problem:
            raise TermnormError(f"{flag} {problem}")
    check_model_args(ctx)
    model_args(ctx)  # a model type or path lm-eval cannot take
    check_name_lengths(ctx.out)
    check_adapter_paths(ctx)
    check_device(cfg)
    ctx.chat = uses_chat_template(ctx)
    return ctx


def uses_chat_template(ctx: Context) -> bool:
    """Score as the adapters are trained: finetune's ``chat_template`` auto means "when the base
    tokenizer has a template", and its printed lm_eval commands add --apply_chat_template then."""
    cfg = ctx.cfg
    if cfg.model_type in CHAT_TYPES:
        return True  # a chat-completions server always applies its template
    if cfg.apply_chat_template is not None:
        return cfg.apply_chat_template
    setting = ctx.recipe.get("chat_template", "auto")
    if setting in ("on", "off"):
        return bool(setting == "on")
    folder = Path(ctx.model_path)
    if not folder.is_dir():
        return True  # a hub id: the study's models are instruct models with templates
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        import json

        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(isinstance(config, dict) and config.get("chat_template"))


# ------------------------------------------------------------------ model args


def model_args(ctx: Context, adapter: Path | None = None) -> str:
    """lm-eval ``--model_args`` for the study's model, with ``adapter`` when given.

    ``vllm``: lm-eval's vllm backend (a GPU), ``pretrained=...`` plus
    ``enable_lora=True,max_lora_rank=R,lora_local_path=ADAPTER`` for an adapter (R: the adapter's
    rank rounded up to a size vLLM accepts). A served vLLM is reached as an API type instead
    (``local-chat-completions`` with ``base_url``; `termnorm eval --engine vllm-server` starts one).
    """
    from termnorm_eval.harness import runner

    cfg = ctx.cfg
    if cfg.model_type == "vllm":
        return _vllm_model_args(ctx, adapter)
    if cfg.model_type == "vllm-server":
        # The server's URL exists once run_eval has started it; what is checked here is that the
        # command can be built and run (every model_args key is a server option, vLLM is there).
        _vllm_server_argv(ctx, [])
        return ""
    text = runner.model_args(_study_model_args(ctx, adapter))
    return f"{text},{cfg.model_args}" if cfg.model_args else text


def _study_model_args(ctx: Context, adapter: Path | None) -> list[tuple[str, object, str]]:
    """(key, value, what sets it) of the model_args the study gives lm-eval for hf and the API types."""
    cfg = ctx.cfg
    if cfg.model_type == "hf":
        items: list[tuple[str, object, str]] = [("pretrained", ctx.model_path, "--model")]
        if adapter is not None:
            items.append(("peft", adapter, "the adapter folder"))
        return items
    if cfg.model_type in API_TYPES:
        items = [("model", ctx.model_path, "--model")]
        if cfg.base_url:
            items.append(("base_url", cfg.base_url, "--base-url"))
        # No local tokenizer: the server applies the chat template and counts tokens itself.
        return [*items, ("num_concurrent", cfg.num_concurrent, "--num-concurrent"),
                ("max_retries", cfg.max_retries, "--max-retries"),
                ("tokenizer_backend", "None", "the study: the server applies the chat template")]
    raise TermnormError(f"--model-type {cfg.model_type}: unknown")


# lm-eval hf/vllm model_args that pick other weights than `pretrained`'s folder (a revision, a
# subfolder, a GGUF file in it, delta weights added to it).
WEIGHT_CHOOSING_ARGS = ("revision", "subfolder", "gguf_file", "delta")


def owned_model_args(ctx: Context) -> dict[str, str]:
    """model_args keys the study sets itself -> what sets them. lm-eval keeps the last of a repeated
    key and the extra model_args come last, so such a key would silently replace the studied model
    or its adapter while the records and report.md name the configured ones."""
    from termnorm_eval.harness import vllm_engine

    cfg = ctx.cfg
    if cfg.model_type == "vllm-server":
        return {"pretrained": "--model"}  # the server serves --model; the other keys are its options
    # Keys that load other weights than the folder the study trains on and identifies by content.
    weights = dict.fromkeys(WEIGHT_CHOOSING_ARGS, "--model: it chooses the weights")
    if cfg.model_type == "vllm":
        probe = vllm_engine.Adapter(ADAPTER, Path(ADAPTER), 1, None)
        keys = vllm_engine.split_model_args(vllm_engine.vllm_model_args({"pretrained": "m"}, probe, 16, None,
                                                                        None))
        return weights | {k: "--model" if k == "pretrained" else "the adapter folder"
                          for k in [*keys, "peft"]}
    owned = {key: source for key, _, source in _study_model_args(ctx, Path(ADAPTER))}
    if cfg.model_type in API_TYPES:
        return owned | {"base_url": "--base-url"}
    return weights | owned


def check_model_args(ctx: Context) -> None:
    """Refuse extra model_args (and vllm-server's server_args) that set what the study sets."""
    from termnorm_eval.harness import vllm_engine

    cfg = ctx.cfg
    owned = owned_model_args(ctx)
    for key, value in vllm_engine.split_model_args(cfg.model_args).items():
        if key in owned:
            raise TermnormError(f"--model-args {key}={value}: the study sets {key} itself ({owned[key]}) for "
                                f"model_type {cfg.model_type}; remove it from model_args")
    if cfg.model_type == "vllm-server" and cfg.server_args:
        probe = vllm_engine.Adapter(ADAPTER, Path(ADAPTER), 1, None)
        flags = {a for a in vllm_engine.server_argv("python", "m", [probe], max_lora_rank=16) if
                 a.startswith("--")}
        for arg in cfg.server_args:
            flag = arg.split("=", 1)[0]
            if flag in flags:
                raise TermnormError(f"--server-args {arg}: the study sets {flag} itself (the model, the "
                                    "adapter and the address it serves); remove it from server_args")


def _vllm_model_args(ctx: Context, adapter: Path | None) -> str:
    from termnorm_eval.harness import vllm_engine

    problem = vllm_engine.vllm_distribution_problem()
    if problem:
        raise TermnormError(f"--model-type vllm: {problem}")
    lora = vllm_engine.read_adapter("adapter", adapter, "adapter folder") if adapter is not None else None
    args = {"pretrained": str(ctx.model_path), **vllm_engine.split_model_args(ctx.cfg.model_args)}
    return vllm_engine.vllm_model_args(args, lora, vllm_engine.rank_slot([lora] if lora else []), None, None)


def _served_adapters(adapter: Path | None) -> list[Any]:
    """The adapter as vLLM serves it (served name ``adapter``), checked against nothing else: it
    was trained here on this very base."""
    from termnorm_eval.harness import vllm_engine

    return [vllm_engine.read_adapter("adapter", adapter, "adapter folder")] if adapter is not None else []


def _server_options(ctx: Context, adapters: list[Any]) -> dict[str, Any]:
    """The vLLM server settings of every vllm-server evaluation (vllm_engine.server_argv's)."""
    from termnorm_eval.harness import vllm_engine

    return {"max_lora_rank": vllm_engine.rank_slot(adapters),
            "model_args": vllm_engine.split_model_args(ctx.cfg.model_args),
            "extra": ctx.cfg.server_args or ()}


def _vllm_server_argv(ctx: Context, adapters: list[Any]) -> list[str]:
    from termnorm_eval.harness import vllm_engine

    cfg = ctx.cfg
    if cfg.server_python is None and not vllm_engine.vllm_importable():
        raise TermnormError("--model-type vllm-server: vLLM is not installed in this Python; install it "
                            "(pip install 'termnorm-eval[vllm]', or benchmarks/vllm_cpu_env.sh on CPU) or "
                            "set server_python to the Python that has it")
    return vllm_engine.server_argv(cfg.server_python or sys.executable, ctx.model_path, adapters,
                                   **_server_options(ctx, adapters))


# ------------------------------------------------------------------ steps


def _common(ctx: Context) -> dict[str, Any]:
    return {"termnorm_eval_version": __version__, "data": ctx.data}


def _eval_inputs(ctx: Context, tasks: list[str], adapter_of: str | None) -> dict[str, Any]:
    cfg = ctx.cfg
    return _common(ctx) | {
        "model": ctx.model_identity, "model_type": cfg.model_type, "model_args_extra": cfg.model_args,
        "base_url": cfg.base_url, "server_args": cfg.server_args, "tasks": tasks, "limit": cfg.limit,
        "apply_chat_template": ctx.chat,
        "num_fewshot": cfg.num_fewshot,
        **({"rag_k": cfg.rag_k} if cfg.rag_k is not None else {}),  # absent: records of before stay valid
        # The adapter is named by its training step's record: a retrained adapter reruns its evals.
        "adapter_of": adapter_of,
        "adapter_record": (ctx.steps[adapter_of].inputs if adapter_of else None),
    }


def run_eval(ctx: Context, stage: Path, tasks: list[str], adapter: Path | None) -> dict[str, Any]:
    """lm_eval on ``tasks`` into ``stage/results`` (in this process when it can; samples logged).

    vllm-server: a server of the base with ``adapter`` (served as ``adapter``) is started for this
    step alone, its log kept in the step folder, and stopped however the step ends.
    """
    if ctx.cfg.model_type != "vllm-server":
        return _harness_eval(ctx, stage, tasks, ctx.cfg.model_type, model_args(ctx, adapter))
    from termnorm_eval.harness import vllm_engine

    cfg = ctx.cfg
    adapters = _served_adapters(adapter)
    # make_context checked the command (model_args keys, vLLM there); serve builds it before it starts.
    with vllm_engine.serve(ctx.model_path, adapters, python=cfg.server_python,
                           **_server_options(ctx, adapters), ready_timeout=cfg.server_timeout,
                           log_path=stage / "server.log", say="termnorm study") as server:
        name = adapters[0].name if adapters else vllm_engine.BASE_NAME
        vllm_engine.check_served(server.base_url, [name])
        args = vllm_engine.chat_model_args(name, server.base_url, cfg.num_concurrent)
        return _harness_eval(ctx, stage, tasks, vllm_engine.CHAT_MODEL, args)


def _harness_eval(ctx: Context, stage: Path, tasks: list[str], model: str, args: str) -> dict[str, Any]:
    from termnorm_eval.harness import inprocess, runner

    cfg = ctx.cfg
    served = model in API_TYPES
    cmd = runner.EvalCommand(
        model=model, model_args=args, tasks=",".join(tasks), limit=cfg.limit,
        batch_size="1" if served else cfg.eval_batch_size,
        device=None if served else (cfg.device or runner.default_device()),
        num_fewshot=cfg.num_fewshot, apply_chat_template=ctx.chat,
        output_path=stage / RESULTS, log_samples=True, include_path=ctx.include_path,
        extra=["--metadata", json.dumps({"rag_k": cfg.rag_k})] if cfg.rag_k is not None else [],
    ).argv()
    shown = " ".join(["lm_eval", *cmd[3:]])
    namespace = inprocess.parse(cmd[3:])
    plan = inprocess.plan(namespace)
    launcher = processes.world_size() > 1
    if not launcher and isinstance(plan, inprocess.Plan):
        print(f"termnorm study: running in-process the equivalent of {shown}", file=sys.stderr, flush=True)
        try:
            inprocess.run(plan)
        except (TermnormError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # run() words them already; the same one line for anything else
            raise inprocess.failure(e, cfg.num_fewshot) from None
    else:
        # Under a launcher the first process scores alone, in a child that does not see the
        # launcher: lm-eval's hf model would shard the documents over processes not running it.
        # Otherwise what the in-process runner cannot take goes to the lm_eval CLI.
        child = [sys.executable, "-m", "termnorm_eval.harness.inprocess", *cmd[3:]] if launcher else cmd
        print(f"termnorm study: running{', in a process of its own,' if launcher else ''} {shown}",
              file=sys.stderr, flush=True)
        rc = subprocess.call(child, env=processes.single_process_env())
        if rc != 0:
            raise TermnormError(f"lm_eval exited with status {rc} ({shown})")
    found = sorted((stage / RESULTS).glob("*/results_*.json"))
    if not found:
        raise TermnormError(f"lm_eval wrote no results file under {stage / RESULTS}")
    return {"results": str(found[-1].relative_to(stage))}


def run_retrieve(ctx: Context, stage: Path, tasks: list[str]) -> dict[str, Any]:
    """bm25 (the shipped candidates' retriever) on the plain X->ID ``tasks``, the asked form held out,
    into ``stage/results`` as ``termnorm retrieve eval`` writes it: the report's reference rows and the
    retriever's accuracy on each RAG cell's documents."""
    from termnorm_eval.retrieval import evaluate as ev
    from termnorm_eval.retrieval.search import open_retriever
    from termnorm_eval.retrieval.spec import RetrieverSpec

    cfg = ctx.cfg
    spec = RetrieverSpec.parse("bm25", None)
    chosen = ev.select_tasks(tasks, cfg.data_dir)
    print(f"termnorm study: {spec.label()} on {len(chosen)} tasks", file=sys.stderr, flush=True)
    scored, meta = ev.evaluate(spec, chosen, lambda key: open_retriever(spec, key, cfg.data_dir,
                                                                      show_progress=False),
                               cfg.data_dir, cfg.limit)
    written = ev.results_files(spec, scored, meta)
    files: dict[str, str | bytes] = {f"{RESULTS}/{k}": v for k, v in written.items()}
    files["retrieval.md"] = ev.summary_markdown(spec, scored, meta)
    files["retrieval.csv"] = ev.summary_csv(scored)
    atomic.fill_folder(stage, files)
    found = sorted((stage / RESULTS).glob("*/results_*.json"))
    return {"results": str(found[-1].relative_to(stage))}


def _finetune_config(ctx: Context, key: str, folder: Path) -> Any:
    from finetune.config import FinetuneConfig

    cfg = ctx.cfg
    values = dict(ctx.recipe) | {
        "model": ctx.model_path, "terminology": key, "directions": ctx.selected[key],
        "data_dir": cfg.data_dir, "output_dir": str(folder / ADAPTER), "epochs": float(cfg.epochs[-1]),
        # limit_pairs N also trains the concepts of the mention tasks' first N documents, mentions on
        # or off: one adapter whatever the evaluations score
        "limit_pairs": cfg.limit_pairs, "mention_tasks": True,
    }
    if key in ctx.train_forms:  # the recipe's kinds this terminology has (forms_per_terminology)
        values["train_forms"] = ctx.train_forms[key][0]
    if cfg.sweep:
        # One run, checkpoints at the sweep's epoch ends: save every gcd of the epochs and keep them
        # all (save_total_limit), and after the final adapter (keep_checkpoints).
        spe = steps_per_epoch(key, values)
        every = math.gcd(*cfg.epochs)
        values |= {"save_steps": spe * every, "save_total_limit": cfg.epochs[-1] // every + 1,
                   "keep_checkpoints": True}
    return FinetuneConfig(**values)


def steps_per_epoch(key: str, values: dict[str, Any]) -> int:
    """Optimizer steps per epoch, as transformers' Trainer counts them: under a launcher, each
    process takes every n-th batch (accelerate's batch sharding, evened out)."""
    from finetune.config import FIELDS

    tset = training_set(key, values)
    batch = values.get("batch_size", FIELDS["batch_size"].default)
    accum = values.get("grad_accum", FIELDS["grad_accum"].default)
    batches = math.ceil(math.ceil(len(tset.rows) / batch) / processes.world_size())
    return max(math.ceil(batches / accum), 1)


def _train_inputs(ctx: Context, key: str) -> dict[str, Any]:
    from finetune.rundir import NOT_FINGERPRINTED

    settings = _finetune_config(ctx, key, ctx.out / f"train-{key}").to_dict()
    learned = {k: v for k, v in sorted(settings.items()) if k not in NOT_FINGERPRINTED | {"model"}}
    # What is trained, row by row: a change in which records or forms a setting selects (built here,
    # before any step: a train_forms kind the terminology lacks is refused now) retrains.
    rows = training_set(key, settings).rows
    return _common(ctx) | {"model": ctx.model_identity, "terminology": key, "directions": ctx.selected[key],
                           "finetune": learned, "epochs": ctx.cfg.epochs,
                           "training_rows": {"count": len(rows), "sha256": records.digest(rows)}}


def run_train(ctx: Context, step: Step, folder: Path, key: str) -> dict[str, Any]:
    """Train (or resume) the adapter of ``key`` in ``folder/adapter``; copy out the sweep's epochs.

    On every process of a launcher (data parallel); the first one prepares the folder, copies the
    epochs and returns the outputs to record.
    """
    from finetune import train

    main = processes.is_main()
    finished, resume = processes.from_main(main, partial(_prepare_training, step, folder))
    if not finished:
        ft = _finetune_config(ctx, key, folder)
        ft.resume = resume
        if resume and main:
            print(f"termnorm study: {step.name}: continuing the interrupted training", file=sys.stderr)
        train.run(ft, show_progress=sys.stderr.isatty() and main)
    outputs: dict[str, Any] = {"adapter": ADAPTER}
    if ctx.cfg.sweep and main:
        outputs["epochs"] = _copy_epochs(ctx, folder, key)
    return outputs


def _prepare_training(step: Step, folder: Path) -> tuple[bool, bool]:
    """(the adapter is finished, an interrupted training is there to resume); a training folder of
    other inputs is removed first."""
    from finetune import rundir

    pending = records.read_record(folder, records.PENDING)
    if folder.exists() and (pending is None or pending["inputs"] != step.inputs):
        why = (f"differs in {', '.join(records.differences(pending['inputs'], step.inputs))}"
               if pending else "no record")
        print(f"termnorm study: {step.name}: the training there is another one ({why}); starting over",
              file=sys.stderr)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records.write_record(folder, records.make_record(step.name, step.inputs, 0.0), records.PENDING)
    adapter = folder / ADAPTER
    return (adapter / rundir.MANIFEST_FILE).is_file(), (adapter / rundir.RUN_FILE).is_file()


def _copy_epochs(ctx: Context, folder: Path, key: str) -> dict[str, str]:
    """``epochs/epoch-K/`` (adapter files only) from the checkpoints at the sweep's epoch ends."""
    import json

    from finetune import rundir

    spe = steps_per_epoch(key, _finetune_config(ctx, key, folder).to_dict())
    root = folder / ADAPTER / rundir.CHECKPOINTS
    copied: dict[str, str] = {}
    for k in ctx.cfg.sweep:
        target = folder / EPOCHS / f"epoch-{k}"
        if (target / "adapter_model.safetensors").is_file():
            copied[str(k)] = str(target.relative_to(folder))
            continue
        ckpt = root / f"checkpoint-{k * spe}"
        try:
            state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            kept = sorted(p.name for p in root.glob("checkpoint-*")) if root.is_dir() else []
            raise TermnormError(f"{ckpt}: the checkpoint of epoch {k} is missing; the training kept "
                                f"{', '.join(kept) or 'none'}") from None
        if abs(float(state.get("epoch", -1)) - k) > 1e-6:  # our step count and the Trainer's disagree
            raise TermnormError(f"{ckpt}: is epoch {state.get('epoch')}, expected {k}")
        with atomic.staged_folder(target) as stage:
            for name in ("adapter_config.json", "adapter_model.safetensors"):
                shutil.copy2(ckpt / name, stage / name)
            atomic.replace_folder(stage, target)
        copied[str(k)] = str(target.relative_to(folder))
    # The epoch adapters are out: the optimizer states (3x the adapter, per checkpoint) can go.
    shutil.rmtree(root, ignore_errors=True)
    return copied


def run_lexicalization(ctx: Context, stage: Path) -> dict[str, Any]:
    from termnorm_eval.analysis import lexicalization as lex
    from termnorm_eval.analysis import render
    from termnorm_eval.analysis.embedders import CausalLMEmbedder

    cfg = ctx.cfg
    jobs = lex.plan(cfg.data_dir, list(ctx.selected), ("train", "val"), limit=cfg.lexicalization_limit,
                    seed=0)
    embedder = CausalLMEmbedder(ctx.model_path, None, device=cfg.device)
    started = time.perf_counter()
    rows, notes = lex.run(jobs, [embedder], batch_size=64, seed=0, center=True)
    meta = {"embedders": [embedder.name], "lm": ctx.model_path, "data_dir": cfg.data_dir or "shipped",
            "limit": cfg.lexicalization_limit, "seed": 0, "center": True,
            "seconds": round(time.perf_counter() - started, 2)}
    atomic.fill_folder(stage, {"alignment.csv": render.csv_out(rows),
                               "alignment.json": render.json_out(rows, meta, notes),
                               "alignment.png": render.figure(rows)})
    return {"files": ["alignment.csv", "alignment.json", "alignment.png"]}


def plan(ctx: Context) -> list[Step]:
    """Every step of the study, in order."""
    cfg = ctx.cfg
    steps: list[Step] = []

    def add(step: Step) -> None:
        steps.append(step)
        ctx.steps[step.name] = step

    all_tasks = [t for key in ctx.selected for t in ctx.tasks[key]]
    add(Step("base", "base", _eval_inputs(ctx, all_tasks, None), partial(_eval_step, ctx, all_tasks, None),
             describe=f"base model on {len(all_tasks)} tasks"))
    # after base: a base model that cannot run stops the study before anything is written
    plain = retrieved_tasks(cfg, ctx.tasks) if cfg.rag else []
    if plain:  # no X->ID direction selected (e.g. id2term alone): nothing for a retriever
        add(Step(RETRIEVE, RETRIEVE, _common(ctx) | {"retriever": "bm25", "tasks": plain, "limit": cfg.limit},
                 partial(_retrieve_step, ctx, plain),
                 describe=f"bm25 over every live concept on {len(plain)} X->ID tasks (asked form held out)"))
    if cfg.train:
        for key in ctx.selected:
            add(Step(f"train-{key}", "train", _train_inputs(ctx, key), partial(_train_step, ctx, key),
                     staged=False, describe=f"LoRA on the {key} training split, {cfg.epochs[-1]} epoch(s), "
                                            f"{trains(ctx, key)}"))
        for key in ctx.selected:
            tasks = all_tasks if cfg.cross_eval else ctx.tasks[key]
            train_step = f"train-{key}"
            adapter = _adapter_folder(ctx, key)
            add(Step(f"eval-{key}", "eval", _eval_inputs(ctx, tasks, train_step),
                     partial(_eval_step, ctx, tasks, adapter), depends=[train_step],
                     describe=f"{key} adapter on {len(tasks)} tasks"))
        for key in ctx.selected:
            for k in cfg.sweep:
                tasks = ctx.tasks[key]
                train_step = f"train-{key}"
                adapter = _adapter_folder(ctx, key, k)
                add(Step(f"sweep-{key}-e{k}", "sweep", _eval_inputs(ctx, tasks, train_step) | {"epoch": k},
                         partial(_eval_step, ctx, tasks, adapter), depends=[train_step],
                         describe=f"{key} adapter after epoch {k}"))
    if cfg.lexicalization and cfg.model_type in TRAINABLE_TYPES:  # the weights are here
        add(Step("lexicalization", "lexicalization", _common(ctx) | {
            "model": ctx.model_identity, "terminologies": list(ctx.selected),
            "limit": cfg.lexicalization_limit, "seed": 0, "center": True},
            partial(_lexicalization_step, ctx), describe="lexicalization on the base LM's hidden states"))
    elif cfg.lexicalization:
        print(f"termnorm study: lexicalization skipped: it needs the model's weights (model_type "
              f"{cfg.model_type})", file=sys.stderr)
    readers = [s.name for s in steps]
    add(Step("report", "report", {"termnorm_eval_version": __version__,
                                  "reads": {n: records.digest(ctx.steps[n].inputs) for n in readers}},
             partial(_report_step, ctx, readers), depends=readers, describe="report.md"))
    return steps


# Step.run callables: (step, folder) last, the step's own arguments bound first with partial.


def _eval_step(ctx: Context, tasks: list[str], adapter: Path | None, step: Step, folder: Path
               ) -> dict[str, Any]:
    return run_eval(ctx, folder, tasks, adapter)


def _retrieve_step(ctx: Context, tasks: list[str], step: Step, folder: Path) -> dict[str, Any]:
    return run_retrieve(ctx, folder, tasks)


def _train_step(ctx: Context, key: str, step: Step, folder: Path) -> dict[str, Any]:
    return run_train(ctx, step, folder, key)


def _lexicalization_step(ctx: Context, step: Step, folder: Path) -> dict[str, Any]:
    return run_lexicalization(ctx, folder)


def _report_step(ctx: Context, readers: list[str], step: Step, folder: Path) -> dict[str, Any]:
    from termnorm_eval.study import report

    return report.write(ctx, folder, readers)
