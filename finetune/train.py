"""One fine-tuning run: check everything, train (TRL SFTTrainer), write adapter + manifest, print
the lm_eval commands that score it.

Every user error is raised as ``TermnormError`` before the output folder is claimed (settings,
data, paths lm-eval cannot be given, model weights, target modules); the main process then holds
the folder's lock until the adapter is in place, and a diverging run stops without writing one.
trl, transformers and peft are imported only after the backend is chosen, so that Unsloth can come
first.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from finetune import rundir
from finetune.backends import choose_backend, import_unsloth_first
from finetune.commands import scoring_commands
from finetune.config import FinetuneConfig, library_kwargs
from finetune.data import TrainingSet, build_training_set
from finetune.integrity import model_folder_problem
from termnorm_eval import atomic, processes
from termnorm_eval.errors import TermnormError

MANIFEST_FORMAT = "termnorm-finetune/1"
LIBRARIES = ("termnorm-eval", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "lm-eval",
             "unsloth", "unsloth_zoo", "bitsandbytes")


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model


def check_model_location(cfg: FinetuneConfig) -> None:
    """A local path must exist (a hub id is checked when its tokenizer loads)."""
    assert cfg.model is not None
    p = Path(cfg.model).expanduser()
    if p.exists():
        if cfg.gguf_file and not (p / cfg.gguf_file).is_file():
            raise TermnormError(f"{p / cfg.gguf_file}: GGUF file not found")
        if not cfg.gguf_file and p.is_dir() and not (p / "config.json").is_file():
            ggufs = sorted(x.name for x in p.glob("*.gguf"))
            hint = f" (it holds {ggufs[0]}: add --gguf-file)" if ggufs else ""
            raise TermnormError(f"{p}: not a model folder, no config.json{hint}")
        if not cfg.gguf_file and p.is_dir():
            problem = model_folder_problem(p)  # a damaged file named now, not a loader traceback later
            if problem:
                raise TermnormError(f"base model: {problem}")
    elif _looks_like_path(cfg.model):
        raise TermnormError(f"{p}: model path not found")


def load_tokenizer(cfg: FinetuneConfig) -> Any:
    from finetune.backends import hf

    try:
        return hf.load_tokenizer(cfg)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TermnormError(f"cannot load base model {cfg.model!r}: {first}") from None


def uses_chat_template(cfg: FinetuneConfig, tokenizer: Any) -> bool:
    has = bool(getattr(tokenizer, "chat_template", None))
    if cfg.chat_template == "on" and not has:
        raise TermnormError(f"chat-template on: the tokenizer of {cfg.model!r} has no chat template")
    return has if cfg.chat_template == "auto" else cfg.chat_template == "on"


def _sft_config(cfg: FinetuneConfig, backend: str, checkpoint_dir: Path) -> Any:
    import inspect

    import torch
    from trl import SFTConfig

    params = inspect.signature(SFTConfig.__init__).parameters
    # The settings that are TRL's knobs, renamed by their fields' "trl" metadata (finetune/config.py);
    # then the fixed choices of this project.
    kw: dict[str, Any] = library_kwargs(cfg, "trl") | {
        "output_dir": str(checkpoint_dir),
        "data_seed": cfg.seed,
        # No silent truncation: rows are length-checked after tokenization instead (see run()).
        "max_length": None,
        "packing": False,
        "completion_only_loss": True,
        "save_strategy": "steps",
        "logging_strategy": "steps",
        "logging_first_step": True,
        # Log a NaN/inf loss as it is (the default replaces it by the window's mean): the
        # divergence guard must see it.
        "logging_nan_inf_filter": False,
        "report_to": "none",
        "disable_tqdm": True,  # our own bar shows loss and tokens/s
        "optim": "adamw_8bit" if backend == "unsloth" else "adamw_torch",
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": torch.cuda.is_available(),
        # Unsloth checkpoints through get_peft_model(use_gradient_checkpointing="unsloth").
        "gradient_checkpointing": cfg.gradient_checkpointing and backend == "hf",
        "ddp_find_unused_parameters": False,  # every LoRA weight is used in every step
    }
    if "warmup_ratio" not in params:  # transformers 5: a float below 1 given as steps is a ratio
        kw["warmup_steps"] = kw.pop("warmup_ratio")
    # TRL turns bf16 on by default, which a CPU refuses: decide explicitly.
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    kw["bf16"] = bf16
    kw["fp16"] = backend == "unsloth" and torch.cuda.is_available() and not bf16
    try:
        return SFTConfig(**kw)
    except ValueError as e:
        first = str(e).strip().splitlines()[0]
        raise TermnormError(f"invalid training settings: {first}") from None


def build_trainer(model: Any, tokenizer: Any, tset: TrainingSet, args: Any, callbacks: list[Any],
                  group_by_length: bool = True) -> Any:
    from datasets import Dataset

    from finetune.sampling import trainer_class

    trainer = trainer_class()(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(tset.rows),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.group_by_length = group_by_length
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the progress bar shows the loss; no raw log dicts
    return trainer


def check_lengths(trainer: Any, max_seq_length: int) -> dict[str, float]:
    lengths = [len(x) for x in trainer.train_dataset["input_ids"]]
    too_long = sum(n > max_seq_length for n in lengths)
    if too_long:
        raise TermnormError(f"{too_long} of {len(lengths)} training rows are longer than max-seq-length "
                            f"{max_seq_length} (longest: {max(lengths)} tokens); raise --max-seq-length")
    return {"rows": len(lengths), "min_tokens": min(lengths), "max_tokens": max(lengths),
            "mean_tokens": round(sum(lengths) / len(lengths), 2)}


def _device() -> str:
    import torch

    return f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"


def _fix_base_path(adapter_dir: Path, base: str | None) -> None:
    """Record a local base model by absolute path, so the adapter resolves from any directory."""
    cfg_file = adapter_dir / "adapter_config.json"
    if base is None:
        return
    p = Path(base).expanduser()
    if p.exists() and cfg_file.is_file():
        data = json.loads(cfg_file.read_text(encoding="utf-8"))
        data["base_model_name_or_path"] = str(p.resolve())
        atomic.write_file(cfg_file, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def run(cfg: FinetuneConfig, *, show_progress: bool = True) -> dict[str, Any]:
    """Train one adapter; returns its manifest."""
    assert cfg.model is not None and cfg.output_dir is not None
    # 1. Backend first: Unsloth must be imported before trl/transformers/peft.
    backend = choose_backend(cfg.backend)
    if backend == "unsloth":
        import_unsloth_first()
    check_model_location(cfg)
    # 2. Everything a user can get wrong, before anything is written.
    tokenizer = load_tokenizer(cfg)
    chat = uses_chat_template(cfg, tokenizer)
    tset = build_training_set(cfg.terminology, cfg.directions, cfg.data_dir, chat=chat,
                              limit_pairs=cfg.limit_pairs, train_forms=cfg.train_forms,
                              mention_tasks=cfg.mention_tasks)
    config = cfg.to_dict() | {"backend": backend}
    fp = rundir.fingerprint(config, {
        "data_manifest_sha256": tset.data_manifest_sha256,
        "train_split_sha256": tset.train_split_sha256,
        "chat_template": chat,
        "directions": list(tset.directions),
    })
    out = rundir.output_path(cfg.output_dir)
    # Built now: a path that lm-eval's --model_args cannot carry is refused before training.
    commands = scoring_commands(
        base_model=cfg.model, adapter_dir=out, key=tset.terminology.key, directions=tset.directions,
        data_dir=cfg.data_dir, gguf_file=cfg.gguf_file, chat=chat, limit=cfg.limit_pairs,
        mention_directions=tset.mention_directions,
    )
    rundir.inspect(out, fp, cfg.resume)  # refuse early; decided again under the lock
    # The training arguments also set up the processes (one, or one per GPU under `accelerate
    # launch`/torchrun); only the first one locks, writes files and prints.
    args = _sft_config(cfg, backend, out / rundir.CHECKPOINTS)
    is_main = args.process_index == 0
    if is_main:
        rundir.check_not_locked(out)  # another run at work here: say so before loading the model

    # 3. Model and LoRA: damaged weights or unknown --target-modules fail here, still unclaimed.
    from finetune.backends import hf, unsloth

    model, tokenizer = (unsloth if backend == "unsloth" else hf).load(cfg, tokenizer)

    # 4. Claim the folder and train, holding its lock until the adapter is in place.
    with contextlib.ExitStack() as held:
        if is_main:
            held.enter_context(atomic.output_lock(out, rundir.LOCK_OPTION))
        state: rundir.RunState = processes.from_main(is_main, lambda: rundir.inspect(out, fp, cfg.resume))
        with args.main_process_first(desc="claiming the output directory"):
            if is_main:
                for note in state.notes:
                    print(f"termnorm-finetune: {note}", file=sys.stderr)
                rundir.claim(state, fp)
        try:
            return _train_and_save(cfg, backend, model, tokenizer, tset, chat, config, commands, args,
                                   state, held, show_progress)
        except TermnormError as e:
            if not (is_main and state.fresh):
                raise
            # A fresh run that cannot finish (diverged, rows too long) leaves nothing worth
            # resuming: free the folder for the corrected command.
            rundir.unclaim(state)
            raise type(e)(f"{e}; {out} was left as it was before this run") from None


def _train_and_save(cfg: FinetuneConfig, backend: str, model: Any, tokenizer: Any,
                    tset: TrainingSet, chat: bool, config: dict[str, Any], commands: dict[str, str],
                    args: Any, state: rundir.RunState, held: contextlib.ExitStack,
                    show_progress: bool) -> dict[str, Any]:
    from finetune.guard import Diverged, FiniteGuard, non_finite_weights
    from finetune.progress import CountingCollator, ProgressCallback, TokenCounts, peak_gpu_memory_bytes

    out = state.output_dir
    is_main = args.process_index == 0
    counts = TokenCounts()
    progress = ProgressCallback(counts, show=show_progress)
    trainer = build_trainer(model, tokenizer, tset, args, [progress, FiniteGuard(cfg.learning_rate)],
                            cfg.group_by_length)
    lengths = check_lengths(trainer, cfg.max_seq_length)
    trainer.data_collator = CountingCollator(trainer.data_collator, counts)
    if is_main:
        where = f"resuming from {state.resume_from.name}" if state.resume_from else "new run"
        forms = f" + {len(tset.form_pairs)} form pairs" if tset.form_pairs else ""
        print(f"termnorm-finetune: {backend} backend on {_device()}; {len(tset.pairs)} pairs{forms} x "
              f"{tset.n_templates} prompts = {len(tset.rows)} rows "
              f"({'chat template' if chat else 'plain text'}); {where}", file=sys.stderr)

    # Train (a KeyboardInterrupt leaves the last checkpoint for --resume).
    try:
        result = trainer.train(resume_from_checkpoint=str(state.resume_from) if state.resume_from else None)
    finally:
        progress.close()
    bad = non_finite_weights(trainer.model)
    if bad:  # the guard checks at checkpoints; this is the last step's check
        raise Diverged(f"training diverged (weight {bad} is not finite after step "
                       f"{trainer.state.global_step}); no adapter was written; try a lower "
                       f"--learning-rate than {cfg.learning_rate:g}")

    # Save into a fresh staged folder beside the output dir (unique per run: never shared with
    # another writer), then move into place; the manifest is written last.
    stage: Path = processes.from_main(is_main, lambda: held.enter_context(atomic.staged_folder(out)))
    trainer.accelerator.wait_for_everyone()
    if getattr(trainer, "is_fsdp_enabled", False):
        # Under FSDP a SHARDED_STATE_DICT save writes shards, not an adapter that peft= loads:
        # gather it (PEFT's own FSDP examples do the same). Every rank takes part in the gather.
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(stage))
    manifest: dict[str, Any] = {}
    if is_main:
        tokenizer.save_pretrained(str(stage))
        _fix_base_path(stage, cfg.model)
        loss_curve = [
            {"step": e["step"], "epoch": round(e.get("epoch", 0.0), 4), "loss": e["loss"],
             "learning_rate": e.get("learning_rate")}
            for e in trainer.state.log_history if "loss" in e
        ]
        manifest = {
            "format": MANIFEST_FORMAT,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "base_model": cfg.model,
            "gguf_file": cfg.gguf_file,
            "backend": backend,
            "device": _device(),
            "processes": args.world_size,
            "library_versions": library_versions(),
            "data": {
                "data_dir": str(tset.data_dir),
                "data_manifest_sha256": tset.data_manifest_sha256,
                "train_split_sha256": tset.train_split_sha256,
                "terminology": tset.terminology.key,
                "directions": list(tset.directions),
                "train_pairs": len(tset.pairs),
                "train_pairs_per_direction": tset.pairs_per_direction,
                "train_forms": list(tset.train_forms),
                "train_form_pairs_per_kind": tset.form_pairs_per_kind,
                "prompts_per_pair": tset.n_templates,
                "rows": len(tset.rows),
                "chat_template": chat,
                "limit_pairs": cfg.limit_pairs,
                "row_tokens": lengths,
            },
            "hyperparameters": config,
            "seed": cfg.seed,
            "training": {
                "global_steps": trainer.state.global_step,
                "epochs": cfg.epochs,
                "resumed_from_step": progress.start_step or None,
                "train_loss": result.training_loss,
                "final_logged_loss": loss_curve[-1]["loss"] if loss_curve else None,
                "loss_curve": loss_curve,
                "seconds_this_session": round(progress.seconds, 3),
                "tokens_per_second": round(progress.tokens_per_second, 1),
                # Steady state: the steps after the first progress.WARMUP_STEPS (None if none).
                "tokens_per_second_after_warmup": _round(progress.tokens_per_second_after_warmup, 1),
                "peak_gpu_memory_bytes": peak_gpu_memory_bytes(),  # this process; None on CPU
                "real_tokens_this_session": counts.real,
                "padded_tokens_this_session": counts.total - counts.real,
                "trained_tokens_this_session": counts.trained,
                "padding_share": round(counts.padding_share, 4),
                "length_grouped_batches": cfg.group_by_length,
            },
            "lm_eval_commands": commands,
        }
        atomic.write_json(stage / rundir.MANIFEST_FILE, manifest)
        rundir.move_into_place(stage, out)
        if not cfg.keep_checkpoints:
            shutil.rmtree(out / rundir.CHECKPOINTS, ignore_errors=True)
        t = manifest["training"]
        print(f"termnorm-finetune: adapter written to {out} ({t['global_steps']} steps, final loss "
              f"{t['final_logged_loss']}, {t['tokens_per_second']:,.0f} tokens/s, "
              f"padding {t['padding_share']:.1%})")
        also = (f" ({', '.join(m.name for m in tset.mention_directions)}: the same concepts through "
                "another form)") if tset.mention_directions else ""
        print(f"Score it on the training pairs (memorization) and on the held-out pairs{also}:")
        for split, cmd in commands.items():
            print(f"  # {split}\n  {cmd}")
    trainer.accelerator.wait_for_everyone()
    return manifest
