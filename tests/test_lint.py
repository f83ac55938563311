"""The code base stays `ruff` clean (the project's lint settings are in pyproject.toml)."""

import shutil
import subprocess
import sys

import pytest


def test_ruff_clean(repo_root) -> None:
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(sys.prefix) + "/bin")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install '.[test]')")
    proc = subprocess.run([ruff, "check", "--no-cache", "."], cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
