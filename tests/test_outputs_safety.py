"""What `--force` may replace, locks on outputs, and kills at any moment (issue 9, items 1-3, 9)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from termnorm_eval import atomic
from termnorm_eval.analysis.files import write_all
from termnorm_eval.ontology.add import add_ontology
from termnorm_eval.sources.mirrors import extract
from termnorm_eval.splits.store import shipped_data_dir

CLI = "import sys; from termnorm_eval.cli import main; main(sys.argv[1:])"


def termnorm(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env={**os.environ, **(env or {})})


def one_line_error(proc: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and pattern in lines[0], proc.stderr


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def copy_build(dest: Path) -> Path:
    """A real build (the shipped splits), as `termnorm data build` leaves it."""
    import shutil

    shutil.copytree(shipped_data_dir(), dest)
    return dest


# ------------------------------------------------------------------ item 1: what --force replaces


def test_build_force_never_replaces_a_folder_with_a_foreign_manifest(tmp_path: Path) -> None:
    app = tmp_path / "webapp"
    app.mkdir()
    (app / "manifest.json").write_text('{"name": "my web app", "icons": []}\n')
    (app / "index.html").write_text("<html>mine</html>")
    before = tree(app)
    proc = termnorm("data", "build", "--sources", str(tmp_path / "src"), "--out", str(app), "--force")
    one_line_error(proc, "holds no termnorm build")
    assert tree(app) == before


def test_build_force_refuses_current_folder_home_sources_and_symlinks(tmp_path: Path) -> None:
    build = copy_build(tmp_path / "home" / "splits")
    sources = build / "files"  # sources inside the build folder
    sources.mkdir()
    (sources / "hp.obo").write_text("format-version: 1.2\n")
    before = tree(build)
    for args, cwd, why in [
        (["--out", "."], build, "is the current folder"),
        (["--out", str(build.parent)], build, "is the current folder"),
        (["--out", str(build), "--sources", str(sources)], tmp_path, "an input of this run"),
    ]:
        argv = ["data", "build", "--force", *args]
        if "--sources" not in args:
            argv += ["--sources", str(tmp_path / "elsewhere")]
        one_line_error(termnorm(*argv, cwd=cwd), why)
    (tmp_path / "home" / "manifest.json").write_text((build / "manifest.json").read_text())
    one_line_error(termnorm("data", "build", "--force", "--out", str(tmp_path / "home"),
                            "--sources", str(tmp_path / "x"), env={"HOME": str(tmp_path / "home")},
                            cwd=tmp_path), "is the home folder")
    link = tmp_path / "link"
    link.symlink_to(build)
    one_line_error(termnorm("data", "build", "--force", "--out", str(link), "--sources", str(tmp_path / "x")),
                   "is a symbolic link")
    assert link.is_symlink() and link.resolve() == build.resolve()
    assert tree(build) == before


# ------------------------------------------------------------------ item 3: one writer per output


def test_build_and_add_ontology_into_a_folder_in_use_fail_at_once(tmp_path: Path, lock_holder) -> None:
    out = tmp_path / "out"
    holder = lock_holder(out)
    one_line_error(termnorm("data", "build", "--out", str(out), "--sources", str(tmp_path / "x")),
                   f"in use by pid {holder.pid}")
    one_line_error(termnorm("add-ontology", str(extract("cl.obo")[0]), "--name", "cl", "--out", str(out)),
                   f"in use by pid {holder.pid}")
    assert holder.poll() is None  # both refused while the holder still runs: no waiting for it
    assert not out.exists()


def test_two_add_ontology_runs_into_one_new_folder(tmp_path: Path) -> None:
    """Today both exited 0 and the first output was silently replaced."""
    hp = str(extract("hp.obo")[0])
    out = tmp_path / "out"
    argv = [sys.executable, "-c", CLI, "add-ontology", hp, "--name", "hpx", "--out", str(out), "--seed", "1"]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not atomic.lock_path(out).exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    second = termnorm("add-ontology", hp, "--name", "hpx", "--out", str(out), "--seed", "2")
    first.communicate(timeout=300)
    assert first.returncode == 0
    one_line_error(second, f"in use by pid {first.pid}")
    assert json.loads((out / "manifest.json").read_text())["parameters"]["seed"] == 1


# ------------------------------------------------------------------ item 2: kill -9 at any moment


@pytest.mark.slow
def test_kill_9_during_add_ontology_force_never_leaves_out_without_a_complete_output(tmp_path: Path) -> None:
    hp = str(extract("hp.obo")[0])
    out = tmp_path / "out"
    add_ontology(hp, name="hpx", out=out, seed=0)
    old = tree(out)
    argv = [sys.executable, "-c", CLI, "add-ontology", hp, "--name", "hpx", "--out", str(out), "--force",
            "--seed", "1"]
    t0 = time.monotonic()
    full = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    run_s = time.monotonic() - t0
    assert full.returncode == 0, full.stderr
    new = tree(out)
    assert new != old
    add_ontology(hp, name="hpx", out=out, seed=0, force=True)
    assert tree(out) == old
    for i in range(8):  # kills spread over the whole run, the final move included
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(run_s * (0.45 + 0.08 * i))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        assert tree(out) in (old, new), f"kill {i}: OUT holds neither complete output"
        if tree(out) == new:
            add_ontology(hp, name="hpx", out=out, seed=0, force=True)
    add_ontology(hp, name="hpx", out=out, seed=0, force=True)  # the next run finishes or cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_sigterm_cleans_up_like_ctrl_c(tmp_path: Path) -> None:
    hp = str(extract("hp.obo")[0])
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-c", CLI, "add-ontology", hp, "--name", "hpx", "--out", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(n.name.startswith(".out.scratch-") for n in tmp_path.iterdir()):
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.01)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # scratch, lock, and the folders it made: all gone


# ------------------------------------------------------------------ report --out: never a mix


def test_report_files_are_never_a_mix_of_two_runs(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "report"
    names = ["report.md", "report.csv", "report.json"]
    write_all(out, dict.fromkeys(names, "old"))
    calls = {"n": 0}
    real = {"replace": os.replace, "rename": os.rename}

    def interrupted(kind: str):
        def move(src, dst):
            calls["n"] += 1
            if calls["n"] == 2:  # Ctrl-C during the final moves
                raise KeyboardInterrupt
            return real[kind](src, dst)
        return move

    monkeypatch.setattr(os, "replace", interrupted("replace"))
    monkeypatch.setattr(os, "rename", interrupted("rename"))
    # the exchange of two folder names needs no per-file move: then nothing is interrupted
    with contextlib.suppress(KeyboardInterrupt):
        write_all(out, dict.fromkeys(names, "new"))
    monkeypatch.undo()
    contents = {(out / n).read_text() for n in names}
    assert len(contents) == 1, contents


def test_report_out_with_other_files_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep")
    with pytest.raises(Exception, match="holds files this command does not write"):
        write_all(out, {"report.md": "x"})
    assert (out / "thesis.tex").read_text() == "keep"


def test_kill_9_of_a_build_leaves_nothing_in_the_temp_folder(tmp_path: Path) -> None:
    """A killed build once leaked its table pickle into $TMPDIR; nothing may land there now, and the
    next build into the same folder cleans what the killed one left beside it."""
    sources = tmp_path / "files"
    sources.mkdir()
    for name in ("hp.obo", "phenotype.hpoa"):
        (sources / name).symlink_to(extract(name)[0])
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "o"
    argv = [sys.executable, "-c", CLI, "data", "build", "--sources", str(sources), "--out", str(out),
            "--terminology", "hpo"]
    env = {**os.environ, "TMPDIR": str(tmp)}
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not atomic.lock_path(out).exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # inside the build: reading the releases
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert sorted(tmp.iterdir()) == []
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["files", "o", "tmp"] and sorted(tmp.iterdir()) == []
