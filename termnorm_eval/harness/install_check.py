"""Is this installation one that a plain ``lm_eval --tasks 'termnorm_*'`` finds? (``termnorm doctor``)

The wheel places the task YAMLs inside the harness's own task folder (``lm_eval/tasks/termnorm``),
the only place lm-eval 0.4.13 looks without ``--include_path``. pip does not check that this path
is where the harness lives: with ``pip install --user`` or ``--target`` next to a harness installed
elsewhere, the YAMLs land in a folder lm_eval never reads, silently. This module compares where
the installer put them (the distribution's RECORD) with where the harness reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from termnorm_eval.harness.runner import DIST
from termnorm_eval.harness.taskgen import TEMPLATE_FILE

TASKS_IN_HARNESS = ("lm_eval", "tasks", "termnorm")  # where the wheel puts tasks/ (pyproject.toml)
ENTRY_POINT_GROUP = "lm_eval.tasks"  # the group the proposed harness plugin mechanism would read


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str


def _dist(dist: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return None


def recorded_task_folder(dist: str = DIST) -> Path | None:
    """Where the installer put the wheel's ``lm_eval/tasks/termnorm`` (None: it put none)."""
    d = _dist(dist)
    if d is None:
        return None
    for f in d.files or ():
        if tuple(f.parts) == (*TASKS_IN_HARNESS, TEMPLATE_FILE):
            return Path(str(d.locate_file(f))).resolve().parent
    return None


def harness_task_folder() -> Path | None:
    """``lm_eval/tasks/termnorm`` of the harness that ``import lm_eval`` finds."""
    try:
        import lm_eval.tasks
    except ImportError:
        return None
    return Path(lm_eval.tasks.__file__).resolve().parent / TASKS_IN_HARNESS[-1]


def check_tasks(editable: bool, dist: str = DIST) -> Finding:
    harness = harness_task_folder()
    if harness is None:
        return Finding(False, "lm_eval is not importable: pip install 'lm-eval[hf]'")
    if editable:
        return Finding(True, "editable install: `termnorm eval` passes --include_path to the checkout's "
                             "tasks/; a plain lm_eval needs --include_path tasks")
    recorded = recorded_task_folder(dist)
    if recorded is None:
        return Finding(False, f"the installation placed no task YAMLs ({'/'.join(TASKS_IN_HARNESS)} is "
                              "missing from its RECORD); reinstall with pip install termnorm-eval")
    if recorded != harness:
        return Finding(False, f"the task YAMLs were installed in {recorded}, but lm_eval reads its tasks "
                              f"from {harness.parent} (a --user or --target install beside a harness "
                              "installed elsewhere?): a plain `lm_eval --tasks 'termnorm_*'` will not find "
                              f"them; use `termnorm eval`, or pass --include_path {recorded}")
    if not (harness / TEMPLATE_FILE).is_file():
        return Finding(False, f"{harness}: recorded as installed but missing; reinstall termnorm-eval")
    return Finding(True, f"lm_eval finds the termnorm tasks in {harness}")


def check_entry_points(dist: str = DIST) -> Finding:
    """None of our ``lm_eval.tasks`` entry points may name a folder inside the harness: under the
    proposed plugin mechanism (built-ins < plugins < --include_path) its tasks would register twice."""
    d = _dist(dist)
    inside = [ep.value for ep in (d.entry_points if d else ())
              if ep.group == ENTRY_POINT_GROUP and ep.value.split(".")[0] == TASKS_IN_HARNESS[0]]
    if inside:
        return Finding(False, f"entry point {ENTRY_POINT_GROUP} = {inside[0]} names a folder inside lm_eval: "
                              "a harness that reads plugin entry points would register the tasks twice")
    return Finding(True, f"no {ENTRY_POINT_GROUP} entry point into lm_eval's own folder")


def check_finetune_package() -> Finding:
    """``finetune`` is a generic import name (an unrelated PyPI distribution uses it too)."""
    import importlib.util

    import termnorm_eval

    spec = importlib.util.find_spec("finetune")
    if spec is None or spec.origin is None:
        return Finding(False, "the import package `finetune` (termnorm-finetune) is not importable")
    ours = Path(termnorm_eval.__file__).resolve().parent.parent
    where = Path(spec.origin).resolve()
    if where.parent.parent != ours or not (where.parent / "train.py").is_file():
        return Finding(False, f"`import finetune` finds {where.parent}, which is not termnorm-eval's "
                              "(another distribution named finetune?); termnorm-finetune will not work")
    return Finding(True, f"`import finetune` is termnorm-eval's ({where.parent})")


def check_installation(editable: bool) -> list[Finding]:
    return [check_tasks(editable), check_entry_points(), check_finetune_package()]
