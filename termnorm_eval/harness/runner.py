"""Finding the task YAMLs and building the ``lm_eval`` command that ``termnorm eval`` runs.

Torch threads are never set here: the user's ``OMP_NUM_THREADS`` or torch's default decides.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness.taskgen import TEMPLATE_FILE

DIST = "termnorm-eval"
DEFAULT_TASKS = "termnorm"  # the umbrella group: every task, with group rows in the table


def installed_task_folder() -> Path | None:
    """``lm_eval/tasks/termnorm`` when a (non-editable) wheel placed the YAMLs there."""
    # Located, not imported: importing lm_eval.tasks costs 1-2 s (datasets, pandas, scipy), wasted
    # when the CLI runs in a subprocess.
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))).resolve() / "tasks" / "termnorm"
    return folder if (folder / TEMPLATE_FILE).is_file() else None


def source_task_folder() -> Path | None:
    """``tasks/`` of a source checkout (editable install or running from the repository)."""
    import termnorm_eval

    folder = Path(termnorm_eval.__file__).resolve().parent.parent / "tasks"
    return folder if (folder / TEMPLATE_FILE).is_file() else None


def is_editable_install(dist: str = DIST) -> bool:
    """True for ``pip install -e``: PEP 610 ``direct_url.json`` says ``dir_info.editable``."""
    try:
        text = metadata.distribution(dist).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return False
    if not text:
        return False
    try:
        return bool(json.loads(text).get("dir_info", {}).get("editable", False))
    except json.JSONDecodeError:
        return False


def include_path_needed() -> Path | None:
    """The folder to pass as ``--include_path``, or None when the harness finds the tasks itself.

    An editable install always points at the checkout's ``tasks/``: recent hatchling copies the
    YAMLs into lm_eval at install time even then, and that copy goes stale as ``tasks/`` changes
    (an ``--include_path`` entry overrides a built-in one of the same name).
    """
    if installed_task_folder() is not None and not is_editable_install():
        return None
    folder = source_task_folder()
    if folder is None:
        raise TermnormError(
            "cannot find the termnorm task YAMLs: neither lm_eval/tasks/termnorm (installed wheel) "
            "nor a tasks/ folder beside termnorm_eval (source checkout); pass --include-path"
        )
    return folder


def default_device() -> str:
    try:
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def model_arg_problem(value: str) -> str | None:
    """Why lm-eval would not receive ``value`` intact as one ``key=value`` of ``--model_args``.

    lm-eval splits ``--model_args`` on commas (0.4.13: outside quotes and brackets) and shell
    quoting cannot prevent it, so a path with a comma silently becomes another argument and the
    printed command loads something else; a quote or an unclosed bracket swallows the commas that
    follow, and a brace makes it parse the whole string as JSON.
    """
    if not value.strip():
        return "is empty"
    if "," in value:
        return "contains a comma"
    for ch in "'\"{}":
        if ch in value:
            return f"contains the character {ch}"
    depth = 0
    for ch in value:  # lm-eval's single bracket counter, clamped at 0
        depth = depth + 1 if ch in "[(" else max(depth - 1, 0) if ch in "])" else depth
    if depth:
        return "contains an unclosed bracket"
    return None


def model_args(items: Iterable[tuple[str, object, str]]) -> str:
    """lm-eval's ``--model_args`` string ``k=v,k=v`` from ``(key, value, source)`` triples.

    Every place that builds ``--model_args`` goes through here. A value lm-eval cannot carry is a
    one-line error naming ``source`` (the option or setting it came from).
    """
    parts = []
    for key, value, source in items:
        text = str(value)
        problem = model_arg_problem(text)
        if problem:
            shown = text if len(text) <= 80 else text[:77] + "..."
            raise TermnormError(f"{source} {shown}: {problem}, which lm-eval's --model_args cannot carry "
                                "(it splits the list on commas); use a path or name without it")
        parts.append(f"{key}={text}")
    return ",".join(parts)


def check_model_type(model: str) -> None:
    """``model`` is one of lm-eval's model types (its registry; nothing heavy is imported)."""
    import difflib

    import lm_eval.models  # noqa: F401  (registers the names, lazily)
    from lm_eval.api.registry import model_registry

    if model not in model_registry:
        close = difflib.get_close_matches(model, list(model_registry), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "e.g. hf, vllm, local-chat-completions"
        raise TermnormError(f"--model {model}: not a model type of lm-eval ({hint})")


def check_tasks(tasks: str, option: str = "--tasks") -> None:
    """A comma-separated list without an empty name: lm-eval's CLI takes an empty one for the current
    folder and reads its YAML files as task configs."""
    if any(not name.strip() for name in tasks.split(",")):
        raise TermnormError(f"{option} {tasks!r}: an empty task name; give task or group names separated "
                            "by commas")


BATCH_SIZE_RE = re.compile(r"auto(:[1-9][0-9]*)?|[1-9][0-9]*")


def check_batch_size(value: str, option: str = "--batch-size") -> str:
    """What lm-eval's models take as a batch size: N, ``auto``, or ``auto:N`` (re-estimated N times)."""
    if not BATCH_SIZE_RE.fullmatch(value):
        raise TermnormError(f"{option} {value}: a whole number from 1, auto, or auto:N expected")
    return value


MAX_LIMIT = 2**31 - 1


def check_limit(limit: float | None, option: str = "--limit") -> float | None:
    """lm-eval's ``--limit``: a value below 1 is a fraction of each task's documents, any other is
    ``int(value)`` documents. Refuse what would silently mean something else (1.5 -> 1, -1 -> all,
    NaN) or nothing at all (0)."""
    if limit is None:
        return None
    limit = float(limit)
    ok = math.isfinite(limit) and (0 < limit < 1 or (limit.is_integer() and 1 <= limit <= MAX_LIMIT))
    if not ok:
        got = f"{limit:g}" if math.isfinite(limit) else str(limit)
        raise TermnormError(f"{option} must be a whole number of documents from 1 to {MAX_LIMIT} or a "
                            f"fraction between 0 and 1 (got {got})")
    return limit


def check_output_path(path: Path, option: str = "--output-path") -> None:
    """Refuse, before anything runs, an output path lm-eval could not write its results under: it
    would only log a warning at the end and exit 0. lm-eval writes into the folder ``path``, or
    for a path ending in ``.json`` beside it (``NAME_<date>.json``), creating the folders it needs."""
    folder = path.parent if path.suffix == ".json" else path
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                if p == path:
                    raise TermnormError(f"{option} {path}: exists and is not a folder")
                raise TermnormError(f"{option} {path}: {p} is not a folder (lm-eval writes its results "
                                    f"into {folder})")
            if not os.access(p, os.W_OK | os.X_OK):
                raise TermnormError(f"{option} {path}: cannot write in {p}")
            return


@dataclass
class EvalCommand:
    model: str = "hf"
    model_args: str = ""
    tasks: str = DEFAULT_TASKS
    limit: float | None = None
    batch_size: str = "16"
    device: str | None = None
    num_fewshot: int | None = None
    apply_chat_template: bool = False
    output_path: Path | None = None
    log_samples: bool = False
    include_path: Path | None = None
    extra: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        cmd = [sys.executable, "-m", "lm_eval", "run", "--model", self.model, "--tasks", self.tasks,
               "--batch_size", self.batch_size]
        if self.model_args:
            cmd += ["--model_args", self.model_args]
        if self.device:
            cmd += ["--device", self.device]
        if self.limit is not None:
            cmd += ["--limit", f"{int(self.limit)}" if float(self.limit).is_integer() else str(self.limit)]
        if self.num_fewshot is not None:
            cmd += ["--num_fewshot", str(self.num_fewshot)]
        if self.apply_chat_template:
            cmd += ["--apply_chat_template"]
        if self.output_path is not None:
            cmd += ["--output_path", str(self.output_path)]
        if self.log_samples:
            cmd += ["--log_samples"]
        if self.include_path is not None:
            cmd += ["--include_path", str(self.include_path)]
        return cmd + list(self.extra)


def offline_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a run that needs nothing from a hub (the prepared default model)."""
    env = dict(os.environ if base is None else base)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.setdefault(var, "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env
