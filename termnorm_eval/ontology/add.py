"""add-ontology: splits + harness tasks for any ontology (OBO, OWL in RDF/XML, OBO Graphs JSON),
written atomically into one folder.

Output folder layout (``OUT``; it is at once the data folder and the task folder)::

    OUT/manifest.json                 parameters, source provenance, terminology spec, counts, problems
    OUT/DATA_CARD.md                  the same facts for humans (rendered from the manifest)
    OUT/<name>/train.jsonl            the sampled records (same layout as the shipped splits)
    OUT/<name>/val.jsonl
    OUT/<name>/index.tsv.gz           every id, alt_id, name and synonym of the file (answer validity)
    OUT/<name>/rag_candidates.jsonl.gz  BM25's top 20 concepts per X->ID question (splits.rag)
    OUT/_default_template_yaml        the template of the built-in tasks (harness.taskgen)
    OUT/_study_template_yaml          the same for the study-protocol family
    OUT/_rag_template_yaml            the same for the retrieval-augmented family
    OUT/termnorm_<name>_<direction>_<split>.yaml
    OUT/termnorm-study_<name>_<direction>_<split>.yaml
    OUT/termnorm-rag_<name>_<direction>_<split>.yaml  (the X->ID directions)
    OUT/_group_termnorm-<name>.yaml   group termnorm-<name>
    OUT/_group_termnorm-study-<name>.yaml
    OUT/_group_termnorm-rag-<name>.yaml
    OUT/utils.py                      binds the tasks to the splits beside it (relative path)

So ``lm_eval --include_path OUT`` finds the tasks, and ``--data-dir OUT`` is what the fine-tuning
command, ``termnorm lexicalization`` and the report read. Everything is written into a temporary folder
beside ``OUT`` that replaces it in one step at the end (``termnorm_eval.atomic``), under a lock held
for the whole run: a failure leaves nothing behind, and an earlier output is replaced (``force``)
only once the new one is complete.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from termnorm_eval import atomic
from termnorm_eval.errors import TermnormError
from termnorm_eval.harness.taskgen import UMBRELLA_PARTS
from termnorm_eval.ontology.annotations import Annotations, read_annotations
from termnorm_eval.ontology.card import UNIFORM, render_card
from termnorm_eval.ontology.infer import (
    NO_PREFIX,
    PrefixChoice,
    choose_prefix,
    example_id,
    id_prefix,
    infer_id_local,
)
from termnorm_eval.ontology.source import is_url, resolve_source, url_file_name
from termnorm_eval.sources.fetch import DownloadLimits, ProgressHook
from termnorm_eval.sources.obo import OboResult
from termnorm_eval.sources.ontology_file import read_ontology
from termnorm_eval.terminologies import (
    BUILTIN,
    MENTION_DIRECTIONS,
    ONTOLOGY_KINDS,
    ontology_terminology,
    with_mention_kinds,
)

MADE_BY = "termnorm add-ontology"
# clash with built-in task or group names (taskgen.UMBRELLA_PARTS: termnorm-train, -labels, -mentions, ...)
RESERVED = {*BUILTIN, *UMBRELLA_PARTS, "termnorm", "all"}
NAME_RE = re.compile(r"[a-z][a-z0-9]*")
NAME_MAX = 32  # it becomes part of task and file names (termnorm_<name>_term2id_train.yaml, ...)

# What each counted problem means, in the order the summary lists them.
PROBLEM_TEXT: dict[str, str] = {
    "duplicate_id": "[Term] stanzas repeating an id (merged into one term)",
    "other_prefix": "terms of other prefixes (imported) left out",
    "no_prefix": "terms whose id has no PREFIX: part left out",
    "obsolete": "obsolete terms left out",
    "no_name": "terms without a name left out",
    "ambiguous_name": "terms left out: their name is also the name or exact synonym of another term",
    "ambiguous_synonyms_dropped": "exact synonyms dropped: shared with another term",
    "undeclared_synonym_types": "exact synonyms of a type no synonymtypedef declares (kept, typed as "
                                "written)",
    "synonym_type_conflicts": "exact synonyms given twice with different types (one type kept)",
    "annotation_not_rows_skipped": "NOT-qualified annotation rows skipped",
    "annotation_rows_empty_field": "annotation rows with an empty field skipped",
    "annotation_ids_other_prefix": "annotated ids of other prefixes ignored",
    "annotation_ids_not_in_ontology": "annotated ids that are no term or alt_id of the ontology, ignored",
    "popularity_ids_unknown": "ids of the --popularity table that are no usable term, ignored",
}

Progress = Callable[[str], None]


@dataclass
class AddOntologyResult:
    """What ``add_ontology`` wrote (all paths absolute)."""

    name: str
    label: str
    prefix: str
    prefix_inferred: bool
    out_dir: Path  # data folder (--data-dir) and task folder (--include_path) at once
    manifest: Path
    train_file: Path
    val_file: Path
    tasks: list[str]  # termnorm_<name>_<direction>_<split>
    group: str  # termnorm-<name>
    study_tasks: list[str]  # the study-protocol family: termnorm-study_<name>_<direction>_<split>
    study_group: str  # termnorm-study-<name>
    popularity: str  # what popularity means, or "none (uniform sample)"
    bins: int  # popularity bins actually used (1 without annotations)
    counts: dict[str, int]  # terms_in_file, terms_kept, candidates, train, val (+ annotation_rows,
    # annotated_candidates with annotations)
    problems: dict[str, int]  # see PROBLEM_TEXT; only non-zero counts
    prefix_counts: dict[str, int]  # prefix -> [Term] ids in the file
    parser: str  # tolerant (OBO) or pronto (OWL, OBO Graphs JSON)
    annotation_format: str | None = None  # gaf, hpoa, tsv, pairs; None without annotations
    unannotated_bins: int = 0  # with annotations: bins whose terms all have popularity 0
    pool: dict[str, Any] = field(default_factory=dict)  # the sampler's binning facts (ranked, unannotated)
    warnings: list[str] = field(default_factory=list)
    # kind (synonym, lay) -> concepts with a usable form per split, only kinds some split has
    # (manifest ``mention_kinds``): the mention tasks this ontology can have
    mention_kinds: dict[str, dict[str, int]] = field(default_factory=dict)
    mention_note: str = ""  # one line on them (e.g. "no exact synonyms: no synonym tasks")

    @property
    def uniform(self) -> bool:
        return self.popularity == UNIFORM

    def lm_eval_command(self, model: str = "HuggingFaceTB/SmolLM2-135M-Instruct",
                        out: str | Path | None = None) -> str:
        """The command that runs the new tasks (``out``: how to spell the folder; default absolute)."""
        folder = shlex.quote(str(out or self.out_dir))
        return (f"lm_eval --model hf --model_args pretrained={model} --include_path {folder} "
                f"--tasks 'termnorm_{self.name}_*'")

    def finetune_command(self, model: str = "HuggingFaceTB/SmolLM2-135M-Instruct",
                         out: str | Path | None = None) -> str:
        """The command that trains a LoRA adapter on the new training split."""
        folder = shlex.quote(str(out or self.out_dir))
        return f"termnorm-finetune --model {model} --terminology {self.name} --data-dir {folder}"

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def _noop(_: str) -> None:
    pass


def check_name(name: str) -> str:
    """The one rule for --name (the CLI checks it before any work too)."""
    if len(name or "") > NAME_MAX:
        raise TermnormError(f"--name {name[:20]!r}... ({len(name)} characters): at most {NAME_MAX} "
                            "(it becomes part of the task and file names termnorm_<name>_...)")
    if not NAME_RE.fullmatch(name or ""):
        raise TermnormError(f"--name {name!r}: use lower-case letters and digits, starting with a letter "
                            "(it becomes part of the task names termnorm_<name>_...)")
    if name in RESERVED:
        raise TermnormError(f"--name {name!r}: clashes with a built-in terminology or group "
                            f"({', '.join(sorted(RESERVED))}); choose another short name")
    return name


def check_target(out: Path, force: bool, protected: Iterable[Path] = ()) -> None:
    """Refuse an OUT that holds something, unless ``force`` and it is an earlier add-ontology output."""
    from termnorm_eval.splits import build

    build.check_target(out, force, protected, option="OUT", owned=build.made_by(MADE_BY),
                       what="add-ontology output")


def _read_ontology(path: Path, progress: Progress) -> OboResult:
    """OBO by the fast reader; OWL (RDF/XML) and OBO Graphs JSON by pronto (told by the content)."""
    progress(f"parsing {path.name}")
    return read_ontology(path)


def _select_terms(obo: OboResult, choice: PrefixChoice, include_imported: bool) -> Counter[str]:
    """Keep this ontology's terms (and, with include_imported, every prefixed term); count the rest."""
    dropped: Counter[str] = Counter()
    kept = []
    for t in obo.terms:
        p = id_prefix(t.id)
        if p == choice.prefix or (include_imported and p != NO_PREFIX):
            kept.append(t)
        else:
            dropped["no_prefix" if p == NO_PREFIX else "other_prefix"] += 1
    obo.terms = kept
    return dropped


def _apply_popularity(records: dict[str, dict[str, Any]], ann: Annotations, prefix: str,
                      known: set[str]) -> Counter[str]:
    for r in records.values():
        r["popularity"] = ann.popularity(r["id"], r["alt_ids"])
    problems: Counter[str] = Counter(ann.problems)
    problems["annotation_ids_not_in_ontology"] = sum(
        1 for i in ann.ids() if i.startswith(prefix + ":") and i not in known
    )
    return problems


def mention_note(kinds: dict[str, dict[str, int]], synonyms_in_file: int) -> str:
    """One line on the mention tasks an ontology gets (``kinds``: the manifest's ``mention_kinds``)."""
    if not kinds:
        if not synonyms_in_file:
            return "no exact synonyms: no synonym tasks"
        return (f"no usable exact synonym ({synonyms_in_file} in the file, each shared, the label again or "
                "obsolete): no synonym tasks")
    parts = []
    for kind in ONTOLOGY_KINDS:
        counts = kinds.get(kind)
        if counts:
            missing = [s for s, n in counts.items() if not n]
            parts.append(f"{MENTION_DIRECTIONS[kind]} "
                         + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
                         + (f" (no {' or '.join(missing)} task: no usable form there)" if missing else ""))
        elif kind == "synonym":
            parts.append("no usable non-lay exact synonym: no synonym2id tasks")
    return "; ".join(parts)


def _need_message(name: str, have: int, bins: int, per_bin: int, uniform: bool, excluded: dict[str, int]
                  ) -> str:
    need = 2 * bins * per_bin
    left_out = ", ".join(f"{k} {v}" for k, v in excluded.items() if v) or "none"
    fit = have // (2 * bins)
    hint = (f"lower --per-bin to {fit} or fewer" if fit >= 1 else
            f"lower --bins and --per-bin (bins x per-bin x 2 <= {have})")
    design = (f"{bins} x {per_bin} = {bins * per_bin} train + {bins * per_bin} val (uniform sample)"
              if uniform else f"{bins} bins x ({per_bin} train + {per_bin} val)")
    return (f"{name}: {have} usable terms, but the splits need {need} ({design}); {hint}. "
            f"Left out: {left_out}")


def add_ontology(
    source: str | Path,
    name: str,
    out: str | Path,
    *,
    prefix: str | None = None,
    label: str | None = None,
    annotations: str | Path | None = None,
    annotation_format: str = "auto",
    bins: int = 20,
    per_bin: int = 30,
    seed: int = 0,
    include_imported: bool = False,
    popularity: str | Path | None = None,
    include_unannotated: bool = False,
    force: bool = False,
    progress: Progress | None = None,
    download_hook: ProgressHook | None = None,
    download_limits: DownloadLimits | None = None,
) -> AddOntologyResult:
    """Build benchmark splits and lm-eval tasks for an ontology; the Python face of
    ``termnorm add-ontology``.

    Args:
        source: path of an ontology file (OBO, OWL in RDF/XML or OBO Graphs JSON, told by its
            content; gzip-compressed too), or an http(s) URL (downloaded to a temporary file first).
        name: short lower-case name; tasks are ``termnorm_<name>_{term2id,id2term}_{train,val}``,
            the group ``termnorm-<name>``. Built-in names (go, hpo, gene) are refused.
        out: output folder: data (``manifest.json``, ``<name>/{train,val}.jsonl``) and task YAMLs.
            It must not exist or be empty; ``force=True`` replaces an earlier add-ontology output.
        prefix: the ontology's id prefix (``CL``); inferred when one prefix holds >= 2/3 of the
            ``[Term]`` ids, otherwise required.
        label: how prompts name the ontology ("What is the {label} identifier ..."); default: prefix.
        annotations: optional annotation file for popularity (GAF, HPOA, ``id<TAB>count`` TSV, or
            ``thing<TAB>term`` pairs); without it the splits are a uniform random sample (one bin,
            all popularity 0) and the manifest says ``"popularity": "none (uniform sample)"``.
        annotation_format: auto, gaf, hpoa, tsv or pairs.
        bins, per_bin: with annotations, ``bins`` popularity bins with ``per_bin`` train and
            ``per_bin`` val terms each (the built-in design: 20 x 30); without, ``bins * per_bin`` of each.
        seed: sampling seed.
        include_imported: keep terms of other prefixes too (by default they are left out and counted).
        popularity: an ``id<TAB>count`` table (``sources.popularity``; e.g. Europe PMC hit counts)
            whose counts replace the annotation counts; the annotation count, if any, then breaks ties.
            Ids that are no usable term are counted (``popularity_ids_unknown``), not fatal.
        include_unannotated: with popularity, also draw the terms of popularity 0, as bin 0
            (labelled ``unannotated``); by default only terms with popularity >= 1 are ranked.
        force: replace an earlier add-ontology output in ``out``.
        progress: called with a short message at each stage (the CLI shows it).
        download_hook: ``(file name, bytes done, bytes total or None)`` during a URL download.
        download_limits: size, time and redirect caps of a URL download, and unpack caps of a gzip
            source (``DownloadLimits()`` when not given).

    Returns:
        ``AddOntologyResult`` with paths, counts, problems (also in the manifest) and task names.

    Raises:
        TermnormError: bad input (not an OBO file, unknown or ambiguous prefix, too few terms, ...);
            nothing is written then.
    """
    from termnorm_eval.harness.taskgen import (
        group_name,
        leaves,
        study_group_name,
        study_task_name,
        task_name,
        write_task_family,
    )
    from termnorm_eval.sources.popularity import read_popularity_table
    from termnorm_eval.splits import release_index
    from termnorm_eval.splits.balance import check_seed
    from termnorm_eval.splits.build import build_files, sample_terminology
    from termnorm_eval.splits.candidates import check_capacity, ontology_candidates

    say = progress or _noop
    check_name(name)
    check_seed(seed)
    if bins < 1 or per_bin < 1:
        raise TermnormError(f"--bins and --per-bin must be >= 1 (got {bins}, {per_bin})")
    out = Path(out).expanduser().resolve()
    # the inputs: a --force never replaces a folder that holds them
    protected = [Path(p) for p in (source, annotations, popularity) if p is not None and not is_url(p)]
    if popularity is not None:
        read_popularity_table(popularity)  # a broken table fails before any download or parse
    check_target(out, force, protected)
    with contextlib.ExitStack() as held:  # the lock and the scratch folder, for the whole run
        held.enter_context(atomic.locked_output(out, "OUT", lambda: check_target(out, force, protected)))
        scratch = held.enter_context(atomic.scratch_folder(out))
        path, provenance = resolve_source(source, scratch, download_hook, download_limits)
        check_capacity(name, path, bins, per_bin)  # an impossible design fails before the parse
        try:
            obo = _read_ontology(path, say)
        except TermnormError as e:
            if not is_url(source):
                raise
            # the message names the temporary copy; say where it came from
            raise TermnormError(f"{str(e).replace(str(path), url_file_name(str(source)))} "
                                f"(downloaded from {source})") from None
        if is_url(source):
            obo.warnings = [w.replace(str(path), str(source)) for w in obo.warnings]
        problems: Counter[str] = Counter(obo.problems)
        all_ids = [t.id for t in obo.terms]
        choice = choose_prefix(all_ids, prefix, path)
        problems.update(_select_terms(obo, choice, include_imported))
        # the whole release, obsolete terms and alt_ids included: what answer validity looks up
        index_rows = release_index.rows_from_obo(obo.terms)
        cands = ontology_candidates(obo, {})
        problems.update({k: v for k, v in cands.excluded.items() if k not in ("other_prefix",)})
        problems.update(cands.notes)
        ann = None
        if annotations is not None:
            say(f"reading annotations {Path(annotations).name}")
            ann = read_annotations(annotations, choice.prefix, annotation_format)
            known = {i for t in obo.terms for i in (t.id, *t.alt_ids)}
            problems.update(_apply_popularity(cands.records, ann, choice.prefix, known))
        table = None
        if popularity is not None:  # the table ranks; what the annotations counted breaks its ties
            table = read_popularity_table(popularity, known=set(cands.records))
            for r in cands.records.values():
                r["popularity_secondary"] = r["popularity"]
                r["popularity"] = table.counts.get(r["id"], 0)
            problems["popularity_ids_unknown"] = table.unknown
        problems = +problems
        excluded = {k: problems.get(k, 0) for k in ("other_prefix", "no_prefix", "obsolete", "no_name",
                                                    "ambiguous_name")}
        uniform = ann is None and table is None
        have = len(cands.records)
        if have == 0:
            raise TermnormError(f"{path}: no usable {choice.prefix} term (every one is obsolete, unnamed "
                                f"or ambiguous: {', '.join(f'{k} {v}' for k, v in excluded.items() if v)})")
        if have < 2 * bins * per_bin:
            raise TermnormError(_need_message(name, have, bins, per_bin, uniform, excluded))
        locals_ = [i.partition(":")[2] for i in cands.records]
        term = ontology_terminology(
            key=name, label=label or choice.prefix, id_prefix=choice.prefix,
            id_local=infer_id_local(locals_),
            id_example=example_id(choice.prefix, locals_, {i for t in obo.terms for i in (t.id, *t.alt_ids)}),
            description=f"{label or choice.prefix} terms from {path.name}"
                        + (f" ({obo.data_version})" if obo.data_version else ""),
        )
        meaning = ann.description if ann else UNIFORM
        secondary = ""
        if table is not None:
            meaning = f"the count given for the term id in {table.path.name} (id<TAB>count)"
            secondary = ann.description if ann else ""
        say("sampling splits")
        # Without annotations every popularity is 0: one bin holding all train and all val terms.
        b = sample_terminology(term, cands, bins=1 if uniform else bins,
                               per_bin=bins * per_bin if uniform else per_bin, seed=seed,
                               popularity=meaning, own_prefix_only=not include_imported,
                               secondary=secondary, include_unannotated=include_unannotated and not uniform,
                               ranked=not uniform).with_index(index_rows)
        counts = {"terms_in_file": len(all_ids), "terms_kept": len(obo.terms), "candidates": have,
                  "train": len(b.train), "val": len(b.val)}
        note = mention_note(b.stats["mention_kinds"], sum(len(t.synonyms) for t in obo.terms))
        term = with_mention_kinds(term, b.stats["mention_kinds"])  # its synonym2id / lay2id tasks
        b.spec = term  # so its candidates are ranked for the mention directions too
        if ann is not None:
            counts["annotation_rows"] = ann.rows
        if not uniform:
            counts["annotated_candidates"] = sum(1 for r in cands.records.values() if r["popularity"] > 0)
        b.stats.update({
            "excluded": {k: v for k, v in sorted(excluded.items()) if v},
            "problems": dict(sorted(problems.items())),
            "problem_meanings": {k: PROBLEM_TEXT.get(k, k) for k in sorted(problems)},
            "warnings": list(obo.warnings),
            "prefix": {"prefix": choice.prefix, "inferred": choice.inferred, "terms": choice.terms,
                       "total": choice.total, "counts": choice.counts},
            "parser": obo.parser,
            "term_counts": counts,
        })
        built = {name: b}
        src_name = url_file_name(str(source)) if is_url(source) else path.name
        sources = {src_name: {"role": "ontology", **provenance, "data_version": obo.data_version}}
        if ann is not None and annotations is not None:
            from termnorm_eval.sources.mirrors import sha256_file

            sources[Path(annotations).name] = {
                "role": "annotations", "format": ann.format, "path": str(annotations),  # as given
                "sha256": sha256_file(Path(annotations)), "data_version": ann.data_version, "rows": ann.rows,
            }
        if table is not None:
            from termnorm_eval.sources.mirrors import sha256_file

            sources[table.path.name] = {
                "role": "popularity", "path": str(popularity), "sha256": sha256_file(table.path),
                "data_version": None, "rows": len(table.counts) + table.unknown, "unknown_ids": table.unknown,
            }
        parameters = {
            "made_by": MADE_BY, "name": name, "prefix": choice.prefix, "label": label or choice.prefix,
            "bins": 1 if uniform else bins, "per_bin": bins * per_bin if uniform else per_bin,
            "requested_bins": bins, "requested_per_bin": per_bin, "seed": seed,
            "include_imported": include_imported,
            "annotation_format": ann.format if ann else None,
            "popularity_table": table.path.name if table else None,
            "include_unannotated": include_unannotated,
        }
        from termnorm_eval.retrieval.candidates import for_build
        from termnorm_eval.splits.build import manifest_for

        candidates = for_build(built, seed, say)  # the RAG tasks' (BM25), recorded in the manifest
        say("writing splits and tasks")
        card = render_card(manifest_for(built, parameters, sources))
        with atomic.staged_folder(out) as stage:
            atomic.fill_folder(stage, build_files(built, parameters, sources,
                                                  {"DATA_CARD.md": card, **candidates}))
            write_task_family([term], stage, data_dir=".", umbrella=None)
            check_target(out, force, protected)  # right before the final move
            atomic.replace_folder(stage, out)
    return AddOntologyResult(
        name=name, label=term.label, prefix=choice.prefix, prefix_inferred=choice.inferred,
        out_dir=out, manifest=out / "manifest.json",
        train_file=out / name / "train.jsonl", val_file=out / name / "val.jsonl",
        tasks=leaves(term, task_name),
        group=group_name(name),
        study_tasks=leaves(term, study_task_name),
        study_group=study_group_name(name), popularity=meaning, bins=b.stats["binning"]["bins"],
        counts=counts, problems=dict(sorted(problems.items())), prefix_counts=choice.counts,
        parser=obo.parser, annotation_format=ann.format if ann else None, warnings=list(obo.warnings),
        unannotated_bins=0 if uniform else sum(1 for x in b.stats["bins"] if x["popularity_max"] == 0),
        pool=dict(b.stats["binning"]), mention_kinds=dict(b.stats["mention_kinds"]), mention_note=note,
    )
