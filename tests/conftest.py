"""Shared fixtures. Real data come from the shipped splits and from pinned PyPI wheels (cached)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Everything offline: nothing in the suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer Llama with a byte-level BPE tokenizer and chat template."""
    from termnorm_eval.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0)


@pytest.fixture
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake vLLM server module on the server's PYTHONPATH; the folder where it records (vllm_fake)."""
    import vllm_fake

    return vllm_fake.install(tmp_path, monkeypatch)


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from termnorm_eval import atomic
target = Path(sys.argv[1])
with atomic.output_lock(target, "OUT"):
    for extra in sys.argv[2:]:  # a run's own temporaries, as a live run has them
        Path(extra).mkdir()
    print("locked", flush=True)
    time.sleep(float(60))
"""


@pytest.fixture
def lock_holder():
    """Start a process that holds the lock of a target (as a run in another shell, or host, does)."""
    procs: list[subprocess.Popen[str]] = []

    def start(target: Path, *extra: Path) -> subprocess.Popen[str]:
        p = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(target), *map(str, extra)],
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "locked"
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait(timeout=30)
