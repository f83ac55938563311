"""`termnorm study` end to end on a tiny real-architecture model and real GO pairs: base
evaluation, one LoRA, its evaluation, the epoch sweep from checkpoints of one run, the
lexicalization analysis and report.md; reruns, changed inputs, other versions, Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from termnorm_cli import one_line_error, run

from termnorm_eval.study import records

REPO = Path(__file__).resolve().parent.parent
TINY_CONFIG = REPO / "finetune" / "recipes" / "study-tiny.yaml"


def _study(*args: str) -> int:
    from termnorm_eval.cli import main

    try:
        main(["study", *args])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture(scope="module")
def tiny256(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model wide enough to memorize 4 pairs in 40 steps (the finetune proof's shape)."""
    from termnorm_eval.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny256"), seed=0, hidden=256, layers=1)


@pytest.fixture(scope="module")
def finished(tiny256: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study") / "s"
    assert _study("-c", str(TINY_CONFIG), "--model", str(tiny256), "--out", str(out)) == 0
    return out


def _results(folder: Path) -> dict:
    (path,) = sorted(folder.glob("results/*/results_*.json"))
    return json.loads(path.read_text())


def _strict(folder: Path, task: str) -> float:
    return _results(folder)["results"][task]["exact_match,extract"]


# ------------------------------------------------------------------ the whole study


@pytest.mark.slow
def test_the_study_runs_every_step_and_reports_the_memorization_curve(finished: Path) -> None:
    for step in ("retrieve", "base", "train-go", "eval-go", "sweep-go-e5", "lexicalization", "report"):
        rec = records.read_record(finished / step)
        assert rec is not None and rec["step"] == step, step
        assert rec["inputs"].get("termnorm_eval_version") or step == "report"
    # ONE training run of 20 epochs; epoch 5 comes from its checkpoint, whose optimizer states are gone
    manifest = json.loads((finished / "train-go/adapter/termnorm_manifest.json").read_text())
    assert manifest["training"]["global_steps"] == 60 and manifest["hyperparameters"]["epochs"] == 20
    assert manifest["data"]["train_forms"] == ["label"]  # labels only: the study's design
    e5 = finished / "train-go/epochs/epoch-5/adapter_model.safetensors"
    assert e5.read_bytes() != (finished / "train-go/adapter/adapter_model.safetensors").read_bytes()
    assert not (finished / "train-go/adapter/checkpoints").exists()
    sweep_cfg = _results(finished / "sweep-go-e5")["config"]["model_args"]
    assert str(sweep_cfg["peft"]).endswith("train-go/epochs/epoch-5")
    # base and every evaluation scored the train and val tasks, the mention tasks too, samples logged
    for step in ("base", "eval-go", "sweep-go-e5"):
        for task in ("term2id_val", "synonym2id_train", "synonym2id_val"):
            assert list((finished / step / "results").glob(f"*/samples_termnorm_go_{task}_*.jsonl")), task
    # the curve's numbers are the results files' numbers
    curve = (finished / "report/memorization.csv").read_text().splitlines()
    assert curve[0].startswith("terminology,directions,epoch,train_strict,val_strict")
    by_epoch = {int(r.split(",")[2]): r.split(",") for r in curve[1:]}
    assert sorted(by_epoch) == [0, 5, 20]
    for epoch, step in ((0, "base"), (5, "sweep-go-e5"), (20, "eval-go")):
        assert float(by_epoch[epoch][3]) == _strict(finished / step, "termnorm_go_term2id_train")
        assert float(by_epoch[epoch][4]) == _strict(finished / step, "termnorm_go_term2id_val")
    # the study's contrast: the trained pairs are memorized, the held-out ones are not
    assert float(by_epoch[0][3]) == 0.0 and float(by_epoch[20][3]) >= 0.75
    assert float(by_epoch[20][4]) == 0.0
    report = (finished / "report.md").read_text()
    for part in ("## Accuracy vs epochs", "report/memorization.png", "## Lexicalization",
                 "## Memorization vs generalization", "report/gains.png"):
        assert part in report, part
    assert (finished / "report/memorization.png").read_bytes()[:4] == b"\x89PNG"
    assert (finished / "lexicalization/alignment.csv").is_file()
    # the retrieval arm (rag: on by default): bm25 on the X->ID tasks, their RAG mirrors in every
    # evaluation, each run with and without candidates in the report, beside the retriever
    (retrieved,) = (finished / "retrieve/results").glob("retriever-bm25/results_*.json")
    assert sorted(json.loads(retrieved.read_text())["results"]) == [
        f"termnorm_go_{d}_{s}" for d in ("synonym2id", "term2id") for s in ("train", "val")]
    for step in ("base", "eval-go", "sweep-go-e5"):
        assert list((finished / step / "results").glob("*/samples_termnorm-rag_go_term2id_val_*.jsonl"))
    rag_rows = (finished / "report/rag.csv").read_text().splitlines()
    assert len(rag_rows) == 1 + 4 * 2  # 4 tasks x (base, eval-go)
    assert "## Retrieval arm" in report and "retriever: bm25" in report


@pytest.mark.slow
def test_a_finished_study_reruns_in_seconds_and_changes_nothing(
        finished: Path, tiny256: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file() and p.name != "study.json"}
    started = time.monotonic()
    argv = ["study", "-c", str(TINY_CONFIG), "--model", str(tiny256), "--out", str(finished)]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert time.monotonic() - started < 20
    assert err.count("finished earlier, reused") == 7 and "[7/7] report" in err
    after = {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file() and p.name != "study.json"}
    assert after == before


@pytest.mark.slow
def test_a_changed_input_reruns_that_step_and_what_reads_it(
        finished: Path, tiny256: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    shutil.copytree(finished, out)
    code, _, err = run(["study", "-c", str(TINY_CONFIG), "--model", str(tiny256), "--out", str(out),
                        "--lexicalization-limit", "6"], capsys)
    assert code == 0, err
    assert "another config (differs in lexicalization_limit)" in err
    assert "lexicalization: inputs changed (limit)" in err
    assert err.count("finished earlier, reused") == 5  # base, retrieve, train, eval, sweep
    assert "report: inputs changed (reads.lexicalization)" in err
    assert json.loads((out / "lexicalization/alignment.json").read_text())["limit"] == 6


@pytest.mark.slow
def test_a_folder_of_another_version_reuses_what_matches(
        finished: Path, tiny256: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    shutil.copytree(finished, out)
    study = json.loads((out / "study.json").read_text())
    study["termnorm_eval_version"] = "0.0.9"
    (out / "study.json").write_text(json.dumps(study))
    rec = json.loads((out / "base/step.json").read_text())
    rec["inputs"]["termnorm_eval_version"] = "0.0.9"  # base as an older version recorded it
    (out / "base/step.json").write_text(json.dumps(rec))
    code, _, err = run(["study", "-c", str(TINY_CONFIG), "--model", str(tiny256), "--out", str(out),
                        "--only", "base"], capsys)
    assert code == 0, err
    assert "made by termnorm-eval 0.0.9" in err and "base: inputs changed (termnorm_eval_version)" in err
    assert records.read_record(out / "base")["inputs"]["termnorm_eval_version"] != "0.0.9"


# ------------------------------------------------------------------ Ctrl-C


@pytest.mark.slow
def test_ctrl_c_in_training_exits_130_and_the_rerun_continues(
        tiny256: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from finetune_cli import add_callbacks, interrupt_after

    out = tmp_path / "s"
    argv = ["study", "-c", str(TINY_CONFIG), "--model", str(tiny256), "--out", str(out), "--epochs", "1,2",
            "--only", "train"]
    with monkeypatch.context() as m:
        add_callbacks(m, interrupt_after(3))  # Ctrl-C right after the checkpoint of epoch 1 (3 steps)
        code, _, err = run(argv, capsys)
    assert code == 130, err
    assert "interrupted; run the same command to continue" in err
    assert records.read_record(out / "train-go") is None
    assert (out / "train-go/adapter/checkpoints/checkpoint-3").is_dir()
    assert (out / records.STUDY_FILE).is_file()  # claimed before the training wrote: still our folder
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert "continuing the interrupted training" in err
    manifest = json.loads((out / "train-go/adapter/termnorm_manifest.json").read_text())
    assert manifest["training"]["resumed_from_step"] == 3 and manifest["training"]["global_steps"] == 6
    assert (out / "train-go/epochs/epoch-1/adapter_model.safetensors").is_file()
    assert records.read_record(out / "train-go") is not None


@pytest.mark.slow
def test_ctrl_c_in_an_evaluation_leaves_nothing_and_the_rerun_runs_it(
        tiny256: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from termnorm_eval.harness import inprocess

    out = tmp_path / "s"
    argv = ["study", "-c", str(TINY_CONFIG), "--model", str(tiny256), "--out", str(out), "--only", "base",
            "--limit", "2"]

    def interrupted(plan: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(inprocess, "run", interrupted)
        code, _, err = run(argv, capsys)
    assert code == 130, err
    assert not out.exists()  # the folder the interrupted first step made goes with it
    assert not list(out.parent.glob(".s.*"))  # no lock, no staged leftovers
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert _results(out / "base")["n-samples"]["termnorm_go_term2id_val"]["effective"] == 2


def _study_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`python -m termnorm_eval study ...` as a user starts it in a terminal: SIGINT not ignored
    (a shell's background job would ignore it), stderr read line by line."""
    return subprocess.Popen([sys.executable, "-m", "termnorm_eval", "study", *args], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.slow
def test_a_real_sigint_during_an_evaluation_exits_130_and_the_rerun_runs_it(
        tiny256: Path, tmp_path: Path) -> None:
    """The signal itself, not a simulated KeyboardInterrupt: sent while the base model generates."""
    out = tmp_path / "s"
    args = ["-c", str(TINY_CONFIG), "--model", str(tiny256), "--out", str(out), "--only", "base"]
    proc = _study_process(*args, "--limit", "400")
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "running in-process" in line:
            time.sleep(3)  # into the generation
            proc.send_signal(signal.SIGINT)
            break
    err = "".join(seen) + proc.stderr.read()
    assert proc.wait(timeout=120) == 130, err
    assert "interrupted; run the same command to continue" in err and "Traceback" not in err, err
    assert not out.exists()  # the folder the interrupted first step made goes with it
    assert _study("-c", str(TINY_CONFIG), "--model", str(tiny256), "--out", str(out), "--only", "base",
                  "--limit", "2") == 0
    assert _results(out / "base")["n-samples"]["termnorm_go_term2id_val"]["effective"] == 2


@pytest.mark.slow
def test_the_study_runs_unchanged_under_a_launcher_with_two_processes(tiny256: Path, tmp_path: Path) -> None:
    """torchrun with 2 CPU processes (gloo), what `accelerate launch` runs on 2 GPUs: both train
    (data parallel), the first alone evaluates and reports, and says each step once."""
    out = tmp_path / "ddp"
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "termnorm_eval",
           "study", "-c", str(TINY_CONFIG), "--model", str(tiny256), "--out", str(out), "--no-lexicalization"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "train-go/adapter/termnorm_manifest.json").read_text())
    # 30 rows in batches of 10: 3 batches per epoch, 2 for one process, so 2 steps per epoch
    assert (manifest["processes"], manifest["training"]["global_steps"]) == (2, 40)
    assert (out / "train-go/epochs/epoch-5/adapter_model.safetensors").is_file()
    assert proc.stderr.count("[1/6] base: base model on 8 tasks") == 1  # 4 plain, their 4 RAG mirrors
    assert proc.stderr.count("running, in a process of its own") == 3  # base, eval-go, sweep-go-e5
    for step in ("base", "retrieve", "train-go", "eval-go", "sweep-go-e5", "report"):
        assert records.read_record(out / step) is not None, step
    assert _results(out / "eval-go")["n-samples"]["termnorm_go_term2id_train"]["effective"] == 4
    assert (out / "report.md").is_file()
    # the same launch again: nothing to do
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and proc.stderr.count("finished earlier, reused") == 6, proc.stderr[-3000:]


# ------------------------------------------------------------------ bad input (no model runs)


def test_unknown_config_key_names_key_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "study.yaml"
    cfg.write_text("model: smollm2\nepoch: 3\n")
    one_line_error(["study", "-c", str(cfg)], capsys, str(cfg), "unknown config key 'epoch'")


def test_unknown_model_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(["study", "--model", "m", "--model-type", "gguf", "--out", str(tmp_path / "o")], capsys,
                   "--model-type", "must be one of hf, vllm, vllm-server, local-chat-completions")
    cfg = tmp_path / "study.yaml"
    cfg.write_text("model: m\nmodel_type: llamacpp\n")
    one_line_error(["study", "-c", str(cfg)], capsys, str(cfg), "model_type", "llamacpp")


def test_an_api_model_is_never_trained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(["study", "--model", "m", "--model-type", "local-chat-completions", "--base-url",
                    "http://127.0.0.1:9/v1/chat/completions", "--out", str(tmp_path / "o")], capsys,
                   "API models are evaluated only, never trained")
    one_line_error(["study", "--model", "m", "--model-type", "local-chat-completions", "--no-train",
                    "--out", str(tmp_path / "o")], capsys, "needs --base-url")


def test_vllm_without_the_vllm_distribution_is_one_line_before_any_step(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from termnorm_eval.harness import vllm_engine

    problem = vllm_engine.vllm_distribution_problem()
    if problem is None:
        pytest.skip("the vllm distribution is installed here")
    one_line_error(["study", "--model", str(tiny_model), "--model-type", "vllm", "--no-train",
                    "--out", str(tmp_path / "o")], capsys, "--model-type vllm", problem.split(" (")[0])
    assert not (tmp_path / "o").exists()


def test_vllm_scores_each_adapter_through_lora_local_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from termnorm_eval.harness import vllm_engine
    from termnorm_eval.study.config import StudyConfig
    from termnorm_eval.study.steps import Context, model_args

    monkeypatch.setattr(vllm_engine, "vllm_distribution_problem", lambda: None)  # as on a GPU machine
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 12}))
    ctx = Context(cfg=StudyConfig(model="m", model_type="vllm", model_args="dtype=bfloat16",  # type: ignore[arg-type]
                                  out=str(tmp_path / "o")), out=tmp_path / "o", model_path="/models/llama",
                  model_identity={}, data={}, selected={}, recipe={}, include_path=None)
    assert model_args(ctx) == "pretrained=/models/llama,dtype=bfloat16"
    assert model_args(ctx, adapter) == (f"pretrained=/models/llama,dtype=bfloat16,enable_lora=True,"
                                        f"max_lora_rank=16,lora_local_path={adapter.resolve()}")


def test_bad_values_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    o = str(tmp_path / "o")
    one_line_error(["study", "--model", "m", "--epochs", "5,1", "--out", o], capsys, "--epochs", "increasing")
    one_line_error(["study", "--model", "m", "--epochs", "1.5", "--out", o], capsys, "--epochs", "whole")
    one_line_error(["study", "--model", "m", "--limit", "0", "--out", o], capsys, "--limit")
    one_line_error(["study", "--model", "m"], capsys, "no study folder given")
    one_line_error(["study", "-c", str(tmp_path / "missing.yaml")], capsys, "config file not found")


def test_not_a_study_folder_is_refused(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    one_line_error(["study", "--model", str(tiny_model), "--terminologies", "go", "--out", str(out)], capsys,
                   str(out), "not a study folder")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_directions_and_terminologies_are_checked(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    o = str(tmp_path / "o")
    one_line_error(["study", "--model", str(tiny_model), "--terminologies", "go,cl", "--out", o], capsys,
                   "--terminologies cl", "not in the data")
    one_line_error(["study", "--model", str(tiny_model), "--terminologies", "go", "--directions",
                    "term2id,name2symbol", "--out", o], capsys, "--directions name2symbol")


def test_a_step_needs_the_steps_it_reads(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(["study", "--model", str(tiny_model), "--terminologies", "go", "--directions", "term2id",
                    "--only", "eval", "--out", str(tmp_path / "o")], capsys,
                   "step eval-go needs step train-go, which is not finished")
    one_line_error(["study", "--model", str(tiny_model), "--only", "nosuch", "--out", str(tmp_path / "o")],
                   capsys, "--only nosuch: no such step")


def test_a_recipe_may_not_set_what_the_study_sets(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 1.0e-3\nepochs: 4\n")
    one_line_error(["study", "--model", str(tiny_model), "--recipe", str(recipe), "--out",
                    str(tmp_path / "o")], capsys, "the study sets epochs itself")


def test_every_config_key_is_a_flag_and_documented() -> None:
    from typer.testing import CliRunner

    from termnorm_eval.cli import app
    from termnorm_eval.study.config import FIELDS

    text = CliRunner().invoke(app, ["study", "--help"], env={"COLUMNS": "250"}).output
    for key, f in FIELDS.items():
        assert "--" + key.replace("_", "-") in text, key
        assert f.metadata["help"], key


def test_the_example_configs_load() -> None:
    from termnorm_eval.study.config import build_config

    full = build_config(REPO / "finetune/recipes/study.yaml", {})
    assert full.epochs == [1, 5, 10, 15, 20] and full.terminologies == ["go", "hpo", "gene"]
    assert "Llama-3.1-8B-Instruct" in str(full.model)
    mini = build_config(REPO / "benchmarks/results/mini_study/study.yaml", {})
    assert mini.model == "smollm2" and mini.limit_pairs == 40 and mini.limit == 40
    assert mini.epochs == [1, 5, 10]
    assert mini.directions == ["term2id", "name2symbol", "protein2symbol"]
    transfer = build_config(REPO / "benchmarks/results/mini_study/transfer/study.yaml", {})
    assert transfer.mentions and transfer.limit_pairs == transfer.limit == 30 and transfer.epochs == [10]
    assert Path(str(transfer.recipe)).resolve() == Path(str(mini.recipe)).resolve()  # the committed recipe
    tiny = build_config(TINY_CONFIG, {"model": "x"})
    assert tiny.recipe is not None and Path(tiny.recipe).is_file()


def test_chat_template_auto_scores_as_the_adapters_are_trained(tmp_path: Path) -> None:
    from termnorm_eval.study.config import StudyConfig
    from termnorm_eval.study.steps import Context, uses_chat_template

    with_template, without = tmp_path / "chat", tmp_path / "plain"
    for folder, tok in ((with_template, {"chat_template": "{{ messages }}"}), (without, {})):
        folder.mkdir()
        (folder / "tokenizer_config.json").write_text(json.dumps(tok))

    def chat(folder: Path, recipe: dict | None = None, **cfg: object) -> bool:
        ctx = Context(cfg=StudyConfig(model="m", out=str(tmp_path / "o"), **cfg), out=tmp_path / "o",  # type: ignore[arg-type]
                      model_path=str(folder), model_identity={}, data={}, selected={}, recipe=recipe or {},
                      include_path=None)
        return uses_chat_template(ctx)

    assert chat(with_template) and not chat(without)
    assert not chat(with_template, {"chat_template": "off"}) and chat(without, {"chat_template": "on"})
    assert not chat(with_template, apply_chat_template=False)
    assert chat(without, model_type="local-chat-completions", base_url="http://127.0.0.1:1/v1", train=False)
