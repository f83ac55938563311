"""A local model is known to the study by the content of its files (issue 20, item 1): other
weights of the same size at the same path rerun what depends on them; the digests are cached by
file (path, inode, size, times) so that a rerun reads no weights; a cache that cannot be read is
ignored, never trusted."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from termnorm_cli import run

from termnorm_eval import fingerprint
from termnorm_eval.sources import mirrors
from termnorm_eval.study import records


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TERMNORM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / fingerprint.CACHE_FILE


@pytest.fixture
def model(tiny_model: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model that a test may overwrite."""
    return Path(shutil.copytree(tiny_model, tmp_path / "model"))


def _overwrite_in_place(target: Path, source: Path) -> None:
    """Other bytes of the same size into ``target``'s inode, its mtime set back: only the content
    (and ctime, which no tool sets back) tells it from the old file."""
    st = target.stat()
    data = source.read_bytes()
    assert len(data) == st.st_size
    with open(target, "r+b") as fh:
        fh.write(data)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = target.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    hashed: list[str] = []
    real = mirrors.sha256_file

    def counted(path: Path, *args: object) -> str:
        hashed.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(mirrors, "sha256_file", counted)
    return hashed


def test_the_identity_is_the_files_content_and_a_rerun_reads_no_weights(
        model: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from termnorm_eval.tiny_model import build_tiny_model

    hashed = _counting(monkeypatch)
    first = fingerprint.model_identity(model)
    assert first["files"]["model.safetensors"] == mirrors.sha256_file(model / "model.safetensors")
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= set(first["files"])
    assert "model.safetensors" in hashed and cache.is_file()
    hashed.clear()
    assert fingerprint.model_identity(model) == first and hashed == []  # from the cache
    other = build_tiny_model(tmp_path / "other", seed=1)
    _overwrite_in_place(model / "model.safetensors", other / "model.safetensors")
    second = fingerprint.model_identity(model)
    assert hashed == ["model.safetensors"]  # that file alone is read again
    assert second["files"]["model.safetensors"] != first["files"]["model.safetensors"]
    assert records.differences(first, second) == ["files.model.safetensors"]


@pytest.mark.parametrize("content", ["{not json", "[]", json.dumps({"format": "x", "files": {}}),
                                     "\udcff"])
def test_a_cache_file_that_cannot_be_read_is_ignored_and_replaced(
        model: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, content: str) -> None:
    truth = fingerprint.model_identity(model)
    cache.write_bytes(content.encode("utf-8", "surrogateescape"))
    hashed = _counting(monkeypatch)
    assert fingerprint.model_identity(model) == truth
    assert "model.safetensors" in hashed
    hashed.clear()
    assert fingerprint.model_identity(model) == truth and hashed == []  # rewritten, readable again


def test_a_malformed_entry_is_never_trusted(model: Path, cache: Path) -> None:
    truth = fingerprint.model_identity(model)
    data = json.loads(cache.read_text())
    for entry in data["files"].values():
        entry["sha256"] = "not a digest"
    cache.write_text(json.dumps(data))
    assert fingerprint.model_identity(model) == truth


def test_hashing_says_so_the_first_time_only(model: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(fingerprint, "SAY_ABOVE_BYTES", 0)  # the tiny model counts as big here
    fingerprint.model_identity(model)
    err = capsys.readouterr().err
    assert "hashing the model's files" in err and "once" in err
    fingerprint.model_identity(model)
    assert capsys.readouterr().err == ""


def test_an_unwritable_cache_still_gives_the_identity(
        model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("TERMNORM_CACHE", str(blocker / "cache"))  # under a file: cannot be made
    assert fingerprint.model_identity(model)["files"]["model.safetensors"] == mirrors.sha256_file(
        model / "model.safetensors")


@pytest.mark.slow
def test_other_weights_of_the_same_size_rerun_the_study(
        model: Path, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from termnorm_eval.tiny_model import build_tiny_model

    out = tmp_path / "s"
    argv = ["study", "--model", str(model), "--no-train", "--no-lexicalization", "--terminologies", "go",
            "--directions", "term2id", "--limit", "1", "--device", "cpu", "--out", str(out)]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    before = records.read_record(out / "base")
    assert before is not None
    other = build_tiny_model(tmp_path / "other", seed=1)
    _overwrite_in_place(model / "model.safetensors", other / "model.safetensors")
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert "base: finished earlier, reused" not in err
    assert "base: inputs changed (model.files.model.safetensors)" in err
    after = records.read_record(out / "base")
    assert after is not None and after["inputs"]["model"] != before["inputs"]["model"]
    assert "report: inputs changed (reads.base)" in err
    code, _, err = run(argv, capsys)
    assert code == 0 and err.count("finished earlier, reused") == 3, err  # base, retrieve, report
