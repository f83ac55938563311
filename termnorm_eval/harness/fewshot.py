"""The few-shot sampler of tasks that have no examples to give (``!function utils.NoFewshotSampler``).

A user's mention table (``termnorm add-mentions``) is all test items: an example drawn from it would
show the answer of another row, often the same concept through another mention, in the prompt. Its
tasks run zero-shot; ``--num_fewshot`` above 0 is refused, naming the task, instead of being served
from the rows scored. Imported only by the generated ``utils.py``, which the harness loads.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.samplers import ContextSampler

from termnorm_eval.errors import TermnormError


class NoFewshotSampler(ContextSampler):
    """Gives no example; asked for any, a one-line error."""

    def sample(self, n: int, eval_doc: dict[str, Any] | None = None, df: Any = None,
               **kwargs: Any) -> list[Any]:
        if n <= 0:
            return []
        docs = self.df or [{}]
        task = f"termnorm_{docs[0].get('terminology', '?')}_{docs[0].get('direction', '?')}"
        raise TermnormError(f"{task}: --num_fewshot {n}: these tasks have no training split to draw "
                            "examples from (a user's mentions are all test items); run them zero-shot")
