"""Reading what ``lm_eval --output_path ... [--log_samples]`` wrote, for the termnorm_* tasks.

The harness writes ``<output_path>/<model name>/results_<timestamp>.json`` and, with
``--log_samples``, ``samples_<task>_<timestamp>.jsonl`` beside it (same timestamp). Metric keys
are ``"<metric>,<filter>"``; task names are ``termnorm_<terminology>_<direction>_<split>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError

TASK_RE = re.compile(r"^termnorm_(?P<key>[a-z][a-z0-9]*)_(?P<direction>[a-z0-9]+)_(?P<split>train|val)$")
RESULTS_RE = re.compile(r"^results_(?P<stamp>.+)\.json$")
STRICT, LENIENT = "exact_match", "lenient_match"


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


@dataclass
class Run:
    label: str
    path: Path
    stamp: str
    model_args: dict[str, str]
    filter: str
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    picked_from: int = 1  # how many results files the folder held (newest taken)

    @property
    def model(self) -> str:
        return self.model_args.get("pretrained", "?")

    @property
    def adapter(self) -> str | None:
        return self.model_args.get("peft")


def find_results_file(path: str | Path, option: str) -> tuple[Path, int]:
    """``path`` itself, or the newest ``results_*.json`` in the folder and its model subfolders.

    Returns the file and how many candidates there were (to tell the user when there was a choice).
    """
    p = Path(path)
    if p.is_file():
        if not RESULTS_RE.match(p.name):
            raise ReportInputError(f"{option} {p}: not an lm_eval results file (results_<timestamp>.json)")
        return p, 1
    if not p.is_dir():
        raise ReportInputError(f"{option} {p}: no such file or folder")
    found = sorted(
        [*p.glob("results_*.json"), *p.glob("*/results_*.json")],
        key=lambda f: (RESULTS_RE.match(f.name).group("stamp"), str(f)),  # type: ignore[union-attr]
    )
    if not found:
        raise ReportInputError(
            f"{option} {p}: no results_*.json here or in its model subfolders "
            "(run lm_eval with --output_path)"
        )
    parents = sorted({f.parent for f in found})
    if len(parents) > 1:  # e.g. base and adapter runs under one --output_path: never guess which
        names = ", ".join(str(d.relative_to(p)) or "." for d in parents)
        raise ReportInputError(f"{option} {p}: holds results of {len(parents)} models ({names}); "
                               "give the model's subfolder or a results file")
    return found[-1], len(found)


def _model_args(config: dict[str, Any]) -> dict[str, str]:
    """``config.model_args``: a dict in 0.4.13, a ``k=v,k=v`` string in older releases."""
    raw = config.get("model_args") or {}
    if isinstance(raw, str):
        pairs = (part.split("=", 1) for part in raw.split(",") if "=" in part)
        return {k.strip(): v.strip() for k, v in pairs}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


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


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if f != f else f  # NaN is not a score


def load_samples(path: Path, filt: str) -> dict[str, Sample]:
    """Scored documents of one task, by item id (``doc.item_id``; ``doc_id`` when absent)."""
    out: dict[str, Sample] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ReportInputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
            if rec.get("filter", filt) != filt:
                continue
            doc = rec.get("doc") or {}
            strict = _float(rec.get(STRICT))
            if strict is None:
                raise ReportInputError(f"{path}:{lineno}: no {STRICT} value for this document")
            item = str(doc.get("item_id", rec.get("doc_id")))
            if item in out:
                raise ReportInputError(f"{path}:{lineno}: document {item!r} appears twice")
            pop, bin_ = doc.get("popularity"), doc.get("bin")
            out[item] = Sample(
                item_id=item,
                answer=str(doc.get("answer", rec.get("target", ""))),
                strict=strict,
                lenient=_float(rec.get(LENIENT)),
                popularity=int(pop) if isinstance(pop, (int, float)) else None,
                bin=int(bin_) if isinstance(bin_, (int, float)) else None,
            )
    return out


def load_run(path: str | Path, label: str, option: str, filt: str | None = None) -> Run:
    """One results file with its samples, restricted to the termnorm_* leaf tasks."""
    file, candidates = find_results_file(path, option)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ReportInputError(f"{file}:{e.lineno}: not valid JSON ({e.msg})") from e
    except OSError as e:
        raise ReportInputError(f"{file}: cannot read ({e.strerror})") from e
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise ReportInputError(f"{file}: no 'results' object (not an lm_eval results file)")
    ours = {t: r for t, r in results.items() if TASK_RE.match(t) and isinstance(r, dict)}
    if not ours:
        raise ReportInputError(f"{file}: holds no termnorm_<terminology>_<direction>_<split> task results")
    chosen = _choose_filter(file, ours, filt)
    stamp = RESULTS_RE.match(file.name).group("stamp")  # type: ignore[union-attr]
    run = Run(label=label, path=file, stamp=stamp, model_args=_model_args(data.get("config") or {}),
              filter=chosen, picked_from=candidates)
    n_samples = data.get("n-samples") or {}
    versions = data.get("versions") or {}
    for task, res in sorted(ours.items()):
        m = TASK_RE.match(task)
        assert m is not None
        metrics = {}
        for k, v in res.items():
            mk = _split_key(k)
            if mk and mk[1] == chosen and (f := _float(v)) is not None:
                metrics[mk[0]] = f
        counts = n_samples.get(task) or {}
        sample_file = file.with_name(f"samples_{task}_{stamp}.jsonl")
        run.tasks[task] = TaskResult(
            task=task, key=m["key"], direction=m["direction"], split=m["split"], metrics=metrics,
            version=versions.get(task),
            n=counts.get("effective", res.get("sample_len")), n_total=counts.get("original"),
            samples=load_samples(sample_file, chosen) if sample_file.is_file() else None,
        )
    return run
