"""``termnorm-hf``: lm-eval's ``hf`` model whose answers can only be live answers of the asked terminology.

Generation is lm-eval's own (``HFLM.generate_until``: batching, chat template, stop strings, response
decoding); what changes is one argument of ``model.generate``: a ``prefix_allowed_tokens_fn`` that lets
each row of a batch follow only its document's prefix tree (``constrain``), then, once a whole answer is
spelled, only an end token (the end of text, or a stop string that is one token). So the response is
an allowed answer, a leading space aside, whatever the stop strings and the chat template. Greedy
stays greedy: the model's own scores choose among the allowed tokens (the mask is applied before any
sampling warper). ``max_gen_toks`` is raised to the longest answer of the batch where it is shorter, so
that no answer is cut.

Rows are matched to documents by their context: ``generate_until`` maps each request's context to its
answer set, and ``tok_batch_encode`` (which lm-eval calls once per batch, with the batch's contexts, just
before ``_model_generate``) records which contexts the batch holds. Documents of one batch may need
different trees (tasks of several terminologies, each RAG document its candidates): batching is
lm-eval's, unchanged.

For plain ``lm_eval`` users (0.4.13 reads no model entry points): run lm-eval's command line through
this module, ``python -m termnorm_eval.harness.constrained_lm run --model termnorm-hf --model_args ...
--tasks ... --include_path ...`` (the same options as ``lm_eval run``), or in Python import this module
and pass ``model="termnorm-hf"`` (or a ``TermnormHFLM`` instance) to ``lm_eval.simple_evaluate``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import constrain, inprocess
from termnorm_eval.harness.constrain import AnswerSet, Constrainer, Tree


@register_model(constrain.MODEL_NAME)
class TermnormHFLM(HFLM):
    """lm-eval's ``hf`` model, constrained per document (module docstring). Takes ``HFLM``'s arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.backend != "causal":
            raise TermnormError(f"{constrain.MODEL_NAME}: constrained decoding needs a causal (decoder-only) "
                                f"model, not a {self.backend} one")
        self.constrainer = Constrainer(self.tokenizer, str(getattr(self.tokenizer, "name_or_path", "")))
        self._sets: dict[str, AnswerSet] = {}  # context -> its document's answers, during generate_until
        self._batch: list[str] = []  # the contexts of the batch being generated

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        sets: dict[str, AnswerSet] = {}
        for req in requests:
            context, gen_kwargs = req.args[0], req.args[1]
            spec = constrain.answer_set(req.doc, req.task_name)
            if sets.setdefault(context, spec) != spec:
                raise TermnormError(f"task {req.task_name}: two documents with the same prompt but different "
                                    "answer sets; they cannot be told apart while generating")
            until = gen_kwargs.get("until") if isinstance(gen_kwargs, Mapping) else None
            stops = (*([until] if isinstance(until, str) else until or ()), eos)
            constrain.check_stops(spec, stops, req.task_name)
        for spec in dict.fromkeys(sets.values()):  # every tree before the first token: errors come first
            self.constrainer.tree(spec)
        self._sets = sets
        try:
            return list(super().generate_until(requests, disable_tqdm=disable_tqdm))
        finally:
            self._sets, self._batch = {}, []

    def tok_batch_encode(self, strings: list[str], *args: Any, **kwargs: Any) -> Any:
        self._batch = list(strings)
        return super().tok_batch_encode(strings, *args, **kwargs)

    def _model_generate(self, context: torch.Tensor, max_length: int, stop: list[str],
                        **generation_kwargs: Any) -> torch.Tensor:
        if not self._sets:  # not called by generate_until: nothing to constrain to
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        if len(self._batch) != context.shape[0] or any(c not in self._sets for c in self._batch):
            raise RuntimeError(f"{constrain.MODEL_NAME}: the batch's contexts are not the ones lm-eval "
                               "encoded (HFLM.generate_until changed?); cannot constrain")
        trees = [self.constrainer.tree(self._sets[c]) for c in self._batch]
        allowed = AllowedTokens(trees, start=context.shape[1], ends=self._end_tokens(stop),
                                eos=self._eos_ids())
        # an answer must never be cut by max_gen_toks: room for the longest, and its end token
        max_length = max(max_length, context.shape[1] + max(t.depth for t in trees) + 1)
        return super()._model_generate(context, max_length, stop, prefix_allowed_tokens_fn=allowed,
                                       **generation_kwargs)

    def _eos_ids(self) -> list[int]:
        """The tokens on which ``generate`` ends a row: the generation config's end of text (else the
        tokenizer's)."""
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids = configured if isinstance(configured, list) else [] if configured is None else [configured]
        return [int(i) for i in ids] or [int(self.eot_token_id)]

    def _end_tokens(self, stop: Sequence[str]) -> list[int]:
        """What may follow a whole answer: an end of text, or a stop string that is one token."""
        ids = dict.fromkeys([*self._eos_ids(), int(self.eot_token_id)])
        for s in stop:
            enc = self.tokenizer.encode(s, add_special_tokens=False) if s else []
            if len(enc) == 1:
                ids[int(enc[0])] = None
        return list(ids)

    def get_model_info(self) -> dict[str, Any]:
        return {**super().get_model_info(), "termnorm_constrain": self.constrainer.summary()}


class AllowedTokens:
    """``prefix_allowed_tokens_fn`` for one ``generate`` call: row ``i`` follows ``trees[i]``.

    A row's state after its generated tokens (those from ``start`` on) is its tree node, or done once it
    chose an end token after a whole answer; states are kept per generated prefix, so each call steps
    one token (beams included)."""

    def __init__(self, trees: Sequence[Tree], *, start: int, ends: Sequence[int], eos: Sequence[int]) -> None:
        self.trees = trees
        self.start = start
        self.ends = torch.tensor(list(ends), dtype=torch.long)
        self.end_set = frozenset(ends)
        self.eos = torch.tensor(list(eos), dtype=torch.long)
        self.states: dict[tuple[int, tuple[int, ...]], int] = {}  # (row, generated) -> node, -1: done

    def state(self, row: int, generated: tuple[int, ...]) -> int:
        key = (row, generated)
        found = self.states.get(key)
        if found is None:
            if not generated:
                found = 0
            else:
                before, token = self.state(row, generated[:-1]), generated[-1]
                tree = self.trees[row]
                found = -1 if before < 0 else tree.step(before, token)
                if found < 0 <= before and not (tree.terminal[before] and token in self.end_set):
                    raise RuntimeError(f"{constrain.MODEL_NAME}: token {token} left the prefix tree of row "
                                       f"{row}: something else changed the scores after the constraint")
            self.states[key] = found
        return found

    def __call__(self, row: int, ids: torch.Tensor) -> torch.Tensor:
        node = self.state(row, tuple(ids[self.start:].tolist()))
        if node < 0:  # done: end the row
            return self.eos
        tree = self.trees[row]
        children = torch.from_numpy(tree.next_tokens(node)).long()
        return torch.cat([children, self.ends]) if tree.terminal[node] else children


def main(args: list[str]) -> int:
    """``python -m termnorm_eval.harness.constrained_lm run --model termnorm-hf ...``: lm-eval's ``run``
    with ``termnorm-hf`` registered (in this process when every task is a termnorm one, else lm-eval's
    own CLI, as ``termnorm eval`` runs it)."""
    return inprocess.main(args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
