"""Training rows from a training split: exactly what the harness will ask, with the bare answer.

Each (record, direction) pair is rendered with all of the direction's prompt templates (templates[0]
is the evaluation prompt, the others are paraphrases, as in the study). The prompt is
``input_text(question)``, the harness's ``doc_to_text``; the completion is the bare answer. With a
chat template the rows are conversational (TRL applies the template, as lm-eval's
``--apply_chat_template`` does); without one the completion is ``" " + answer + "\\n"``: the
harness's target delimiter before, and the newline the harness stops at after.

Labels only by default (the study's design): the label directions (``Terminology.directions``);
a mention direction (synonym2id, alias2symbol, ...) is never trained as such. ``train_forms``
adds, for the trained concepts, their other usable forms of a kind (``splits.mentions.record_forms``,
the rule the build chose the mention tasks' forms by), rendered with that kind's mention prompts
(for ontologies the label direction's own templates): every usable form of the kind EXCEPT the one
a mention task asks about the concept (``mentions.<kind>``, any kind, compared after ``fold``), so
the ``_train`` mention tasks still ask forms training never showed: concept transfer, not recall.

With ``mention_tasks`` the adapter is also scored on the mention tasks that mirror its directions
(the same concepts through another form), and ``limit_pairs`` N then trains the records of the first
N documents of each of them too (through their label), so ``--limit N`` scores trained concepts
only in every task: store order is not the same among the records that have a form.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.mirrors import sha256_file
from termnorm_eval.splits import mentions, release_index, store
from termnorm_eval.terminologies import TARGET_DELIMITER, Direction, Terminology, input_text

STOP = "\n"  # the harness's `until`
LABEL = "label"  # the train_forms value of the label directions' own pairs, always trained


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
    train_forms: tuple[str, ...] = (LABEL,)
    # (kind, record id, form) per trained form pair (train_forms), after the label pairs
    form_pairs: list[tuple[str, str, str]] = field(default_factory=list)
    # with mention_tasks, the mention directions mirroring the trained ones (the same concepts)
    mention_directions: tuple[Direction, ...] = ()

    @property
    def pairs_per_direction(self) -> dict[str, int]:
        out = dict.fromkeys(self.directions, 0)
        for d, _ in self.pairs:
            out[d] += 1
        return out

    @property
    def form_pairs_per_kind(self) -> dict[str, int]:
        out = dict.fromkeys((k for k in self.train_forms if k != LABEL), 0)
        for kind, _, _ in self.form_pairs:
            out[kind] += 1
        return out


def resolve_terminology(key: str, data_dir: str | Path | None) -> Terminology:
    root = Path(data_dir) if data_dir is not None else store.shipped_data_dir()
    keys = store.available(root)
    if key not in keys:
        known = ", ".join(keys) or "none: build the splits first"
        raise TermnormError(f"{root}: no training split for terminology {key!r} (known: {known})")
    return store.terminology(key, data_dir)


def resolve_directions(term: Terminology, names: list[str] | None) -> tuple[Direction, ...]:
    """The label directions named (all of them when none is); a mention direction is refused."""
    if not names:
        return term.directions
    out = []
    for n in names:
        try:
            d = term.direction(n)
        except KeyError as e:
            raise TermnormError(str(e.args[0])) from None
        if d.mention is not None:
            raise TermnormError(
                f"--directions {n}: a mention direction; fine-tuning trains label directions ("
                f"{', '.join(x.name for x in term.directions)}); to train on {d.mention} forms too use "
                f"--train-forms {LABEL},{d.mention} with {d.mirrors}")
        out.append(d)
    return tuple(dict.fromkeys(out))


def form_directions(term: Terminology, directions: Sequence[Direction], train_forms: Sequence[str]
                    ) -> tuple[Direction, ...]:
    """The mention direction of each kind in ``train_forms`` (its prompts render the forms); a kind
    the terminology has no forms of, or whose label direction is not trained, is refused."""
    out = []
    for kind in dict.fromkeys(k for k in train_forms if k != LABEL):
        found = [m for m in term.mention_directions if m.mention == kind]
        if not found:
            have = ", ".join(m.mention or "" for m in term.mention_directions) or "none"
            raise TermnormError(f"--train-forms {kind}: terminology {term.key!r} has no {kind} forms "
                                f"(its kinds: {have})")
        m = found[0]
        if m.mirrors not in {d.name for d in directions}:
            raise TermnormError(f"--train-forms {kind}: {kind} forms are asked for {m.mirrors}, which is "
                                f"not among --directions {','.join(d.name for d in directions)}")
        out.append(m)
    return tuple(out)


def gene_owners(term: Terminology, data_dir: str | Path | None, why: str) -> mentions.GeneOwners | None:
    """Which approved genes own a symbol (``mentions.GeneOwners``, the build's rule), from the release
    index beside the gene splits; None for an ontology. ``why`` names what needs it in the error."""
    if term.kind != "gene":
        return None
    path = store.index_path(term.key, data_dir)
    if not path.is_file():
        raise TermnormError(f"{path}: no release index; {why} needs it to tell the symbols one gene owns "
                            "(rebuild the splits)")
    return mentions.GeneOwners.from_rows(release_index.read_rows(path))


def usable_forms(record: dict[str, Any], owners: mentions.GeneOwners | None) -> mentions.Forms:
    """The record's usable forms by kind (``mentions.record_forms``); a gene's need ``owners``."""
    notes: Counter[str] = Counter()
    if owners is None:
        return mentions.record_forms(record, None, notes)
    owned = owners.forms(record["id"], record.get("alias_symbols") or [], record.get("prev_symbols") or [],
                         notes)
    return mentions.record_forms(record, owned, notes)


def trained_forms(record: dict[str, Any], kind: str, forms: mentions.Forms) -> list[str]:
    """The forms of ``kind`` trained for ``record``: its usable ones but any that a mention task asks
    about it (``mentions``, every kind: a form shared by two kinds stays unseen too), after ``fold``."""
    asked = {mentions.fold(f) for f in (record.get("mentions") or {}).values()}
    return [f for f in forms.get(kind, []) if mentions.fold(f) not in asked]


def _limited(records: list[dict[str, Any]], d: Direction, mirrors: Sequence[Direction],
             limit: int | None) -> list[dict[str, Any]]:
    """The records ``d`` trains: all that apply, or with ``limit`` those of the first ``limit``
    documents of ``d``'s task and of each mention task mirroring it (store order)."""
    chosen = [r for r in records if d.applies_to(r)]
    if limit is None:
        return chosen
    ids = {r["id"] for r in chosen[:limit]}
    for m in mirrors:
        ids.update(r["id"] for r in [r for r in records if m.applies_to(r)][:limit])
    return [r for r in chosen if r["id"] in ids]


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
    train_forms: Sequence[str] = (LABEL,),
    mention_tasks: bool = False,
) -> TrainingSet:
    """All training pairs of ``key`` (with ``limit_pairs``: of the first documents of the tasks
    scored, see the module), then the forms ``train_forms`` adds for the same concepts."""
    term = resolve_terminology(key, data_dir)
    directions = resolve_directions(term, direction_names)
    scored = term.mirroring(d.name for d in directions) if mention_tasks else ()
    forms_of = form_directions(term, directions, train_forms)
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
    trained: dict[str, list[dict[str, Any]]] = {}
    for d in directions:
        trained[d.name] = _limited(records, d, [m for m in scored if m.mirrors == d.name], limit_pairs)
        for rec in trained[d.name]:
            pairs.append((d.name, rec["id"]))
            rows.extend(render_row(d, rec, term, v, chat) for v in range(len(d.templates)))
    if not rows:
        raise TermnormError(f"{store.split_path(key, 'train', data_dir)}: no training pairs for "
                            f"{', '.join(d.name for d in directions)}")
    form_pairs = _form_rows(term, forms_of, trained, data_dir, chat, rows)
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
        train_forms=tuple(dict.fromkeys((LABEL, *train_forms))),
        form_pairs=form_pairs,
        mention_directions=scored,
    )


def _form_rows(term: Terminology, forms_of: Sequence[Direction], trained: dict[str, list[dict[str, Any]]],
               data_dir: str | Path | None, chat: bool, rows: list[dict[str, Any]]
               ) -> list[tuple[str, str, str]]:
    """Append the rows of ``train_forms`` (each trained form in every prompt of its kind's mention
    direction) to ``rows``; returns the (kind, record id, form) pairs."""
    if not forms_of:
        return []
    # which aliases one gene owns: the whole release knows
    owners = gene_owners(term, data_dir, "--train-forms " + ",".join(m.mention or "" for m in forms_of))
    out: list[tuple[str, str, str]] = []
    for m in forms_of:
        assert m.mention is not None and m.mirrors is not None
        before = len(out)
        for rec in trained[m.mirrors]:
            for form in trained_forms(rec, m.mention, usable_forms(rec, owners)):
                out.append((m.mention, rec["id"], form))
                shown = rec | {"mentions": {**(rec.get("mentions") or {}), m.mention: form}}
                rows.extend(render_row(m, shown, term, v, chat) for v in range(len(m.templates)))
        if len(out) == before:
            raise TermnormError(f"--train-forms {m.mention}: no trained concept of {term.key} has a usable "
                                f"{m.mention} form besides the one its {m.name} task asks; nothing to add")
    return out
