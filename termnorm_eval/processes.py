"""Several processes of one run (`accelerate launch`, torchrun): the first one decides, all act.

termnorm-finetune and `termnorm study` run unchanged under a launcher. One process (rank 0)
holds the locks, writes the files and decides what happens next; the others must act on the
same answer, and fail with the same error rather than wait forever for a first process that has
stopped (``from_main``). ``single_process_env`` is the environment of a child that must not see
the launcher (an lm-eval run of the first process alone).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from termnorm_eval.errors import TermnormError

T = TypeVar("T")

# What torchrun and `accelerate launch` set for each worker: a child that keeps them would join
# (or wait for) a process group it is not part of.
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                 "ROLE_RANK", "ROLE_NAME", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
LAUNCHER_PREFIXES = ("TORCHELASTIC_",)


def world_size() -> int:
    """How many processes the launcher started (1 without one)."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


def rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_main() -> bool:
    return rank() == 0


def start(wait: timedelta) -> None:
    """Join the launcher's process group now, with collectives that wait up to ``wait``.

    Early and with a long timeout: the other processes of a study wait in a collective while the
    first one evaluates alone, which can take hours on a large base (torch's default is 30 min).
    The Trainer's own setup later finds the group made and uses it.
    """
    if world_size() <= 1:
        return
    from accelerate import PartialState

    PartialState(timeout=wait)


def stop() -> None:
    """Leave the process group together: a barrier, then its teardown. A worker that exits with
    the group still up can abort in gloo's threads ("terminate called without an active
    exception"), which the launcher reports as the whole run failing."""
    dist = _group()
    if dist is not None:
        dist.barrier()
        dist.destroy_process_group()


def _group() -> Any:
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def from_main(is_first: bool, compute: Callable[[], T]) -> T:
    """``compute()`` on the first process, its result (or its TermnormError) on every process."""
    result: tuple[Any, str | None] = (None, None)
    if is_first:
        try:
            result = (compute(), None)
        except TermnormError as e:
            result = (None, str(e))
    dist = _group()
    if dist is not None:
        box = [result]
        dist.broadcast_object_list(box, src=0)
        result = box[0]
    value, error = result
    if error is not None:
        raise TermnormError(error)
    return value


def single_process_env() -> dict[str, str]:
    """This process's environment without the launcher's variables."""
    return {k: v for k, v in os.environ.items()
            if k not in LAUNCHER_VARS and not k.startswith(LAUNCHER_PREFIXES)}
