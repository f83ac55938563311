"""`termnorm doctor`: the wheel's task YAMLs must sit where the harness reads them, once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from termnorm_eval.harness import install_check, runner

REPO = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def test_this_installation_passes_every_check() -> None:
    findings = install_check.check_installation(runner.is_editable_install())
    assert [f.what for f in findings if not f.ok] == []
    if not runner.is_editable_install():  # CI: a real wheel install
        assert install_check.recorded_task_folder() == install_check.harness_task_folder()


def test_no_entry_point_names_a_folder_inside_lm_eval() -> None:
    """Under the proposed plugin mechanism such an entry point would register every task twice."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for value in project.get("entry-points", {}).get(install_check.ENTRY_POINT_GROUP, {}).values():
        assert not value.startswith("lm_eval"), value
    # and the wheel still places the YAMLs in the harness's folder, where it finds built-ins
    hatch = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]
    assert hatch["wheel"]["force-include"]["tasks"] == "/".join(install_check.TASKS_IN_HARNESS)


def test_entry_point_into_the_harness_is_reported(monkeypatch) -> None:
    class EP:
        group, value = install_check.ENTRY_POINT_GROUP, "lm_eval.tasks.termnorm"

    class Dist:
        def __init__(self) -> None:
            self.entry_points = [EP()]

    monkeypatch.setattr(install_check, "_dist", lambda _name: Dist())
    finding = install_check.check_entry_points()
    assert not finding.ok and "register the tasks twice" in finding.what


@pytest.mark.slow
def test_target_install_beside_the_harness_is_detected(tmp_path: Path) -> None:
    """`pip install --target DIR` puts lm_eval/tasks/termnorm under DIR, where the harness installed in
    the environment never looks; doctor says so and names the folder to pass as --include_path."""
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", str(wheel_dir)],
                   check=True, capture_output=True, timeout=600)
    target = tmp_path / "target"
    wheel = next(wheel_dir.glob("termnorm_eval-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=600)
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([sys.executable, "-c", "from termnorm_eval.cli import main; main(['doctor'])"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"installed in {target / 'lm_eval' / 'tasks' / 'termnorm'}" in proc.stdout
    assert f"--include_path {target / 'lm_eval' / 'tasks' / 'termnorm'}" in proc.stdout
    assert "ok   `import finetune` is termnorm-eval's" in proc.stdout
