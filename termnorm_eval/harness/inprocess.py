"""``lm_eval run`` inside the ``termnorm`` process, indexing only the folders that hold our tasks.

The ``lm_eval`` CLI indexes all ~14.7k built-in task configs at every start (5-50 s on a 2-core
machine) before it reads ``--tasks``. When every requested name is found in the termnorm task
folders and ``--include_path``, ``termnorm eval`` runs the same command here instead: lm-eval's
own ``run`` parser and ``EvaluatorConfig``, a ``TaskManager`` over those folders alone, then the
steps of ``Run._execute`` (``lm_eval/_cli/run.py``, 0.4.13), so the results JSON, samples files
and printed tables are the ones the printed command writes. Anything else goes to the CLI.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness.runner import installed_task_folder

# Options only the CLI acts on (a YAML config may name any task; the W&B and Trackio loggers).
CLI_ONLY = {"config": "--config", "wandb_args": "--wandb_args",
            "wandb_config_args": "--wandb_config_args", "trackio_args": "--trackio_args"}


class _Parser(argparse.ArgumentParser):
    """argparse ending in a one-line TermnormError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise TermnormError(f"lm_eval: {message}")


def parse(args: list[str]) -> argparse.Namespace:
    """``args`` (``run --model ...``, the printed command less ``lm_eval``) read by lm-eval's own
    ``run`` parser, so every option passed through means what it means to the CLI."""
    from lm_eval._cli.run import Run

    parser = _Parser(prog="lm_eval")
    Run.create(parser.add_subparsers(dest="command"))  # subparsers inherit _Parser
    try:
        return parser.parse_args(args)
    except (ValueError, AssertionError) as e:  # raised by lm-eval's own argparse actions
        raise TermnormError(f"lm_eval: {e}") from None


def task_folders(include_path: str | None) -> list[Path]:
    """The termnorm part of what the CLI indexes: the wheel's ``lm_eval/tasks/termnorm`` (one of
    the built-in folders), then ``--include_path``, which overrides it name by name as there."""
    folders = [f for f in (installed_task_folder(), include_path) if f is not None]
    return list(dict.fromkeys(Path(f).resolve() for f in folders))


@dataclass
class Plan:
    """A run that needs no built-in harness task."""

    namespace: argparse.Namespace
    folders: list[Path]
    tasks: list[str]  # resolved as the CLI's ``EvaluatorConfig.process_tasks`` resolves names


def _task_manager(folders: list[Path], metadata: dict[str, Any] | None = None) -> Any:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[str(f) for f in folders], include_defaults=False,
                       metadata=metadata)


def plan(ns: argparse.Namespace) -> Plan | str:
    """The in-process run of ``ns``, or why only the CLI can run it."""
    for key, option in CLI_ONLY.items():
        if getattr(ns, key, None):
            return f"{option} is handled by the lm_eval CLI"
    names = [t for item in ns.tasks or [] for t in item.split(",") if t]
    if not names:
        return "no --tasks"
    for name in names:
        if name.endswith(".yaml"):
            return f"--tasks {name} is a YAML file"
    folders = task_folders(ns.include_path)
    # A silent probe: run() indexes the folders again with lm-eval's logging set up, as the CLI does.
    lm_logger = logging.getLogger("lm_eval")
    level = lm_logger.level
    lm_logger.setLevel(logging.ERROR)
    try:
        tm = _task_manager(folders)
    finally:
        lm_logger.setLevel(level)
    tasks: list[str] = []
    for name in names:
        matches = tm.match_tasks([name])
        if not matches:
            return f"--tasks {name} is not a termnorm task"
        tasks += [m for m in matches if m not in tasks]
    return Plan(ns, folders, tasks)


def run(p: Plan) -> None:
    """What ``lm_eval run`` does with ``p.namespace``, minus the index of built-in tasks."""
    from lm_eval.utils import setup_logging

    from termnorm_eval.harness import constrain

    setup_logging()  # the CLI's entry point does this first
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    constrain.register_model()  # --model termnorm-hf (lm-eval reads no model entry points)

    from lm_eval.config.evaluate_config import EvaluatorConfig

    try:
        cfg = EvaluatorConfig.from_cli(p.namespace)
    except ValueError as e:  # its checks, e.g. --samples with --limit
        raise TermnormError(f"lm_eval: {e}") from None

    from lm_eval.loggers import EvaluationTracker

    from termnorm_eval.harness import api_client

    if cfg.output_path:
        cfg.hf_hub_log_args["output_path"] = cfg.output_path
    if os.environ.get("HF_TOKEN"):
        cfg.hf_hub_log_args["token"] = os.environ["HF_TOKEN"]
    tracker = EvaluationTracker(**cfg.hf_hub_log_args)
    cfg.metadata = cfg.metadata or {}  # as process_tasks
    task_manager = _task_manager(p.folders, cfg.metadata)
    cfg.tasks = p.tasks
    try:
        with api_client.guarded():
            results = _evaluate(cfg, tracker, task_manager)
    except (TermnormError, KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:
        raise failure(e, cfg.num_fewshot) from None
    if results is None:  # not rank 0 of a distributed run
        return
    _save(cfg, tracker, results)


def _evaluate(cfg: Any, tracker: Any, task_manager: Any) -> dict[str, Any] | None:
    from lm_eval import simple_evaluate

    seed = cfg.seed
    return simple_evaluate(
        model=cfg.model,
        model_args=cfg.model_args,
        tasks=cfg.tasks,
        num_fewshot=cfg.num_fewshot,
        batch_size=cfg.batch_size,
        max_batch_size=cfg.max_batch_size,
        device=cfg.device,
        use_cache=cfg.use_cache,
        cache_requests=cfg.cache_requests.get("cache_requests", False),
        rewrite_requests_cache=cfg.cache_requests.get("rewrite_requests_cache", False),
        delete_requests_cache=cfg.cache_requests.get("delete_requests_cache", False),
        limit=cfg.limit,
        samples=cfg.samples,
        check_integrity=cfg.check_integrity,
        write_out=cfg.write_out,
        log_samples=cfg.log_samples,
        evaluation_tracker=tracker,
        system_instruction=cfg.system_instruction,
        apply_chat_template=cfg.apply_chat_template,
        fewshot_as_multiturn=cfg.fewshot_as_multiturn,
        gen_kwargs=cfg.gen_kwargs,
        task_manager=task_manager,
        verbosity=cfg.verbosity,
        predict_only=cfg.predict_only,
        random_seed=seed[0] if seed else None,
        numpy_random_seed=seed[1] if seed else None,
        torch_random_seed=seed[2] if seed else None,
        fewshot_random_seed=seed[3] if seed else None,
        confirm_run_unsafe_code=cfg.confirm_run_unsafe_code,
        metadata=cfg.metadata,
    )


def _save(cfg: Any, tracker: Any, results: dict[str, Any]) -> None:
    from lm_eval.utils import handle_non_serializable, make_table

    samples = results.pop("samples") if cfg.log_samples else None
    if cfg.show_config:
        print(json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False))
    tracker.save_results_aggregated(results=results, samples=samples)
    if samples is not None:
        for task_name in results["configs"]:
            tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    if tracker.push_results_to_hub or tracker.push_samples_to_hub:
        tracker.recreate_metadata_card()
    batch_sizes = ",".join(map(str, results["config"]["batch_sizes"]))
    cfg.model_args.pop("trust_remote_code", None)
    print(f"{cfg.model} ({cfg.model_args}), gen_kwargs: ({cfg.gen_kwargs}), "
          f"limit: {cfg.limit}, num_fewshot: {cfg.num_fewshot}, "
          f"batch_size: {cfg.batch_size}{f' ({batch_sizes})' if batch_sizes else ''}")
    print(make_table(results))
    if "groups" in results:
        print(make_table(results, "groups"))


def failure(e: BaseException, num_fewshot: int | None = None) -> TermnormError:
    """The one-line error for an exception escaping lm-eval: a model that does not load, a setting
    it checks late. Shared by ``termnorm eval`` (both ways) and the study."""
    text = e.args[0] if isinstance(e, KeyError) and e.args and isinstance(e.args[0], str) else str(e)
    first = (text.strip().splitlines() or [""])[0][:300]
    what = f"{type(e).__name__}: {first}" if first else type(e).__name__
    if first.startswith("Tasks not found: "):  # the CLI's own check of --tasks
        return TermnormError(f"--tasks {first.removeprefix('Tasks not found: ')}: no such task or group, "
                             "neither a termnorm one nor one of the harness (lm_eval ls tasks lists them)")
    if num_fewshot and "Sample larger than population" in first:  # random.sample in lm-eval's sampler
        return TermnormError(f"num_fewshot {num_fewshot}: more examples than the few-shot split of a "
                             f"task holds ({what})")
    return TermnormError(f"lm_eval failed: {what}")


def cli(args: list[str]) -> int:
    """lm-eval's own CLI, ``lm_eval ARGS``, run in this process with the API models guarded and a
    failure in one line (exit 2): what ``termnorm eval`` runs for what ``plan`` cannot."""
    from lm_eval.__main__ import cli_evaluate

    from termnorm_eval.harness import api_client, constrain

    constrain.register_model()
    sys.argv = ["lm_eval", *args]
    try:
        with api_client.guarded():
            cli_evaluate()
    except TermnormError as e:
        print(f"termnorm: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        print(f"termnorm: error: {failure(e)}", file=sys.stderr)
        return 2
    return 0


def main(args: list[str]) -> int:
    """``python -m termnorm_eval.harness.inprocess [--cli] run --model ...``: a printed command run
    in a child process, in-process when ``plan`` allows, else (or with ``--cli``) by lm-eval's CLI."""
    if args[:1] == ["--cli"]:
        return cli(args[1:])
    try:
        p = plan(parse(args))
        if not isinstance(p, Plan):
            return cli(args)
        run(p)
    except TermnormError as e:
        print(f"termnorm: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
