"""Regenerate the task YAMLs of this folder: ``python tasks/_generate_configs.py``.

The logic lives in ``termnorm_eval.harness.taskgen`` (also used by ``add-ontology``); a test checks
that the committed files equal what it writes.
"""

from __future__ import annotations

from pathlib import Path

from termnorm_eval.harness.taskgen import write_task_family
from termnorm_eval.terminologies import BUILTIN

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    for path in write_task_family(BUILTIN.values(), here):
        print(path.relative_to(here))
