"""Writes the termnorm task families for lm-evaluation-harness: templates, thin leaves, groups, utils.py.

The committed ``tasks/`` folder is exactly ``write_task_family(BUILTIN.values(), "tasks")`` (a test
checks it). ``add-ontology`` calls the same function for a new ontology with its own output and
data folders::

    write_task_family([terminology], out_dir, data_dir="data", umbrella=None)

and ``add-mentions`` for a user's mention table (one ``_test`` leaf per family; a direction without a
training split gets no few-shot split and a sampler that refuses ``--num_fewshot``).

Two families share the documents, the data loader, the metrics and the filter name ``extract``:

* the **plain** family ``termnorm_<key>_<direction>_<split>``: the plugin's benchmark (a short
  prompt, the answer on one line);
* the **study** family ``termnorm-study_<key>_<direction>_<split>``: the study's own protocol (its
  system prompt, its JSON instructions, its JSON parsing; see ``study_protocol``), for numbers
  comparable with the published ones. A hyphen after ``termnorm``, so ``--tasks 'termnorm_*'``
  still matches the plain tasks only and ``--tasks 'termnorm-study_*'`` the study tasks only.

A third, the **retrieval-augmented** family ``termnorm-rag_<key>_<direction>_<split>`` (``harness.rag``),
asks the plain family's X->ID questions (``splits.rag.retrievable``: term2id, synonym2id, lay2id,
name2symbol, name2id, protein2symbol, alias2symbol, prev2symbol) with the candidates a retriever
found before the question, and adds the candidate metrics (``RAG_METRICS``). Its documents need the
data folder's candidates (``splits.rag``): every terminology but a user's mention table has them.

Layout written into ``out_dir``:

* ``_default_template_yaml`` / ``_study_template_yaml`` / ``_rag_template_yaml`` -- what the tasks of
  a family share (no ``.yaml`` suffix: never indexed);
* one thin leaf per task and family;
* ``_group_<name>.yaml`` -- groups ``termnorm-<key>`` (every task of one terminology, label and
  mention directions, both splits), ``termnorm-mentions-<key>`` (its mention tasks, when it has
  any) and, with ``umbrella="termnorm"``, ``termnorm`` (all terminologies), ``termnorm-train`` /
  ``termnorm-val`` (every task of a split), ``termnorm-labels`` (the label tasks: the benchmark as
  it was before mentions) and ``termnorm-mentions`` (every mention task); each with its
  ``termnorm-study...`` mirror; the RAG family has ``termnorm-rag-<key>`` and, with the umbrella,
  ``termnorm-rag``. Group names contain a hyphen and no underscore so that no wildcard above
  matches a group;
* ``utils.py`` -- binds the ``!function`` hooks to the data folder. ``data_dir=None`` means the
  splits shipped inside termnorm_eval; otherwise a path relative to ``out_dir`` (an absolute one is
  made relative), resolved against the installed ``utils.py`` at run time, so no absolute path of
  the generating machine is ever written.

Group scores are the unweighted mean over their leaf tasks (``weight_by_size: false``): each
terminology x direction x split counts once, whatever its size.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from termnorm_eval import atomic
from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import rag, validity_names
from termnorm_eval.harness.dataset import answer_format
from termnorm_eval.harness.scoring import ANSWER_IN_PROMPT
from termnorm_eval.harness.study_protocol import system_prompt
from termnorm_eval.splits.rag import retrievable
from termnorm_eval.splits.store import STRATA
from termnorm_eval.terminologies import SPLITS, TASK_VERSION, Direction, Terminology

TASK_PREFIX = "termnorm"
STUDY_PREFIX = "termnorm-study"
RAG_PREFIX = "termnorm-rag"
FILTER_NAME = "extract"
# The scores of every plain task, in results order. The validity shares: higher is better for
# the two right kinds of answer (strict; only lenient), lower for every kind of wrong one.
# hierarchy_credit: strict, with half a point for the gold's is_a parent or child (validity_names).
# exact_match_shown / _hidden: strict over the documents whose prompt shows / does not show the gold
# answer (scoring.answer_shown); answer_in_prompt: the share of the former, lower is a cleaner task.
SCORE_METRICS: tuple[str, ...] = ("exact_match", "lenient_match", validity_names.CREDIT, "alignment",
                                  *(f"exact_match_{s}" for s in STRATA), "exact_match_shown",
                                  "exact_match_hidden")
RIGHT_CATEGORIES = ("correct", "lenient_only")
VALIDITY_METRICS: tuple[str, ...] = validity_names.METRICS
METRICS: tuple[str, ...] = (*SCORE_METRICS, ANSWER_IN_PROMPT, *VALIDITY_METRICS)
# The study tasks add the study's parse errors (lower is better).
STUDY_METRICS: tuple[str, ...] = (*METRICS, validity_names.PARSE_ERROR)
HIGHER_IS_BETTER: dict[str, bool] = {
    **dict.fromkeys(SCORE_METRICS, True),
    ANSWER_IN_PROMPT: False,
    **{m: m in {validity_names.metric(c) for c in RIGHT_CATEGORIES} for m in VALIDITY_METRICS},
}
STUDY_HIGHER_IS_BETTER: dict[str, bool] = {**HIGHER_IS_BETTER, validity_names.PARSE_ERROR: False}
# The RAG tasks add the candidates' ceiling and where a wrong answer came from (harness.rag).
RAG_METRICS: tuple[str, ...] = (*METRICS, *rag.METRICS)
RAG_HIGHER_IS_BETTER: dict[str, bool] = {**HIGHER_IS_BETTER, **rag.HIGHER_IS_BETTER}
# End-of-turn markers of common chat templates (ChatML, Llama 3, Llama 2/Mistral, Phi-3, Gemma):
# lm-eval's vllm backend decodes with skip_special_tokens=False, so a marker that is not a stop
# string would stay in its responses (hf decodes without them): listed, both engines score the same.
END_OF_TURN: tuple[str, ...] = ("<|im_end|>", "<|eot_id|>", "</s>", "<|end|>", "<end_of_turn>")
UNTIL: tuple[str, ...] = ("\n", *END_OF_TURN)
# Tokens to generate: room for a one-sentence answer ("The HPO identifier of X is HP:0001250.")
# around identifiers and symbols; names need more (long GO and gene names).
MAX_GEN_TOKS = {"curie": 24, "symbol": 24, "name": 48}
# The study's answers are JSON objects, often pretty-printed over several lines: stop only at the
# end of the model's turn (the study's API calls had no stop sequence), within the study's 128 tokens.
STUDY_UNTIL: tuple[str, ...] = (*END_OF_TURN, "<|end_of_text|>")
STUDY_MAX_GEN_TOKS = 128
GENERATED_MARK = "Generated by termnorm_eval.harness.taskgen"
TEMPLATE_FILE = "_default_template_yaml"
STUDY_TEMPLATE_FILE = "_study_template_yaml"
RAG_TEMPLATE_FILE = "_rag_template_yaml"
VERSION = TASK_VERSION  # defined with the record fields it versions
# The groups' own version (what their rows mean): 2.1, every validity row averages all the group's
# tasks (each task reports every category; before, a category averaged only the tasks of its kind);
# 3.0, termnorm, termnorm-<key> and termnorm-train/-val hold the mention tasks too (the label tasks
# alone: termnorm-labels), new groups termnorm-mentions and termnorm-mentions-<key>.
GROUP_VERSION = 3.0
# Group name parts after "termnorm-" that the umbrella groups use (termnorm-study: the study
# family's umbrella): no terminology may be named so.
UMBRELLA_PARTS = ("train", "val", "labels", "mentions", "study", "rag")
LABELS, MENTIONS = "labels", "mentions"

_HEADER = f"# {GENERATED_MARK} (python tasks/_generate_configs.py); do not edit.\n"


def _metric_list(metrics: tuple[str, ...], higher_is_better: dict[str, bool]) -> str:
    lines = ["metric_list:\n"]
    for m in metrics:
        # alignment is aggregated once per task (one embedding pass), the others are plain means
        agg = "!function utils.alignment" if m == "alignment" else "mean"
        lines += [f"  - metric: {m}\n", f"    aggregation: {agg}\n",
                  f"    higher_is_better: {'true' if higher_is_better[m] else 'false'}\n"]
    return "".join(lines)

def _answer_template(comment: str, loader: str, process: str, metrics: tuple[str, ...],
                     higher_is_better: dict[str, bool]) -> str:
    """The shared YAML of a family that asks the plain question (``input``) and extracts the answer."""
    return _HEADER + comment + f"""\
output_type: generate_until
custom_dataset: !function utils.{loader}
fewshot_split: train
doc_to_text: input
doc_to_target: answer
target_delimiter: " "
fewshot_delimiter: "\\n\\n"
filter_list:
  - name: {FILTER_NAME}
    filter:
      - function: custom
        filter_fn: !function utils.extract_responses
process_results: !function utils.{process}
""" + _metric_list(metrics, higher_is_better) + f"""metadata:
  version: {VERSION}
"""


TEMPLATE = _answer_template("""\
# Shared configuration of every termnorm_* task; each leaf adds its task name, terminology,
# direction, split and generation limits.
""", "load_dataset", "process_results", METRICS, HIGHER_IS_BETTER)

RAG_TEMPLATE = _answer_template("""\
# Shared configuration of every termnorm-rag_* task: the plain task's question after the candidates a
# retriever found (termnorm_eval.harness.rag); each leaf adds its task name, terminology, direction,
# split and generation limits. --metadata '{"rag_k": 5}' shows fewer candidates (at most 20),
# '{"rag_candidates": "FOLDER"}' another retriever's (termnorm retrieve candidates).
""", "load_rag_dataset", "process_rag_results", RAG_METRICS, RAG_HIGHER_IS_BETTER)

STUDY_TEMPLATE = _HEADER + f"""\
# Shared configuration of every termnorm-study_* task (the study's evaluation protocol, see
# termnorm_eval.harness.study_protocol); each leaf adds its task name, terminology, direction,
# split and the study's system prompt (description: the system message with --apply_chat_template,
# prepended to the prompt without).
output_type: generate_until
custom_dataset: !function utils.load_dataset
fewshot_split: train
doc_to_text: !function utils.study_doc_to_text
doc_to_target: answer
fewshot_config:
  sampler: default
  doc_to_target: !function utils.study_fewshot_target
# a few-shot example's JSON answer on the line after its prompt (the study itself is zero-shot)
target_delimiter: "\\n"
fewshot_delimiter: "\\n\\n"
filter_list:
  - name: {FILTER_NAME}
    filter:
      - function: custom
        filter_fn: !function utils.extract_study_responses
process_results: !function utils.process_results
""" + _metric_list(STUDY_METRICS, STUDY_HIGHER_IS_BETTER) + f"""generation_kwargs:
  until: [{", ".join(json.dumps(u) for u in STUDY_UNTIL)}]
  max_gen_toks: {STUDY_MAX_GEN_TOKS}
  do_sample: false
metadata:
  version: {VERSION}
"""

UTILS_TEMPLATE = '''"""Hooks of the task YAMLs in this folder. {mark}; do not edit."""

from __future__ import annotations
{imports}
from termnorm_eval.harness.fewshot import NoFewshotSampler
from termnorm_eval.harness.hooks import (
    alignment,
    extract_responses,
    make_loader,
    make_study_hooks,
    process_rag_results,
    process_results,
)

__all__ = ["NoFewshotSampler", "alignment", "extract_responses", "extract_study_responses", "load_dataset",
           "load_rag_dataset", "process_rag_results", "process_results", "study_doc_to_text",
           "study_fewshot_target"]

{data_dir_line}
load_dataset = make_loader(DATA_DIR)
# The termnorm-rag_* tasks: the same documents with the retriever's candidates before the question.
load_rag_dataset = make_loader(DATA_DIR, rag=True)
# The termnorm-study_* tasks: the study's prompt, its JSON parsing, JSON answers in few-shot examples.
_study = make_study_hooks(DATA_DIR)
study_doc_to_text = _study.doc_to_text
extract_study_responses = _study.extract_responses
study_fewshot_target = _study.fewshot_target
'''


def task_name(key: str, direction: str, split: str) -> str:
    return f"{TASK_PREFIX}_{key}_{direction}_{split}"


def group_name(*parts: str) -> str:
    return "-".join((TASK_PREFIX, *parts))


def study_task_name(key: str, direction: str, split: str) -> str:
    return f"{STUDY_PREFIX}_{key}_{direction}_{split}"


def study_group_name(*parts: str) -> str:
    return "-".join((STUDY_PREFIX, *parts))


def rag_task_name(key: str, direction: str, split: str) -> str:
    return f"{RAG_PREFIX}_{key}_{direction}_{split}"


def rag_group_name(*parts: str) -> str:
    return "-".join((RAG_PREFIX, *parts))


def rag_directions(term: Terminology) -> tuple[Direction, ...]:
    """The directions of ``term`` that have a RAG task: the retrievable ones; none for a user's mention
    table (its build computes no candidates)."""
    return () if term.mentions_of else tuple(d for d in term.all_directions if retrievable(d))


def _q(s: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(s, ensure_ascii=False)


def _no_fewshot(direction: Direction, study: bool) -> str:
    """Leaf lines for a direction without a training split (a user's mentions; an added ontology's
    mention direction with forms in val only): no few-shot split, a sampler that refuses
    ``--num_fewshot`` (``fewshot.NoFewshotSampler``) instead of the template's ``fewshot_split:
    train``; '' for every other direction."""
    if SPLITS[0] in direction.splits:
        return ""
    target = "  doc_to_target: !function utils.study_fewshot_target\n" if study else ""
    return ("# no training split: zero-shot only (examples from the rows scored would show their answers)\n"
            "fewshot_split: null\n"
            "fewshot_config:\n"
            "  sampler: !function utils.NoFewshotSampler\n" + target)


def render_leaf(term: Terminology, direction: Direction, split: str, rag: bool = False) -> str:
    """A plain leaf; with ``rag``, the leaf of the RAG family (the same generation limits)."""
    until = ", ".join(_q(u) for u in UNTIL)
    return _HEADER + (
        f"include: {RAG_TEMPLATE_FILE if rag else TEMPLATE_FILE}\n"
        f"task: {(rag_task_name if rag else task_name)(term.key, direction.name, split)}\n"
        f"dataset_kwargs:\n"
        f"  terminology: {term.key}\n"
        f"  direction: {direction.name}\n"
        f"test_split: {split}\n"
        f"generation_kwargs:\n"
        f"  until: [{until}]\n"
        f"  max_gen_toks: {MAX_GEN_TOKS[answer_format(direction)]}\n"
        f"  do_sample: false\n"
    ) + _no_fewshot(direction, study=False)


def render_study_leaf(term: Terminology, direction: Direction, split: str) -> str:
    description = system_prompt(term)
    # The harness renders the description as a Jinja template: a label with template syntax in it
    # would be evaluated, not shown.
    if any(t in description for t in ("{{", "{%", "{#")):
        raise TermnormError(f"terminology {term.key!r}: label {term.label!r} contains Jinja template syntax")
    return _HEADER + (
        f"include: {STUDY_TEMPLATE_FILE}\n"
        f"task: {study_task_name(term.key, direction.name, split)}\n"
        f"dataset_kwargs:\n"
        f"  terminology: {term.key}\n"
        f"  direction: {direction.name}\n"
        f"test_split: {split}\n"
        # Without a chat template the harness joins the description and the prompt as they are:
        # the blank line keeps the system prompt a paragraph of its own (the harness convention; Llama
        # 3 chat templates trim it from the system message).
        f"description: {_q(description + chr(10) * 2)}\n"
    ) + _no_fewshot(direction, study=True)


def render_group(name: str, members: list[str], metrics: tuple[str, ...] = METRICS) -> str:
    lines = [_HEADER, f"group: {name}\n", "task:\n", *(f"  - {m}\n" for m in members),
             "aggregate_metric_list:\n"]
    for metric in metrics:
        lines += [f"  - metric: {metric}\n", "    aggregation: mean\n", "    weight_by_size: false\n"]
    lines += ["metadata:\n", f"  version: {GROUP_VERSION}\n"]
    return "".join(lines)


def render_utils(data_dir: str | None) -> str:
    if data_dir is None:
        imports = ""
        line = "DATA_DIR = None  # the splits shipped inside the termnorm_eval package"
    else:
        imports = "\nfrom pathlib import Path\n"
        line = (f"# The splits, relative to this file, so the folder can move or be installed.\n"
                f"DATA_DIR = Path(__file__).resolve().parent / {_q(data_dir)}")
    return UTILS_TEMPLATE.format(mark=GENERATED_MARK, imports=imports, data_dir_line=line)


def _relative_data_dir(data_dir: str | Path | None, out_dir: Path) -> str | None:
    if data_dir is None:
        return None
    p = Path(data_dir)
    if p.is_absolute():
        p = Path(os.path.relpath(p, out_dir.resolve()))
    return p.as_posix()


def render_task_family(terminologies: Iterable[Terminology], *, data_dir: str | Path | None = None,
                       umbrella: str | None = TASK_PREFIX, out_dir: str | Path = ".") -> dict[str, str]:
    """File name -> content of the families (what ``write_task_family`` writes): plain, study and, for
    the terminologies with retrievable directions (``rag_directions``), RAG."""
    terms = list(terminologies)
    if not terms:
        raise ValueError("no terminologies to write tasks for")
    keys = [t.key for t in terms]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate terminology keys: {keys}")
    if umbrella not in (None, TASK_PREFIX):
        raise ValueError(f"umbrella must be {TASK_PREFIX!r} or None")
    clash = [k for k in keys if k in UMBRELLA_PARTS]
    if clash:
        raise ValueError(f"terminology key {clash[0]!r} would name the umbrella group {group_name(clash[0])}")
    files: dict[str, str] = {
        TEMPLATE_FILE: TEMPLATE,
        STUDY_TEMPLATE_FILE: STUDY_TEMPLATE,
        "utils.py": render_utils(_relative_data_dir(data_dir, Path(out_dir))),
    }
    for term in terms:
        for d in term.all_directions:
            for split in d.splits:
                files[f"{task_name(term.key, d.name, split)}.yaml"] = render_leaf(term, d, split)
                files[f"{study_task_name(term.key, d.name, split)}.yaml"] = render_study_leaf(term, d, split)
        for d in rag_directions(term):
            for split in d.splits:
                name = rag_task_name(term.key, d.name, split)
                files[f"{name}.yaml"] = render_leaf(term, d, split, rag=True)
    for leaf, group, metrics in ((task_name, group_name, METRICS),
                                 (study_task_name, study_group_name, STUDY_METRICS)):
        for name, members in family_groups(terms, leaf, group, umbrella=bool(umbrella)).items():
            files[f"_group_{name}.yaml"] = render_group(name, members, metrics)
    rag_groups_ = rag_groups(terms, umbrella=bool(umbrella))
    if rag_groups_:
        files[RAG_TEMPLATE_FILE] = RAG_TEMPLATE
    for name, members in rag_groups_.items():
        files[f"_group_{name}.yaml"] = render_group(name, members, RAG_METRICS)
    return files


def rag_groups(terms: list[Terminology], umbrella: bool) -> dict[str, list[str]]:
    """Group name -> members of the RAG family: ``termnorm-rag-<key>`` (a terminology's RAG tasks) and,
    with ``umbrella``, ``termnorm-rag`` (those groups)."""
    out = {rag_group_name(t.key): leaves(t, rag_task_name, rag_directions(t))
           for t in terms if rag_directions(t)}
    if umbrella and out:
        out[rag_group_name()] = list(out)
    return out


def leaves(term: Terminology, leaf: Callable[[str, str, str], str],
           directions: Iterable[Direction] | None = None) -> list[str]:
    """The task names of ``term`` in one family (``leaf``: its task namer), direction by direction and
    split by split; ``directions`` defaults to every one of the terminology."""
    return [leaf(term.key, d.name, s) for d in (term.all_directions if directions is None else directions)
            for s in d.splits]


def family_groups(terms: list[Terminology], leaf: Callable[[str, str, str], str],
                  group: Callable[..., str], umbrella: bool) -> dict[str, list[str]]:
    """Group name -> members, of one family (``leaf``/``group``: its task and group namers)."""
    out: dict[str, list[str]] = {}
    labels: list[str] = []
    by_split: dict[str, list[str]] = {s: [] for s in SPLITS}
    for term in terms:
        out[group(term.key)] = []
        for d in term.all_directions:
            for split in d.splits:
                name = leaf(term.key, d.name, split)
                out[group(term.key)].append(name)
                if split in by_split:  # the test split of a user's mentions joins no split group
                    by_split[split].append(name)
                if d.mention is None:
                    labels.append(name)
        mentions = leaves(term, leaf, term.mention_directions)
        if mentions:
            out[group(MENTIONS, term.key)] = mentions
    if umbrella:
        out[group()] = [group(t.key) for t in terms]
        for split in SPLITS:
            out[group(split)] = by_split[split]
        out[group(LABELS)] = labels
        with_mentions = [group(MENTIONS, t.key) for t in terms if group(MENTIONS, t.key) in out]
        if with_mentions:
            out[group(MENTIONS)] = with_mentions
    return out


def _is_generated(path: Path) -> bool:
    try:
        return GENERATED_MARK in path.read_text(encoding="utf-8")[:300]
    except (OSError, UnicodeDecodeError):
        return False


def write_task_family(terminologies: Iterable[Terminology], out_dir: str | Path, *,
                      data_dir: str | Path | None = None, umbrella: str | None = TASK_PREFIX) -> list[Path]:
    """Write the families into ``out_dir`` (created if needed); return the written paths.

    Leaves and mention groups of these terminologies that an earlier run generated but this one
    does not (a direction that disappeared) are removed, so stale tasks never linger in the index;
    any other file is left alone. One family per folder: ``utils.py`` binds one data folder. Each
    file is written atomically (``termnorm_eval.atomic``).
    """
    out = Path(out_dir)
    terms = list(terminologies)
    files = render_task_family(terms, data_dir=data_dir, umbrella=umbrella, out_dir=out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        written.append(atomic.write_file(out / name, text))
    keys = "|".join(re.escape(k) for k in {t.key for t in terms})
    prefixes = f"{re.escape(TASK_PREFIX)}|{re.escape(STUDY_PREFIX)}|{re.escape(RAG_PREFIX)}"
    pattern = re.compile(rf"^(?:{prefixes})_({keys})_[^_]+_[a-z]+\.yaml$"
                         rf"|^_group_(?:{prefixes})-{MENTIONS}-({keys})\.yaml$"
                         rf"|^_group_{re.escape(RAG_PREFIX)}-({keys})\.yaml$")
    for stale in out.iterdir():
        if stale.name not in files and pattern.match(stale.name) and _is_generated(stale):
            stale.unlink()
    return written
