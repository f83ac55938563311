"""Training rows from a training split: exactly what the harness will ask, with the bare answer.

Each (record, direction) pair is rendered with all of the direction's prompt templates (templates[0]
is the evaluation prompt, the others are paraphrases, as in the study). The prompt is
``input_text(question)``, the harness's ``doc_to_text``; the completion is the bare answer. With a
chat template the rows are conversational (TRL applies the template, as lm-eval's
``--apply_chat_template`` does); without one the completion is ``" " + answer + "\\n"``: the
harness's target delimiter before, and the newline the harness stops at after.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.mirrors import sha256_file
from termnorm_eval.splits import store
from termnorm_eval.terminologies import TARGET_DELIMITER, Direction, Terminology, input_text

STOP = "\n"  # the harness's `until`


@dataclass(frozen=True)
class TrainingSet:
    rows: list[dict[str, Any]]  # prompt/completion rows, record-major, template-minor
    pairs: list[tuple[str, str]]  # (direction, record id) per trained pair, store order
    terminology: Terminology
    directions: tuple[str, ...]
    data_dir: Path
    chat: bool
    data_manifest_sha256: str
    train_split_sha256: str
    n_templates: int

    @property
    def pairs_per_direction(self) -> dict[str, int]:
        out = dict.fromkeys(self.directions, 0)
        for d, _ in self.pairs:
            out[d] += 1
        return out


def resolve_terminology(key: str, data_dir: str | Path | None) -> Terminology:
    root = Path(data_dir) if data_dir is not None else store.shipped_data_dir()
    keys = store.available(root)
    if key not in keys:
        known = ", ".join(keys) or "none: build the splits first"
        raise TermnormError(f"{root}: no training split for terminology {key!r} (known: {known})")
    return store.terminology(key, data_dir)


def resolve_directions(term: Terminology, names: list[str] | None) -> tuple[Direction, ...]:
    if not names:
        return term.directions
    out = []
    for n in names:
        try:
            out.append(term.direction(n))
        except KeyError as e:
            raise TermnormError(str(e.args[0])) from None
    return tuple(dict.fromkeys(out))


def render_row(direction: Direction, record: dict[str, Any], term: Terminology, variant: int,
               chat: bool) -> dict[str, Any]:
    prompt = input_text(direction.prompt(record, term, variant))
    answer = direction.answer(record)
    if chat:
        return {
            "prompt": [{"role": "user", "content": prompt}],
            "completion": [{"role": "assistant", "content": answer}],
        }
    return {"prompt": prompt, "completion": TARGET_DELIMITER + answer + STOP}


def build_training_set(
    key: str,
    direction_names: list[str] | None,
    data_dir: str | Path | None,
    *,
    chat: bool,
    limit_pairs: int | None = None,
) -> TrainingSet:
    """All training pairs of ``key`` (first ``limit_pairs`` per direction, in store order)."""
    term = resolve_terminology(key, data_dir)
    directions = resolve_directions(term, direction_names)
    root = Path(data_dir) if data_dir is not None else store.shipped_data_dir()
    records = store.load_records(key, "train", data_dir)
    # Held-out pairs must never be trained: refuse a data folder whose splits overlap.
    val_ids = {r["id"] for r in store.load_records(key, "val", data_dir)}
    overlap = val_ids.intersection(r["id"] for r in records)
    if overlap:
        raise TermnormError(
            f"{store.split_path(key, 'train', data_dir)}: {len(overlap)} record(s) also in the val split "
            f"(e.g. {sorted(overlap)[0]}); refusing to train on held-out pairs"
        )
    rows: list[dict[str, Any]] = []
    pairs: list[tuple[str, str]] = []
    n_templates = min(len(d.templates) for d in directions)
    for d in directions:
        chosen = [r for r in records if d.applies_to(r)]
        if limit_pairs is not None:
            chosen = chosen[:limit_pairs]
        for rec in chosen:
            pairs.append((d.name, rec["id"]))
            rows.extend(render_row(d, rec, term, v, chat) for v in range(len(d.templates)))
    if not rows:
        raise TermnormError(f"{store.split_path(key, 'train', data_dir)}: no training pairs for "
                            f"{', '.join(d.name for d in directions)}")
    return TrainingSet(
        rows=rows,
        pairs=pairs,
        terminology=term,
        directions=tuple(d.name for d in directions),
        data_dir=root.resolve(),
        chat=chat,
        data_manifest_sha256=sha256_file(root / store.MANIFEST),
        train_split_sha256=sha256_file(store.split_path(key, "train", data_dir)),
        n_templates=n_templates,
    )
