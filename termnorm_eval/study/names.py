"""Names shared by the steps and the report: folders inside a step, the tasks of a terminology."""

from __future__ import annotations

ADAPTER = "adapter"  # the finetune output folder inside a train step
EPOCHS = "epochs"  # epoch-K/ adapters of the sweep, copied out of the checkpoints
RESULTS = "results"  # lm_eval --output_path inside an evaluation step


def task_names(key: str, directions: list[str]) -> list[str]:
    """The train and val tasks of ``key``'s ``directions``."""
    from termnorm_eval.harness.taskgen import task_name

    return [task_name(key, d, split) for d in directions for split in ("train", "val")]


RETRIEVE = "retrieve"  # the step scoring the retriever itself


def rag_name(task: str) -> str:
    """The retrieval-augmented task asking ``task``'s question (termnorm_go_term2id_train ->
    termnorm-rag_go_term2id_train)."""
    from termnorm_eval.harness.taskgen import RAG_PREFIX, TASK_PREFIX

    return RAG_PREFIX + task.removeprefix(TASK_PREFIX)
