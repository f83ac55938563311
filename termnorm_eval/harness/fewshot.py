"""The few-shot sampler of tasks that have no examples to give (``!function utils.NoFewshotSampler``).

Two sorts of task have no training split (``taskgen._no_fewshot``): a user's mention table
(``termnorm add-mentions``), all test items, and an added ontology's mention direction whose forms
are all in val (no training concept has a form of that kind). An example drawn from the documents
scored would show the answer of another of them (often the same concept through another mention) in
the prompt, so these tasks run zero-shot; ``--num_fewshot`` above 0 is refused, naming the task and
which of the two it is. Imported only by the generated ``utils.py``, which the harness loads.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.samplers import ContextSampler

from termnorm_eval.errors import TermnormError
from termnorm_eval.terminologies import USER_DIRECTIONS

_USER = {name for name, _ in USER_DIRECTIONS.values()}  # the directions of a user's mentions


class NoFewshotSampler(ContextSampler):
    """Gives no example; asked for any, a one-line error."""

    def sample(self, n: int, eval_doc: dict[str, Any] | None = None, df: Any = None,
               **kwargs: Any) -> list[Any]:
        if n <= 0:
            return []
        doc = eval_doc or (self.df or [{}])[0]
        direction = doc.get("direction", "?")
        task = f"termnorm_{doc.get('terminology', '?')}_{direction}"
        why = ("a user's mentions are all test items" if direction in _USER else
               "no concept of the training split has a form of this kind: every document is a held-out one")
        raise TermnormError(f"{task}: --num_fewshot {n}: these tasks have no training split to draw "
                            f"examples from ({why}); run them zero-shot")
