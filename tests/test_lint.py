"""The code base stays `ruff` clean and `mypy` clean (settings in pyproject.toml)."""

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


# 20 s cold: the full tier (CI) runs it; in the fast loop run `mypy` itself
@pytest.mark.slow
def test_mypy_clean(repo_root) -> None:
    mypy = shutil.which("mypy") or shutil.which("mypy", path=str(sys.prefix) + "/bin")
    if mypy is None:
        pytest.skip("mypy is not installed (pip install '.[test]')")
    proc = subprocess.run([mypy, "--no-incremental"], cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
