"""Fine-tuning throughput and padding on CPU: termnorm-finetune's training vs a plain PyTorch loop.

Both run in this process on the same tiny Llama (random weights, byte-level BPE tokenizer) with the
same LoRA, over the very same batches: the batches termnorm-finetune's trainer built (TRL
SFTTrainer, length-grouped sampler) are recorded and replayed by a hand-written
forward/backward/AdamW loop. Printed: real (non-padding) tokens per second of both, their ratio,
and the padding share of the length-grouped batches next to randomly drawn ones.

Targets (issue 4): padding < 10% of tokens; trainer throughput within 10% of the plain loop.

    python benchmarks/bench_finetune.py [--steps 30] [--batch-size 16] [--hidden 256] [--layers 2]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class RecordingCollator:
    """Keeps every batch the trainer trains on, for the plain loop to replay."""

    def __init__(self, inner):
        self.inner = inner
        self.batches = []

    def __call__(self, examples):
        batch = self.inner(examples)
        self.batches.append({k: v.clone() for k, v in batch.items() if hasattr(v, "clone")})
        return batch


def padding_share(batches) -> float:
    total = sum(int(b["input_ids"].numel()) for b in batches)
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    return 1 - real / total


def real_tokens(batches) -> int:
    return sum(int(b["attention_mask"].sum()) for b in batches)


def plain_loop(cfg, tokenizer, batches, lr: float) -> tuple[float, float]:
    """(wall, CPU) seconds for forward/backward/AdamW over ``batches``, fresh LoRA model, same seed."""
    import torch

    from finetune.backends import hf

    model, _ = hf.load(cfg, tokenizer)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    t0, c0 = time.perf_counter(), time.process_time()
    for b in batches:
        out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"])
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)  # the Trainer clips too (max_grad_norm=1)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--terminology", default="go")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    from finetune import train as T
    from finetune.backends import hf
    from finetune.config import FinetuneConfig
    from finetune.data import build_training_set
    from finetune.progress import CountingCollator, ProgressCallback, TokenCounts
    from termnorm_eval.tiny_model import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    model_dir = build_tiny_model(tmp / "model", seed=0, hidden=args.hidden, layers=args.layers)
    cfg = FinetuneConfig(model=str(model_dir), output_dir=str(tmp / "out"), terminology=args.terminology,
                         batch_size=args.batch_size, learning_rate=1e-3, save_steps=10**6)
    tokenizer = T.load_tokenizer(cfg)
    tset = build_training_set(cfg.terminology, None, None, chat=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model hidden={args.hidden} "
          f"layers={args.layers}; {len(tset.rows)} rows ({args.terminology}, all directions, chat "
          f"template); batch {args.batch_size}; {args.steps} steps")

    # Padding of randomly drawn batches, for reference (no training).
    sft_args = T._sft_config(cfg, "hf", tmp / "ck")
    sft_args.max_steps = args.steps
    model, tokenizer = hf.load(cfg, tokenizer)
    probe = SFTTrainer(model=model, args=sft_args, train_dataset=Dataset.from_list(tset.rows),
                       processing_class=tokenizer)
    random_batches = [probe.data_collator([probe.train_dataset[int(i)] for i in idx])
                      for idx in torch.randperm(len(probe.train_dataset)).split(args.batch_size)[:args.steps]]

    # Rounds of (trainer, plain loop) so that both see the same machine load; the minimum over
    # rounds is the figure least disturbed by other processes.
    trainer_times, plain_times, trainer_cpu, plain_cpu = [], [], [], []
    batches = []
    plain_loop(cfg, tokenizer, random_batches[:3], cfg.learning_rate)  # warm-up, not timed
    print(f"machine load average at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for _ in range(args.rounds):
        sft_args = T._sft_config(cfg, "hf", tmp / "ck")
        sft_args.max_steps = args.steps
        counts = TokenCounts()
        progress = ProgressCallback(counts, show=False)
        model, tokenizer = hf.load(cfg, tokenizer)
        trainer = T.build_trainer(model, tokenizer, tset, sft_args, [progress])
        recorder = RecordingCollator(trainer.data_collator)
        trainer.data_collator = CountingCollator(recorder, counts)
        c0 = time.process_time()
        trainer.train()
        trainer_cpu.append(time.process_time() - c0)
        trainer_times.append(progress.seconds)
        # The dataloader fetches one batch ahead: replay only the batches that were trained on.
        batches = recorder.batches[: args.steps]
        wall, cpu = plain_loop(cfg, tokenizer, batches, cfg.learning_rate)
        plain_times.append(wall)
        plain_cpu.append(cpu)
    trainer_s, plain_s = min(trainer_times), min(plain_times)

    tokens = real_tokens(batches)
    tps_trainer, tps_plain = tokens / trainer_s, tokens / plain_s
    print(f"padding share, length-grouped batches (termnorm-finetune): {padding_share(batches):.1%}")
    print(f"padding share, random batches (reference):                {padding_share(random_batches):.1%}")
    rounds = ", ".join(f"{t:.2f}/{p:.2f}" for t, p in zip(trainer_times, plain_times, strict=True))
    print(f"seconds per round (trainer/plain): {rounds}; {len(batches)} batches, {tokens} real tokens")
    print(f"termnorm-finetune trainer: {tps_trainer:8.0f} real tokens/s (best round)")
    print(f"plain PyTorch loop:        {tps_plain:8.0f} real tokens/s (best round)")
    print(f"ratio trainer / plain: {tps_trainer / tps_plain:.3f}  (target >= 0.90)")
    # CPU seconds of this process: less disturbed than wall time when other jobs share the cores.
    print("CPU seconds per round (trainer/plain): "
          + ", ".join(f"{t:.2f}/{p:.2f}" for t, p in zip(trainer_cpu, plain_cpu, strict=True)))
    print(f"ratio by CPU time, plain / trainer (best rounds): {min(plain_cpu) / min(trainer_cpu):.3f}")
    print(f"machine load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
