"""Constrained decoding's cost: SmolLM2 on the CPU, the same documents free and constrained, measured in the
same run, and the prefix tree of the full GO.

    python benchmarks/bench_constrain.py [--limit 16] [--repeat 3] [--batch-size 16] [--threads 1] [--json]

Target (issue 23, item 6): constrained generation takes at most 1.3x the wall time of free generation on
the same documents. Both are lm-eval's own ``generate_until`` on one model instance (``TermnormHFLM`` on
the prepared SmolLM2-135M-Instruct, float32; free: ``HFLM.generate_until`` called on it, which never
constrains) over the requests lm-eval builds for the tasks (the plain prompts, no chat template, as
``termnorm eval`` runs them). One untimed free run warms up; the first constrained run is timed apart
(it builds the trees: "cold"); then ``--repeat`` free / constrained pairs alternate, so that both see the
same machine load; median and best. The wall time mixes two effects: the constraint's own work per step
(timed apart: every call of transformers' ``PrefixConstrainedLogitsProcessor``, which builds the mask from
the allowed tokens ``constrained_lm.AllowedTokens`` gives for each row) and shorter generations (a
constrained answer ends with the answer; a free one may run on to ``max_gen_toks`` past the stop string
that lm-eval cuts it at). Tokens/s: the token positions ``generate`` computed (rows x steps of each batch,
a finished row's padding included) per second. Also counted: the tokens of the responses as lm-eval
returns them, and the responses that are an allowed answer.

The tree: the full GO's live identifiers (45,013) and labels with SmolLM2's tokenizer, each built in a
fresh child process ``--repeat`` times: reading the answers from the release index, spelling them
(tokenize bare and after a space, decode check), building the tree; peak memory as the child's
``ru_maxrss`` growth over the build (the validity index, which every run loads anyway, and the tokenizer
are loaded first) and tracemalloc's peak in one more child (tracemalloc slows the build, so it is not
timed). ``--json``: benchmarks/results/constrain_cpu.{json,md} (no paths).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "constrain_cpu"
TARGET = 1.3
TASKS = ("termnorm_go_term2id_val", "termnorm_hpo_term2id_val", "termnorm_gene_name2symbol_val",
         "termnorm_go_id2term_val", "termnorm-rag_go_term2id_val")
TREES = (("go", "curie"), ("go", "name"))


def _stats(values: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(values), 3), "best": round(min(values), 3),
            "runs": [round(v, 3) for v in values]}


# ---------------------------------------------------------------- the tree (one child per build)


def tree_child(key: str, fmt: str, traced: bool) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from termnorm_eval import models
    from termnorm_eval.harness import constrain
    from termnorm_eval.harness.dataset import release_digest

    tok = AutoTokenizer.from_pretrained(models.prepared_path())
    curie = fmt == "curie"
    spec = constrain.AnswerSet(key, release_digest(key), fmt, "GO" if curie else "",
                               r"\d{7}" if curie else "")
    constrain.index_file(spec)  # the validity index: loaded by every run anyway
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    answers = constrain.live_answers(spec)
    t1 = time.perf_counter()
    sequences, unreachable = constrain.spell(tok, answers)
    t2 = time.perf_counter()
    tree = constrain.build_tree(sequences, len(answers) - len(unreachable), unreachable)
    t3 = time.perf_counter()
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # KiB on Linux
    out: dict[str, Any] = {"answers": len(answers), "unreachable": len(unreachable),
                           "sequences": len(sequences), "nodes": tree.nodes, "depth": tree.depth,
                           "tree_mb": tree.nbytes / 1e6, "read_s": t1 - t0, "spell_s": t2 - t1,
                           "tree_s": t3 - t2, "total_s": t3 - t0, "rss_growth_mb": grown}
    if traced:
        out["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
    return out


def measure_tree(key: str, fmt: str, repeat: int) -> dict[str, Any]:
    def child(*extra: str) -> dict[str, Any]:
        proc = subprocess.run([sys.executable, __file__, "--child-tree", key, fmt, *extra],
                              capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            sys.exit(f"tree child failed:\n{proc.stderr[-3000:]}")
        return dict(json.loads(proc.stdout.splitlines()[-1]))

    runs = [child() for _ in range(repeat)]
    traced = child("--traced")
    res = {k: runs[0][k] for k in ("answers", "unreachable", "sequences", "nodes", "depth")}
    res["tree_mb"] = round(runs[0]["tree_mb"], 2)
    for k in ("read_s", "spell_s", "tree_s", "total_s"):
        res[k] = _stats([r[k] for r in runs])
    res["rss_growth_mb"] = round(max(r["rss_growth_mb"] for r in runs), 1)
    res["traced_peak_mb"] = round(traced["traced_peak_mb"], 1)
    return res


# ---------------------------------------------------------------- generation, free vs constrained


def build_requests(tasks: tuple[str, ...], limit: int) -> list[Any]:
    from lm_eval.tasks import TaskManager, get_task_dict

    tm = TaskManager(include_path=str(REPO / "tasks"), include_defaults=False)
    requests: list[Any] = []
    for task in get_task_dict(list(tasks), tm).values():
        task.build_all_requests(limit=limit, rank=0, world_size=1)
        requests += task.instances
    return requests


def measure_generation(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers.generation import logits_process

    from termnorm_eval import models
    from termnorm_eval.harness import constrain
    from termnorm_eval.harness.constrained_lm import TermnormHFLM

    torch.set_num_threads(args.threads)
    lm = TermnormHFLM(pretrained=str(models.prepared_path()), device="cpu", batch_size=args.batch_size,
                      dtype="float32")
    requests = build_requests(tuple(args.tasks.split(",")), args.limit)
    allowed = []
    for r in requests:
        spec = constrain.answer_set(r.doc, r.task_name)
        live = set(constrain.live_answers(spec))
        allowed.append(live & set(spec.candidates) if spec.candidates else live)

    computed = [0]  # token positions generate computed in the current run
    own_generate = lm._model_generate

    def counting(context: Any, max_length: int, stop: list[str], **kwargs: Any) -> Any:
        out = own_generate(context, max_length, stop, **kwargs)
        computed[0] += (out.shape[1] - context.shape[1]) * out.shape[0]
        return out

    lm._model_generate = counting  # type: ignore[method-assign]  # both runs (free: HFLM.generate_until)
    masking = [0.0]  # seconds in the constraint's logits processor in the current run
    processor = logits_process.PrefixConstrainedLogitsProcessor
    own_call = processor.__call__

    def timed_call(self: Any, input_ids: Any, scores: Any) -> Any:
        t = time.perf_counter()
        out = own_call(self, input_ids, scores)
        masking[0] += time.perf_counter() - t
        return out

    processor.__call__ = timed_call  # type: ignore[method-assign]

    def run(constrained: bool) -> tuple[float, list[str], int, float]:
        reqs = copy.deepcopy(requests)
        computed[0], masking[0] = 0, 0.0
        t = time.perf_counter()
        out = lm.generate_until(reqs, disable_tqdm=True) if constrained else HFLM.generate_until(
            lm, reqs, disable_tqdm=True)
        return time.perf_counter() - t, list(out), computed[0], masking[0]

    def tokens(responses: list[str]) -> int:  # the response's tokens as lm-eval returns it
        return sum(len(lm.tokenizer.encode(r, add_special_tokens=False)) for r in responses)

    run(False)  # warm-up: torch, caches
    cold = run(True)[0]  # builds the trees
    times: dict[str, list[float]] = {"free": [], "constrained": []}
    responses: dict[str, list[str]] = {}
    positions: dict[str, int] = {}
    constraint_s: list[float] = []
    for i in range(args.repeat):
        for kind in ("free", "constrained"):
            seconds, responses[kind], positions[kind], masked = run(kind == "constrained")
            times[kind].append(seconds)
            if kind == "constrained":
                constraint_s.append(masked)
        print(f"run {i + 1}: free {times['free'][-1]:.2f} s, constrained {times['constrained'][-1]:.2f} s",
              flush=True)
    res: dict[str, Any] = {"documents": len(requests), "constrained_cold_s": round(cold, 3)}
    for kind, resp in responses.items():
        med = statistics.median(times[kind])
        res[kind] = {"seconds": _stats(times[kind]), "positions": positions[kind],
                     "tokens_per_s": round(positions[kind] / med, 1), "response_tokens": tokens(resp),
                     "documents_per_s": round(len(resp) / med, 2),
                     "allowed_answers": sum(r.strip() in ok for r, ok in zip(resp, allowed, strict=True))}
    res["ratio_median"] = round(statistics.median(times["constrained"]) / statistics.median(times["free"]), 3)
    res["ratio_best"] = round(min(times["constrained"]) / min(times["free"]), 3)
    # the constraint's own work: its logits processor, per run
    res["constraint_s"] = _stats(constraint_s)
    shares = [c / t for c, t in zip(constraint_s, times["constrained"], strict=True)]
    res["constraint_share"] = round(statistics.median(shares), 4)
    res["trees"] = lm.constrainer.summary()["answer_sets"]
    return res


# ---------------------------------------------------------------- report


def render_md(report: dict[str, Any]) -> str:
    m, g = report["machine"], report["generation"]
    ok = "met" if g["ratio_median"] <= TARGET else "**missed**"
    lines = ["# Constrained decoding: cost on the CPU", "",
             f"`{report['command']}`: {m['cpus']} CPUs, load average {m['load_start']:.1f} at the start, "
             f"{m['load_end']:.1f} at the end; {report['threads']} torch threads; Python {m['python']}, "
             f"torch {m['torch']}, transformers {m['transformers']}, lm-eval {m['lm_eval']}. Model "
             f"SmolLM2-135M-Instruct (float32), batch size {report['batch_size']}, greedy, no chat template.",
             "",
             f"## Generation: the same {g['documents']} documents free and constrained", "",
             f"Tasks: {', '.join(report['tasks'])}; the first {report['limit']} documents of each.", "",
             "| run | wall s (median) | best | token positions computed | tokens/s | response tokens | "
             "documents/s | responses that are an allowed answer |", "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for kind in ("free", "constrained"):
        k = g[kind]
        lines.append(f"| {kind} | {k['seconds']['median']:.2f} | {k['seconds']['best']:.2f} | "
                     f"{k['positions']:,} | {k['tokens_per_s']:.1f} | {k['response_tokens']:,} | "
                     f"{k['documents_per_s']:.2f} | "
                     f"{k['allowed_answers']} / {g['documents']} |")
    lines += ["", f"Constrained / free wall time: **{g['ratio_median']:.2f}x** median, "
              f"{g['ratio_best']:.2f}x best (target <= {TARGET}x: {ok}). The first constrained run, its "
              f"trees built: {g['constrained_cold_s']:.2f} s. The constraint's own work (its logits "
              f"processor, every step): {g['constraint_s']['median']:.3f} s per constrained run, "
              f"{100 * g['constraint_share']:.1f}% of its wall time; the rest of the difference is the "
              "length of the generations. Tokens/s counts the positions `generate` computed: a constrained "
              "batch takes fewer steps after the same prompt (its prefill), so its figure is lower at the "
              "same cost per step.", "",
              "## The prefix tree of the full GO (SmolLM2's tokenizer)", "",
              "| answers | live | unreachable | sequences | nodes | depth | tree MB | read s | spell s | "
              "tree s | total s (median) | peak RSS growth MB | tracemalloc peak MB |",
              "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for name, t in report["trees"].items():
        lines.append(f"| {name} | {t['answers']:,} | {t['unreachable']} | {t['sequences']:,} | "
                     f"{t['nodes']:,} | {t['depth']} | {t['tree_mb']:.1f} | {t['read_s']['median']:.2f} | "
                     f"{t['spell_s']['median']:.2f} | {t['tree_s']['median']:.2f} | "
                     f"{t['total_s']['median']:.2f} | {t['rss_growth_mb']:.0f} | {t['traced_peak_mb']:.0f} |")
    lines += ["", "A tree is built once per process, tokenizer and answer set, and kept "
              "(`constrain.Constrainer`); a retrieval-augmented document gets a tree of its shown "
              "candidates."]
    return "\n".join(lines) + "\n"


def main() -> int:
    if sys.argv[1:2] == ["--child-tree"]:
        key, fmt = sys.argv[2], sys.argv[3]
        print(json.dumps(tree_child(key, fmt, traced="--traced" in sys.argv[4:])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=16, help="documents per task")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: on a shared 2-core machine "
                    "torch's busy-waiting threads collide with other jobs)")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--json", action="store_true", help=f"write {RESULTS.relative_to(REPO)}.json and .md")
    args = ap.parse_args()

    from importlib.metadata import version

    report: dict[str, Any] = {
        "command": "python benchmarks/bench_constrain.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "load_start": os.getloadavg()[0],
                    "python": platform.python_version(), "torch": version("torch"),
                    "transformers": version("transformers"), "lm_eval": version("lm-eval")},
        "tasks": args.tasks.split(","), "limit": args.limit, "batch_size": args.batch_size,
        "threads": args.threads, "target": TARGET,
    }
    report["trees"] = {f"{key} {fmt}": measure_tree(key, fmt, args.repeat) for key, fmt in TREES}
    report["generation"] = measure_generation(args)
    report["machine"]["load_end"] = os.getloadavg()[0]
    md = render_md(report)
    print(md)
    if args.json:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.with_suffix(".json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        RESULTS.with_suffix(".md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
