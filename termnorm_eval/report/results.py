"""Reading what ``lm_eval --output_path ... [--log_samples]`` wrote, for the termnorm tasks.

The harness writes ``<output_path>/<model name>/results_<timestamp>.json`` and, with
``--log_samples``, ``samples_<task>_<timestamp>.jsonl`` beside it (same timestamp). Metric keys
are ``"<metric>,<filter>"``; task names are ``<family>_<terminology>_<direction>_<split>`` with the
family ``termnorm`` (plain prompts) or ``termnorm-study`` (the study protocol's JSON answers).

One run may span several results files (``termnorm-finetune`` scores the training and held-out
splits into ``<adapter>/eval/train`` and ``<adapter>/eval/val``): files belong to one run when
they hold the same model and adapter (``pretrained=``, ``peft=``) and the same task versions;
the folder layout plays no part.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness.dataset import FORM_NEAR_LABEL
from termnorm_eval.harness.rag import GOLD_IN_CANDIDATES as IN_CANDIDATES
from termnorm_eval.harness.rag import HIGHER_IS_BETTER as RAG_HIGHER_IS_BETTER
from termnorm_eval.harness.rag import RETRIEVER as RAG_RETRIEVER
from termnorm_eval.harness.scoring import ANSWER_IN_PROMPT, answer_shown
from termnorm_eval.harness.taskgen import RAG_PREFIX, STUDY_PREFIX, TASK_PREFIX
from termnorm_eval.harness.validity_names import CATEGORIES, CREDIT, METRICS, PARSE_ERROR, PREFIX
from termnorm_eval.text import clean_text

PLAIN, STUDY, RAG = TASK_PREFIX, STUDY_PREFIX, RAG_PREFIX
TASK_RE = re.compile(r"^(?P<family>termnorm(?:-study|-rag)?)_(?P<key>[a-z][a-z0-9]*)_(?P<direction>[a-z0-9]+)"
                     r"_(?P<split>train|val|test)$")  # test: a user's mentions (add-mentions)
RESULTS_RE = re.compile(r"^results_(?P<stamp>.+)\.json$")
STRICT, LENIENT, ALIGNMENT = "exact_match", "lenient_match", "alignment"
# deep enough for <adapter>/eval/<split>/<model>/results_*.json given the adapter folder
MAX_DEPTH = 4


class ReportInputError(TermnormError):
    """A results file or folder that cannot be reported on."""


@dataclass(frozen=True)
class Sample:
    """One scored document of a logged run."""

    item_id: str
    answer: str
    strict: float
    lenient: float | None
    popularity: int | None
    bin: int | None
    credit: float | None = None  # hierarchy_credit (None: made before it)
    shown: bool | None = None  # the prompt showed the gold answer (None: not known)
    # a mention document's form is near its label (mostly its words, a respelling or small edit of it; the
    # document's form_near_label); None: not told (a label document, or one made before the flag)
    near: bool | None = None
    # a retrieval-augmented document's gold was among the candidates shown (doc.gold_in_candidates);
    # None: not a RAG document
    in_candidates: bool | None = None
    retriever: str | None = None  # a RAG document's: the identity digest of the retriever of its candidates


@dataclass
class TaskResult:
    task: str
    key: str  # terminology
    direction: str
    split: str
    metrics: dict[str, float]  # metric name -> value, for the chosen filter
    version: Any
    n: int | None  # documents scored ("effective")
    n_total: int | None  # documents in the split ("original")
    samples: dict[str, Sample] | None = None  # by item id; None when not logged
    family: str = PLAIN
    file: Path = Path()  # the results file it was read from
    also_in: list[Path] = field(default_factory=list)  # older files of the same run holding it

    @property
    def validity(self) -> dict[str, float] | None:
        """Answer-validity shares by category (display order); None in files made before them."""
        shares = {c: self.metrics[m] for c, m in zip(CATEGORIES, METRICS, strict=True) if m in self.metrics}
        return shares or None

    @property
    def parse_error(self) -> float | None:
        return self.metrics.get(PARSE_ERROR)

    @property
    def credit(self) -> float | None:
        """hierarchy_credit (None in files made before it)."""
        return self.metrics.get(CREDIT)


@dataclass
class Run:
    """One model (+ adapter) as scored by one or more results files."""

    label: str
    files: list[Path]  # oldest first
    model_args: dict[str, str]  # of the newest file
    filter: str
    tasks: dict[str, TaskResult] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """The newest results file (the only one, for a single-file run)."""
        return self.files[-1]

    @property
    def model(self) -> str:
        return self.model_args.get("pretrained", "?")

    @property
    def adapter(self) -> str | None:
        return self.model_args.get("peft")

    @property
    def where(self) -> str:
        """Short name of the run's files for footnotes."""
        return self.path.name if len(self.files) == 1 else f"{len(self.files)} results files"


def _stamp(file: Path) -> str:
    """The timestamp in a results file's name (the name was matched against RESULTS_RE before)."""
    m = RESULTS_RE.match(file.name)
    return m.group("stamp") if m else ""


def _walk(folder: Path) -> list[Path]:
    """``results_*.json`` in ``folder`` and up to MAX_DEPTH folders below; hidden folders (an
    interrupted writer's temporaries) and symbolic links to folders are not entered."""
    found: list[Path] = []
    top = len(folder.parts)
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        deeper = len(here.parts) - top < MAX_DEPTH
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if deeper else []
        found += [here / f for f in files if RESULTS_RE.match(f)]
    return found


def find_results_files(path: str | Path, option: str) -> list[Path]:
    """``path`` itself, or every ``results_*.json`` in the folder and below, oldest first."""
    p = Path(path)
    if p.is_file():
        if not RESULTS_RE.match(p.name):
            raise ReportInputError(f"{option} {p}: not an lm_eval results file (results_<timestamp>.json)")
        return [p]
    if not p.is_dir():
        raise ReportInputError(f"{option} {p}: no such file or folder")
    found = sorted(_walk(p), key=lambda f: (_stamp(f), str(f)))
    if not found:
        raise ReportInputError(
            f"{option} {p}: no results_*.json here or in the folders below "
            "(run lm_eval with --output_path)"
        )
    return found


def _model_args(config: dict[str, Any]) -> dict[str, str]:
    """``config.model_args``: a dict in 0.4.13, a ``k=v,k=v`` string in older releases."""
    raw = config.get("model_args") or {}
    if isinstance(raw, str):
        pairs = (part.split("=", 1) for part in raw.split(",") if "=" in part)
        return {clean_text(k.strip()): clean_text(v.strip()) for k, v in pairs}
    return {clean_text(str(k)): clean_text(str(v)) for k, v in raw.items()} if isinstance(raw, dict) else {}


def _split_key(key: str) -> tuple[str, str] | None:
    """``"exact_match,extract"`` -> ("exact_match", "extract"); stderr keys and others -> None."""
    if "," not in key:
        return None
    metric, filt = key.split(",", 1)
    return None if metric.endswith("_stderr") else (metric, filt)


def _choose_filter(path: Path, results: dict[str, dict[str, Any]], wanted: str | None) -> str:
    filters = sorted({
        mk[1] for res in results.values() for k in res if (mk := _split_key(k)) and mk[0] == STRICT
    })
    if not filters:
        raise ReportInputError(f"{path}: no {STRICT} score in any termnorm task (other task versions?)")
    if wanted is not None:
        if wanted not in filters:
            raise ReportInputError(
                f"{path}: no {STRICT} scores under filter {wanted!r} "
                f"(--filter; present: {', '.join(filters) or 'none'})"
            )
        return wanted
    if len(filters) != 1:
        raise ReportInputError(
            f"{path}: {STRICT} is reported under {len(filters)} filters ({', '.join(filters)}); "
            "choose one with --filter"
        )
    return filters[0]


def _short(value: Any) -> str:
    text = clean_text(repr(value))
    return text if len(text) <= 40 else text[:37] + "..."


RAG_METRICS = tuple(RAG_HIGHER_IS_BETTER)  # the RAG tasks' candidate shares
# retrieval ranking metrics, lookups and the RAG tasks' candidate shares: fractions too
FRACTION_METRICS = ("acc@", "recall@", "mrr", "lookup_", "dictionary", *RAG_METRICS)


def metric_range(metric: str) -> tuple[float, float] | None:
    """The values a termnorm metric can take: accuracies are fractions, alignment a cosine; None
    for metrics this report does not know (they are kept only when they are plain numbers)."""
    if (metric in (STRICT, LENIENT, PARSE_ERROR, CREDIT, ANSWER_IN_PROMPT)
            or metric.startswith((STRICT + "_", PREFIX))):
        return (0.0, 1.0)  # accuracies and shares
    if metric == ALIGNMENT:
        return (-1.0, 1.0)
    if metric.startswith(FRACTION_METRICS):  # retrieval (``retrieval.evaluate``) and RAG shares
        return (0.0, 1.0)
    return None


# float32 unit vectors: a text's cosine with itself comes out as 1.0000001, so means can too
_COSINE_SLACK = 1e-5


def _number(value: Any, lo: float, hi: float) -> float | None:
    """``value`` as a float when it is a real number in [lo, hi]; None otherwise (bool, string,
    NaN, infinite, out of range: never printed as a percentage)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) and lo <= f <= hi else None


def _score(value: Any, where: str, what: str) -> float | None:
    """A per-document score (absent: None); anything but a number in [0, 1] is an error."""
    if value is None:
        return None
    f = _number(value, 0.0, 1.0)
    if f is None:
        raise ReportInputError(f"{where}: {what} = {_short(value)} is not a number in [0, 1]")
    return f


def _count(value: Any, where: str, what: str) -> int | None:
    """A document count or popularity (absent: None); a bool, fraction or negative is an error."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:  # exact as a float
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReportInputError(f"{where}: {what} = {_short(value)} is not a whole number >= 0")
    return value


def _json_line(raw: bytes, path: Path, lineno: int) -> Any:
    """One JSON value from a line of a samples file; binary or hostile content is one clear error."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ReportInputError(f"{path}:{lineno}: not UTF-8 text (byte {e.start + 1} of the line): "
                               "not an lm_eval samples file") from None
    except json.JSONDecodeError as e:
        raise ReportInputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise ReportInputError(f"{path}:{lineno}: JSON nested too deeply: "
                               "not an lm_eval samples file") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise ReportInputError(f"{path}:{lineno}: not valid JSON ({_one_line(e)})") from None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 120 else text[:117] + "..."


def _shown(rec: dict[str, Any], doc: dict[str, Any], where: str, family: str) -> bool | None:
    """Whether the prompt the model saw showed the gold answer: the document's ``answer_in_prompt``
    score (the study family judges its own prompt), else its field; a plain task's document of a
    version before them is judged from its question as the task judges it (``answer_shown``)."""
    score = _score(rec.get(ANSWER_IN_PROMPT), where, ANSWER_IN_PROMPT)
    if score is not None:
        if score not in (0.0, 1.0):
            raise ReportInputError(f"{where}: {ANSWER_IN_PROMPT} = {_short(score)} is neither 0 nor 1")
        return score == 1.0
    if isinstance(doc.get(ANSWER_IN_PROMPT), bool):
        return bool(doc[ANSWER_IN_PROMPT])
    text, answer, fmt = doc.get("question"), doc.get("answer"), doc.get("answer_format")
    if family != PLAIN or not all(isinstance(x, str) for x in (text, answer, fmt)):
        return None  # the study family's prompt is not the question: not known
    return answer_shown(str(text), str(answer), str(fmt))


def load_samples(path: Path, filt: str, family: str = PLAIN) -> dict[str, Sample]:
    """Scored documents of one task, by item id (``doc.item_id``; ``doc_id`` when absent);
    ``family``: the task's (what tells whether its prompt showed the answer, ``_shown``)."""
    out: dict[str, Sample] = {}
    try:
        fh = path.open("rb")  # bytes: a line that is not UTF-8 is reported with its number
    except OSError as e:
        raise ReportInputError(f"{path}: cannot read ({e.strerror})") from e
    with fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            rec = _json_line(raw, path, lineno)
            if not isinstance(rec, dict):
                raise ReportInputError(f"{where}: a JSON {type(rec).__name__}, not a sample object")
            if rec.get("filter", filt) != filt:
                continue
            doc = rec.get("doc") or {}
            if not isinstance(doc, dict):
                raise ReportInputError(f"{where}: 'doc' is a JSON {type(doc).__name__}, not an object")
            strict = _score(rec.get(STRICT), where, STRICT)
            if strict is None:
                raise ReportInputError(f"{where}: no {STRICT} value for this document")
            item = clean_text(str(doc.get("item_id", rec.get("doc_id"))))
            if item in out:
                raise ReportInputError(f"{where}: document {item!r} appears twice")
            out[item] = Sample(
                item_id=item,
                answer=clean_text(str(doc.get("answer", rec.get("target", "")))),
                strict=strict,
                lenient=_score(rec.get(LENIENT), where, LENIENT),
                popularity=_count(doc.get("popularity"), where, "doc.popularity"),
                bin=_count(doc.get("bin"), where, "doc.bin"),
                credit=_score(rec.get(CREDIT), where, CREDIT),
                shown=_shown(rec, doc, where, family),
                near=doc[FORM_NEAR_LABEL] if isinstance(doc.get(FORM_NEAR_LABEL), bool) else None,
                in_candidates=doc[IN_CANDIDATES] if isinstance(doc.get(IN_CANDIDATES), bool) else None,
                retriever=clean_text(doc[RAG_RETRIEVER]) if isinstance(doc.get(RAG_RETRIEVER), str) else None,
            )
    return out


def _section(data: dict[str, Any], key: str, file: Path) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ReportInputError(f"{file}: {key!r} is a JSON {type(value).__name__}, not an object")
    return value


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_bytes().decode("utf-8"))
    except OSError as e:
        raise ReportInputError(f"{file}: cannot read ({e.strerror})") from e
    except UnicodeDecodeError as e:
        raise ReportInputError(f"{file}: not UTF-8 text (byte {e.start + 1}): "
                               "not an lm_eval results file") from None
    except json.JSONDecodeError as e:
        raise ReportInputError(f"{file}:{e.lineno}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise ReportInputError(f"{file}: JSON nested too deeply: not an lm_eval results file") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise ReportInputError(f"{file}: not valid JSON ({_one_line(e)})") from None


@dataclass
class ResultsFile:
    """One results file's termnorm tasks (with their samples)."""

    path: Path
    stamp: str
    model_args: dict[str, str]
    filter: str
    tasks: dict[str, TaskResult]

    @property
    def identity(self) -> tuple[str, str]:
        """What tells runs apart besides task versions: the model and the adapter."""
        args = self.model_args
        if RETRIEVER_ARG in args:  # ``termnorm retrieve eval``: no model, a retriever (two embedders
            # of one folder name are two retrievers: the identity digest tells them apart)
            return (f"{retriever_label(args)} [{args.get(RETRIEVER_IDENTITY, '?')}]", "")
        return (args.get("pretrained", "?").rstrip("/"), (args.get("peft") or "").rstrip("/"))

    @property
    def is_retriever(self) -> bool:
        return RETRIEVER_ARG in self.model_args

    @property
    def versions(self) -> dict[str, set[str]]:
        """Task versions per family (``termnorm`` and ``termnorm-study`` are versioned apart)."""
        out: dict[str, set[str]] = {}
        for tr in self.tasks.values():
            out.setdefault(tr.family, set()).add(str(tr.version))
        return out


RETRIEVER_ARG = "retriever"  # model_args key of a retrieve eval results file
RETRIEVER_IDENTITY = "identity"  # its retriever's identity digest (what RAG documents name)


def retriever_label(args: dict[str, str]) -> str:
    """How a retriever run is named: "retriever: bm25", "retriever: dense (all-MiniLM-L6-v2)"."""
    embedder = args.get("embedder", "")
    return f"retriever: {args[RETRIEVER_ARG]}" + (f" ({embedder})" if embedder else "")


def describe_model(identity: tuple[str, str]) -> str:
    model, adapter = identity
    return f"{model} with adapter {adapter}" if adapter else f"{model} (no adapter)"


def read_results_file(file: Path, filt: str | None, *, required: bool = True) -> ResultsFile | None:
    """A results file's termnorm tasks; a file without any is an error when ``required`` (given by
    name), else None (found in a folder beside other benchmarks' results)."""
    data = _read_json(file)
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise ReportInputError(f"{file}: no 'results' object (not an lm_eval results file)")
    ours = {t: r for t, r in results.items() if TASK_RE.match(t) and isinstance(r, dict)}
    if not ours:
        if not required:
            return None
        raise ReportInputError(f"{file}: holds no termnorm[-study|-rag]_<terminology>_<direction>_<split> "
                               "task results")
    chosen = _choose_filter(file, ours, filt)
    stamp = _stamp(file)
    out = ResultsFile(path=file, stamp=stamp, model_args=_model_args(_section(data, "config", file)),
                      filter=clean_text(chosen), tasks={})
    n_samples = _section(data, "n-samples", file)
    versions = _section(data, "versions", file)
    for task, res in sorted(ours.items()):
        m = TASK_RE.match(task)
        assert m is not None
        metrics = {}
        for k, v in res.items():
            mk = _split_key(k)
            if not mk or mk[1] != chosen:
                continue
            bounds = metric_range(mk[0])
            slack = _COSINE_SLACK if mk[0] == ALIGNMENT else 0.0
            lo, hi = bounds or (-math.inf, math.inf)
            f = _number(v, lo - slack, hi + slack)
            if f is None and bounds is not None:  # an impossible score: never shown as a percentage
                raise ReportInputError(f"{file}: results.{task}[{k!r}] = {_short(v)} is not a number "
                                       f"in [{bounds[0]:g}, {bounds[1]:g}]")
            if f is not None:
                metrics[mk[0]] = f
        counts = n_samples.get(task) or {}
        if not isinstance(counts, dict):
            raise ReportInputError(f"{file}: n-samples.{task} is a JSON {type(counts).__name__}, "
                                   "not an object")
        n = _count(counts.get("effective", res.get("sample_len")), str(file), f"n-samples.{task}.effective")
        sample_file = file.with_name(f"samples_{task}_{stamp}.jsonl")
        samples = load_samples(sample_file, chosen, m["family"]) if sample_file.is_file() else None
        if samples is not None and n is not None and len(samples) != n:
            # e.g. lm_eval stopped writing the file at a response it could not encode
            raise ReportInputError(f"{sample_file}: {len(samples)} documents under filter {chosen!r}, "
                                   f"but the results file says {n} were scored (an incomplete samples file?)")
        out.tasks[task] = TaskResult(
            task=task, key=m["key"], direction=m["direction"], split=m["split"], metrics=metrics,
            version=versions.get(task), n=n,
            n_total=_count(counts.get("original"), str(file), f"n-samples.{task}.original"),
            samples=samples, family=m["family"], file=file,
        )
    return out


def same_run(a: ResultsFile, b: ResultsFile) -> bool:
    """Same run: same model and adapter, and no family scored under two task versions."""
    if a.identity != b.identity:
        return False
    va, vb = a.versions, b.versions
    return all(va[f] == vb[f] for f in va.keys() & vb.keys())


RETRIEVER_OPTION = "--retriever"


def _check_kind(rf: ResultsFile, option: str) -> None:
    """A retriever's results go with --retriever, a model's with --base/--tuned: never mixed up."""
    if rf.is_retriever and option != RETRIEVER_OPTION:
        raise ReportInputError(f"{option} {rf.path}: the results of a retriever (termnorm retrieve eval), "
                               f"not of a model; give them with {RETRIEVER_OPTION}")
    if option == RETRIEVER_OPTION and not rf.is_retriever:
        raise ReportInputError(f"{option} {rf.path}: the results of a model, not of a retriever "
                               "(termnorm retrieve eval); give them with --base or --tuned")


def read_files(paths: Sequence[str | Path], option: str, filt: str | None) -> list[ResultsFile]:
    """Every results file under ``paths`` (given as one run), checked to be one model, adapter and
    set of task versions; a one-line error names the two that differ."""
    files: list[ResultsFile] = []
    seen: set[Path] = set()
    for path in paths:
        named, before = Path(path).is_file(), len(files)
        for f in find_results_files(path, option):
            if f.resolve() in seen:
                raise ReportInputError(f"{option} {f}: given twice")
            seen.add(f.resolve())
            rf = read_results_file(f, filt, required=named)
            if rf is not None:
                _check_kind(rf, option)
                files.append(rf)
        if len(files) == before:
            raise ReportInputError(f"{option} {path}: no results file here holds termnorm task results")
    files.sort(key=lambda rf: (rf.stamp, str(rf.path)))
    first = files[0]
    where = option + " " + ", ".join(str(p) for p in paths)
    for rf in files[1:]:
        if rf.identity != first.identity:
            raise ReportInputError(f"{where}: one run holds results of two models: "
                                   f"{describe_model(first.identity)} ({first.path}) and "
                                   f"{describe_model(rf.identity)} ({rf.path}); give them as separate runs")
        if not same_run(first, rf):
            fam = next(f for f in first.versions.keys() & rf.versions.keys()
                       if first.versions[f] != rf.versions[f])
            raise ReportInputError(f"{where}: one run holds {fam} task version "
                                   f"{'/'.join(sorted(first.versions[fam]))} ({first.path}) and "
                                   f"{'/'.join(sorted(rf.versions[fam]))} ({rf.path}); "
                                   "give the files of one benchmark version")
        if rf.filter != first.filter:
            raise ReportInputError(f"{where}: filter {first.filter!r} in {first.path} but {rf.filter!r} in "
                                   f"{rf.path}; choose one with --filter")
    return files


def merge(files: Sequence[ResultsFile], label: str) -> Run:
    """One run from files of one model: a task in several files is taken from the newest (by
    timestamp) and remembers the others (``also_in``, for a footnote)."""
    ordered = sorted(files, key=lambda rf: (rf.stamp, str(rf.path)))
    run = Run(label=clean_text(label), files=[rf.path for rf in ordered],
              model_args=ordered[-1].model_args, filter=ordered[-1].filter)
    for rf in ordered:
        for task, tr in rf.tasks.items():
            old = run.tasks.get(task)
            if old is not None:
                tr.also_in = [*old.also_in, old.file]
            run.tasks[task] = tr
    run.tasks = dict(sorted(run.tasks.items()))
    return run


def load_run(path: str | Path | Sequence[str | Path], label: str, option: str,
             filt: str | None = None) -> Run:
    """One run from one or more results files or folders (every results file below a folder)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    return merge(read_files(paths, option, filt), label)
