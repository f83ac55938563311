"""add-mentions: a user's own ``mention<TAB>identifier`` table as a task family scored against a
terminology's release, written atomically into one folder.

Output folder layout (``OUT``: at once the data folder and the task folder, as add-ontology's)::

    OUT/manifest.json                 parameters, sources (table and index digests), every count
    OUT/DATA_CARD.md                  the same facts for humans (rendered from the manifest)
    OUT/<name>/test.jsonl             one record per scored row, in file order (``resolve.Release.record``)
    OUT/<name>/left_out.tsv           every row left out, with its line, outcome and detail
    OUT/<name>/index.tsv.gz           the terminology's release index, copied (answer validity)
    OUT/_default_template_yaml, OUT/_study_template_yaml, OUT/utils.py
    OUT/termnorm_<name>_<direction>_test.yaml         plain family (mention2id; genes mention2symbol)
    OUT/termnorm-study_<name>_<direction>_test.yaml   study-protocol family
    OUT/_group_termnorm-<name>.yaml, OUT/_group_termnorm-mentions-<name>.yaml (+ study mirrors)

The user's rows stay in ``OUT``: nothing is written into the shipped data or the data folder read.
The rows are all test items (split ``test``): no training split, so the tasks run zero-shot (a few-shot
request is refused, ``harness.fewshot``), and no popularity (popularity and bin null, no strata).
"""

from __future__ import annotations

import contextlib
import json
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from termnorm_eval import atomic
from termnorm_eval.errors import TermnormError
from termnorm_eval.splits import store
from termnorm_eval.terminologies import BUILTIN, SPLITS, TEST_SPLIT, Terminology, user_mentions_terminology
from termnorm_eval.user_mentions.resolve import FORMS, NOTES, OUTCOMES, Release, Resolved, resolve
from termnorm_eval.user_mentions.table import read_table

MADE_BY = "termnorm add-mentions"
NO_POPULARITY = "none (a user's mentions)"
Progress = Callable[[str], None]


@dataclass
class AddMentionsResult:
    """What ``add_mentions`` wrote (paths absolute) and every count (also in the manifest)."""

    name: str
    terminology: str  # the key the mentions are scored against
    out_dir: Path
    manifest: Path
    test_file: Path
    left_out_file: Path
    index_file: Path  # the release index read (copied into OUT)
    rows: int  # data rows of the table (no header, no blank lines)
    outcomes: dict[str, int]  # resolve.OUTCOMES, each row once; zeros included
    notes: dict[str, int]  # resolve.NOTES, only non-zero
    forms: dict[str, int]  # resolve.FORMS of the scored rows, only non-zero
    concepts: int  # distinct concepts scored
    in_splits: dict[str, int]  # concepts among the terminology's train / val records (none: {})
    tasks: list[str]
    study_tasks: list[str]
    groups: list[str]
    warnings: list[str] = field(default_factory=list)

    def lm_eval_command(self, model: str = "HuggingFaceTB/SmolLM2-135M-Instruct",
                        out: str | Path | None = None) -> str:
        folder = shlex.quote(str(out or self.out_dir))
        return (f"lm_eval --model hf --model_args pretrained={model} --include_path {folder} "
                f"--tasks {','.join(self.tasks)}")

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def _noop(_: str) -> None:
    pass


def check_target(out: Path, force: bool, protected: list[Path]) -> None:
    """Refuse an OUT that holds something, unless ``force`` and it is an earlier add-mentions output."""
    from termnorm_eval.splits import build

    build.check_target(out, force, protected, option="--out", owned=build.made_by(MADE_BY),
                       what="add-mentions output")


def _terminology(key: str, data_dir: Path | None) -> Terminology:
    """The terminology scored against: built in, or the one of ``data_dir``'s manifest."""
    if data_dir is None and key not in BUILTIN:
        raise TermnormError(f"--terminology {key}: not built in ({', '.join(BUILTIN)}); for an added "
                            "ontology give --data-dir, its add-ontology output")
    term = store.terminology(key, data_dir)
    if term.mentions_of is not None:
        raise TermnormError(f"--terminology {key}: is itself a user's mention table (add-mentions output); "
                            f"give the terminology it is scored against ({term.mentions_of})")
    return term


def _in_splits(term: Terminology, data_dir: Path | None, concepts: set[str]) -> dict[str, int]:
    """How many scored concepts are records of the terminology's train / val split (a fine-tuned model
    trained the labels of the former); {} when the data folder has no splits."""
    out = {}
    for split in SPLITS:
        path = store.split_path(term.key, split, data_dir)
        if path.is_file():
            out[split] = len(concepts & {r["id"] for r in store.load_records(term.key, split, data_dir)})
    return out


def manifest_for(res: Resolved, user: Terminology, of: Terminology, table: Path, index: Path,
                 data_dir: Path | None, in_splits: dict[str, int]) -> dict[str, Any]:
    from termnorm_eval.sources.mirrors import sha256_file

    concepts = len({r["id"] for r in res.records})
    return {
        "parameters": {"made_by": MADE_BY, "name": user.key, "terminology": of.key,
                       "data_dir": str(data_dir) if data_dir is not None else None},
        "sources": {
            table.name: {"role": "mentions", "path": str(table), "sha256": sha256_file(table),
                         "rows": sum(res.outcomes.values())},
            f"{of.key}/{index.name}": {"role": "release index", "path": str(index),
                                       "sha256": sha256_file(index)},
        },
        "terminologies": {user.key: {
            "spec": user.to_dict(),
            "counts": {TEST_SPLIT: len(res.records)},
            "popularity": NO_POPULARITY,
            "user_mentions": {
                "outcomes": dict(res.outcomes), "outcome_meanings": OUTCOMES,
                "notes": dict(res.notes), "note_meanings": {k: NOTES[k] for k in res.notes},
                "forms": dict(res.forms), "form_meanings": {k: FORMS[k] for k in res.forms},
                "concepts": concepts, "concepts_in_splits": in_splits,
            },
        }},
    }


def render_card(manifest: dict[str, Any]) -> str:
    """DATA_CARD.md of an add-mentions output, from its manifest (so it cannot drift from it)."""
    p = manifest["parameters"]
    (key, t), = manifest["terminologies"].items()
    u = t["user_mentions"]
    (table, src), = ((n, s) for n, s in manifest["sources"].items() if s["role"] == "mentions")
    lines = [
        f"# {key}: a user's mentions of {t['spec']['label']} concepts (termnorm add-mentions)",
        "",
        f"The rows of `{table}` (sha256 `{src['sha256']}`) checked against the `{p['terminology']}` release "
        "index (copied beside the records), as the test split of the tasks "
        f"`termnorm_{key}_*_test` and `termnorm-study_{key}_*_test`. Rendered from `manifest.json`.",
        "",
        "- All rows are test items: no training split, so the tasks run zero-shot (few-shot requests are "
        "refused), and no popularity: the strata metrics (`exact_match_low/mid/high`) are not reported.",
        f"- {u['concepts']} distinct concepts scored"
        + (": " + ", ".join(f"{n} of them in the `{p['terminology']}` {s} split" for s, n in
                            u["concepts_in_splits"].items()) if u["concepts_in_splits"] else "") + ".",
        "",
        "## Every row, once", "", "| rows | outcome |", "|---:|---|",
        *(f"| {n} | {u['outcome_meanings'][k]} |" for k, n in u["outcomes"].items()),
        "", "Each row left out is listed with its line and reason in `left_out.tsv`.",
    ]
    if u["notes"]:
        lines += ["", "## Notes", "", "| count | what |", "|---:|---|",
                  *(f"| {n} | {u['note_meanings'][k]} |" for k, n in u["notes"].items())]
    lines += ["", "## What the scored mentions are to their concept in the release", "",
              "| rows | form |", "|---:|---|",
              *(f"| {n} | {u['form_meanings'][k]} |" for k, n in u["forms"].items()),
              "", "Licence: that of your table and of the terminology's release; check both before sharing "
              "this folder.", ""]
    return "\n".join(lines)


def add_mentions(
    file: str | Path,
    terminology: str,
    name: str,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> AddMentionsResult:
    """Turn a ``mention<TAB>identifier`` table into tasks scored against a terminology's release; the
    Python face of ``termnorm add-mentions``.

    Args:
        file: the table (UTF-8; see ``table`` for its shape and bounds).
        terminology: ``hpo``, ``go``, ``gene`` or the key of an added ontology (then ``data_dir``).
        name: short lower-case name of the table: tasks ``termnorm_<name>_<direction>_test``.
        out: output folder (new or empty; ``force`` replaces an earlier add-mentions output).
        data_dir: the data folder holding the terminology (an add-ontology output, a ``data build``
            output); default the shipped data. Its release index is what the rows are checked against.
        force: replace an earlier add-mentions output in ``out``.
        progress: called with a short message at each stage.

    Raises:
        TermnormError: bad input (file, line, option), or no row left to score; nothing is written.
    """
    from termnorm_eval.harness.taskgen import (
        family_groups,
        group_name,
        leaves,
        study_group_name,
        study_task_name,
        task_name,
        write_task_family,
    )
    from termnorm_eval.ontology.add import check_name

    say = progress or _noop
    check_name(name)
    if name == terminology:
        raise TermnormError(f"--name {name}: the terminology's own key; its tasks and groups would clash "
                            "with this table's")
    src = Path(file)
    given = Path(data_dir).expanduser().resolve() if data_dir is not None else None
    of = _terminology(terminology, given)
    index = store.index_path(of.key, given)
    if not index.is_file():
        raise TermnormError(f"{index}: no release index of {of.key!r} (a data folder built before release "
                            "indexes; rebuild it)")
    out = Path(out).expanduser().resolve()
    for folder in (store.shipped_data_dir().resolve(), given):
        if folder is not None and (out == folder or folder in out.parents):
            raise TermnormError(f"--out {out}: inside the data folder {folder}; a user's rows stay in a "
                                "folder of their own (choose one elsewhere)")
    protected = [src, *([given] if given is not None else [])]
    check_target(out, force, protected)
    say(f"reading {src.name}")
    table = read_table(src)
    say(f"checking {len(table.rows)} rows against the {of.key} release")
    res = resolve(table, Release(of, index))
    if not res.records:
        counts = ", ".join(f"{k} {n}" for k, n in res.outcomes.items() if n)
        raise TermnormError(f"{src}: no row left to score ({counts}); are the identifiers {of.label}'s "
                            f"(--terminology {of.key})?")
    user = user_mentions_terminology(name, of)
    in_splits = _in_splits(of, given, {r["id"] for r in res.records})
    manifest = manifest_for(res, user, of, src, index, given, in_splits)
    files: dict[str, str | bytes] = {
        store.MANIFEST: json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        "DATA_CARD.md": render_card(manifest),
        f"{name}/{TEST_SPLIT}.jsonl": "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n"
                                              for r in res.records),
        f"{name}/left_out.tsv": res.left_out_tsv(),
        f"{name}/{index.name}": index.read_bytes(),  # byte-identical: documents name the same release
    }
    with contextlib.ExitStack() as held:
        held.enter_context(atomic.locked_output(out, "--out", lambda: check_target(out, force, protected)))
        stage = held.enter_context(atomic.staged_folder(out))
        atomic.fill_folder(stage, files)
        # Both families (plain, study protocol) from the one generator; the retrieval-augmented
        # family (issue 22) joins here once write_task_family writes it.
        write_task_family([user], stage, data_dir=".", umbrella=None)
        check_target(out, force, protected)  # right before the final move
        atomic.replace_folder(stage, out)
    say("done")
    return AddMentionsResult(
        name=name, terminology=of.key, out_dir=out, manifest=out / store.MANIFEST,
        test_file=out / name / f"{TEST_SPLIT}.jsonl", left_out_file=out / name / "left_out.tsv",
        index_file=index, rows=len(table.rows), outcomes=dict(res.outcomes), notes=dict(res.notes),
        forms=dict(res.forms), concepts=manifest["terminologies"][name]["user_mentions"]["concepts"],
        in_splits=in_splits, tasks=leaves(user, task_name), study_tasks=leaves(user, study_task_name),
        groups=[*family_groups([user], task_name, group_name, umbrella=False),
                *family_groups([user], study_task_name, study_group_name, umbrella=False)],
    )
