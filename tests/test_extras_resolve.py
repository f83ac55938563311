"""The `gpu` and `vllm` extras still resolve against the package index with the pinned CPU torch.

Unsloth's zoo package has capped TRL and torch below this project's pins before: a new Unsloth,
unsloth-zoo, TRL or vLLM release can make `pip install '.[gpu]'` unsatisfiable long before anyone
installs it on a GPU. pip's resolver (``--dry-run --report``) answers without installing anything;
``--ignore-installed`` makes it resolve the whole set instead of leaning on this venv. Needs the
package index (CI has it); where the index cannot be reached at all the test skips outside CI and
fails in CI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TORCH = "torch==2.13.0"  # the README's CPU pin: the extras must resolve beside it
# What each extra is for, and the distributions whose versions the closing notes and README quote.
EXTRAS = {
    "gpu": ("unsloth", "unsloth-zoo", "trl", "transformers", "peft", "torch"),
    "vllm": ("vllm", "transformers", "torch"),
}
UNREACHABLE = re.compile(r"Network is unreachable|Temporary failure in name resolution|"
                         r"Failed to establish a new connection|Max retries exceeded", re.I)


def _resolve(extra: str, report: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
         "--disable-pip-version-check", "--report", str(report), TORCH, f"{REPO}[{extra}]"],
        capture_output=True, text=True, timeout=900)


def _why(proc: subprocess.CompletedProcess[str]) -> str:
    """pip's own explanation of a failed resolution: its errors and the conflict's causes."""
    errors = [line for line in proc.stderr.splitlines()
              if line.strip() and not line.startswith("WARNING: Location")]
    out = proc.stdout.splitlines()
    start = next((i for i, line in enumerate(out) if "conflict is caused by" in line), len(out))
    causes = [line.strip() for line in out[start:start + 12] if line.strip()]
    return " | ".join(errors[-6:] + causes)


@pytest.mark.slow
@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_the_extra_resolves_with_the_pinned_torch(extra: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = _resolve(extra, report)
    if proc.returncode != 0 and UNREACHABLE.search(proc.stderr) and os.environ.get("CI") != "true":
        pytest.skip(f"the package index is not reachable: {_why(proc)[:300]}")
    assert proc.returncode == 0, (
        f"pip can no longer install termnorm-eval[{extra}] beside {TORCH}: a new release of "
        f"{', '.join(EXTRAS[extra][:-1])} (or what they require) conflicts with this project's pins "
        f"in pyproject.toml. pip says: {_why(proc)}")
    resolved = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    missing = [name for name in EXTRAS[extra] if name not in resolved]
    assert not missing, f"termnorm-eval[{extra}] resolved without {', '.join(missing)}"
    assert resolved["torch"].split("+")[0] == TORCH.split("==")[1], resolved["torch"]
    # Printed with -s: the versions to quote in the README when they move.
    print(f"{extra}: " + ", ".join(f"{name} {resolved[name]}" for name in EXTRAS[extra]))
