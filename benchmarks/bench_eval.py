"""Wall time of `termnorm eval` next to the plain `lm_eval` command it prints, in the same run.

    .venv/bin/python benchmarks/bench_eval.py [--rounds 5] [--threads 1] [--task NAME]

Both run one task on its first document (`--limit 1`) with the tiny random Llama on the CPU, as
fresh processes, alternating within each round so that a change in machine load hits both. The
baseline is exactly the command `termnorm eval` prints (same model path, `--include_path tasks`,
`--limit 1`, `--device cpu`, batch size). Target: `termnorm eval` <= 0.35x the baseline's median.

Both get the same OMP_NUM_THREADS (default 1: torch's default of one thread per core collides with
other jobs on a shared 2-core machine); the product itself never sets it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = 0.35
INDEX = ("import time; from lm_eval.tasks import TaskManager; t = time.perf_counter(); "
         "TaskManager(include_path='tasks'); print(time.perf_counter() - t)")
IMPORTS = "import lm_eval.tasks, lm_eval.models.huggingface"


def timed(cmd: list[str], env: dict[str, str], expect: str) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0 or expect not in proc.stdout + proc.stderr:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for both commands")
    ap.add_argument("--task", default="termnorm_go_term2id_val")
    args = ap.parse_args()

    from termnorm_eval.harness import runner
    from termnorm_eval.tiny_model import build_tiny_model

    env = runner.offline_env()
    env["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_model(Path(tmp) / "tiny", seed=0)
        model_args = f"pretrained={tiny},dtype=float32"
        baseline = runner.EvalCommand(model_args=model_args, tasks=args.task, limit=1, device="cpu",
                                      include_path=Path("tasks")).argv()
        ours = [sys.executable, "-c", "from termnorm_eval.cli import main; main()", "eval",
                "--model-args", model_args, "--tasks", args.task, "--limit", "1", "--device", "cpu"]
        print(f"baseline: {' '.join(['lm_eval', *baseline[3:]])}")
        print(f"ours:     termnorm {' '.join(ours[3:])}")
        print(f"OMP_NUM_THREADS={args.threads}, load average {os.getloadavg()[0]:.1f} on "
              f"{len(os.sched_getaffinity(0))} cores")
        times: dict[str, list[float]] = {"lm_eval": [], "termnorm": []}
        for r in range(args.rounds):
            pair = [("lm_eval", baseline, args.task), ("termnorm", ours, "running in-process")]
            for name, cmd, expect in pair if r % 2 == 0 else pair[::-1]:
                times[name].append(timed(cmd, env, expect))
            print(f"round {r + 1}: lm_eval {times['lm_eval'][-1]:.2f} s | termnorm eval "
                  f"{times['termnorm'][-1]:.2f} s | load {os.getloadavg()[0]:.1f}", flush=True)
    base, mine = statistics.median(times["lm_eval"]), statistics.median(times["termnorm"])
    ratio = mine / base
    print(f"median wall: lm_eval {base:.2f} s, termnorm eval {mine:.2f} s: ratio {ratio:.2f}x "
          f"(target <= {TARGET}x: {'met' if ratio <= TARGET else 'MISSED'})")
    # Where the time goes: what in-process skips, and the imports every run pays.
    index = float(subprocess.run([sys.executable, "-c", INDEX], env=env, cwd=REPO, capture_output=True,
                                 text=True, check=True).stdout.split()[-1])
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS], env=env, cwd=REPO, check=True)
    imports = time.perf_counter() - t
    print(f"breakdown (one run each): the built-in task index the CLI builds {index:.2f} s; starting "
          f"python and importing lm_eval + torch + transformers' hf model classes {imports:.2f} s")


if __name__ == "__main__":
    main()
