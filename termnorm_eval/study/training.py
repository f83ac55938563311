"""The rows a study's training step trains: finetune's own choice with the step's recorded settings,
one definition read by the training step (its identity, its steps per epoch) and by the report (which
concepts the adapter trained)."""

from __future__ import annotations

from typing import Any


def training_set(key: str, values: dict[str, Any]) -> Any:
    """The rows finetune trains ``key``'s adapter on with these settings (plain text: the row count and
    the pairs do not depend on the chat template)."""
    from finetune.data import LABEL, build_training_set

    return build_training_set(key, values["directions"], values.get("data_dir"), chat=False,
                              limit_pairs=values.get("limit_pairs"),
                              train_forms=values.get("train_forms") or (LABEL,),
                              mention_tasks=bool(values.get("mention_tasks")))
