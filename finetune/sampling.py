"""Length-grouped batches whose order depends only on (seed, epoch).

transformers' ``LengthGroupedSampler`` draws from the global RNG when the epoch starts, so a run
resumed mid-epoch (whose RNG state was saved later than that) sees other batches than the run
that never stopped. Seeding each epoch's shuffle with ``seed + epoch`` (the Trainer calls
``set_epoch``) makes an interrupted and resumed run bitwise equal to an uninterrupted one.
Grouping itself is transformers' ``get_length_grouped_indices`` (random megabatches of up to 50
batches, sorted by length inside): little padding, still shuffled.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Sampler


class EpochSeededLengthGroupedSampler(Sampler[int]):
    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        from transformers.trainer_pt_utils import get_length_grouped_indices

        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=g))


def trainer_class() -> type:
    """TRL's SFTTrainer with the epoch-seeded length-grouped sampler (import after Unsloth)."""
    from trl import SFTTrainer

    class TermnormSFTTrainer(SFTTrainer):
        group_by_length = True

        def _get_train_sampler(self, *args: Any, **kwargs: Any):
            dataset = args[0] if args else kwargs.get("train_dataset", self.train_dataset)
            if not self.group_by_length or dataset is None or "input_ids" not in dataset.column_names:
                return super()._get_train_sampler(*args, **kwargs)
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            lengths = [len(x) for x in dataset["input_ids"]]
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return EpochSeededLengthGroupedSampler(lengths, batch, seed)

    return TermnormSFTTrainer
