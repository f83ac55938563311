"""termnorm-finetune settings are declared once, in FinetuneConfig: the CLI options, the config
keys, the README table and the TRL/PEFT names all come from its fields (issue 10)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from finetune_cli import cli

from finetune import cli as cli_module
from finetune import docs
from finetune.config import (
    CONFIG_KEYS,
    FIELDS,
    METADATA,
    FinetuneConfig,
    build_config,
    choices,
    flag_name,
    library_kwargs,
    value_kind,
)
from termnorm_eval.errors import TermnormError

REQUIRED = {"model": "some/model", "output_dir": "out"}


def test_committed_readme_table_is_the_generated_one() -> None:
    text = docs.README.read_text(encoding="utf-8")
    assert docs.with_table(text, docs.options_table()) == text, "run: python -m finetune.docs"


def test_readme_table_has_a_row_per_option_with_the_dataclass_defaults() -> None:
    lines = docs.options_table().splitlines()[2:]
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    assert len(cells) == len(CONFIG_KEYS) + 3  # + --config, --resume, --quiet
    rows = {row[1].strip("`"): row for row in cells}
    assert rows["lora_r"][2] == "16" and rows["lora_r"][5] == "PEFT `r`"
    assert rows["learning_rate"][0] == "`--learning-rate`, `--lr`"
    assert rows["model"][2] == "required"
    assert rows["backend"][2:4] == ["auto", "auto, hf, unsloth"]
    assert rows["epochs"][3] == "a number in (0, 10000]"


def test_every_field_is_documented_with_known_metadata() -> None:
    for key, f in FIELDS.items():
        assert set(f.metadata) <= METADATA, (key, set(f.metadata) - METADATA)
        assert f.metadata.get("help"), key
        assert "[" not in f.metadata["help"], key  # rich markup in --help would swallow it


def captured_config(monkeypatch: pytest.MonkeyPatch, *args: str) -> FinetuneConfig:
    """The config that `termnorm-finetune ARGS` would train with (training itself is skipped)."""
    from finetune import train

    seen: list[FinetuneConfig] = []
    monkeypatch.setattr(train, "run", lambda cfg, show_progress=True: seen.append(cfg))
    assert cli(*args) == 0
    assert len(seen) == 1
    return seen[0]


def test_no_flags_give_the_dataclass_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = captured_config(monkeypatch, "-m", REQUIRED["model"], "-o", REQUIRED["output_dir"])
    assert cfg == FinetuneConfig(**REQUIRED)


def _other_value(key: str) -> tuple[list[str], Any]:
    """Command-line arguments that set ``key`` to something other than its default, and that value."""
    default = FIELDS[key].default
    kind, options = value_kind(key), choices(key)
    if kind is bool:
        return [flag_name(key) if not default else f"--no-{flag_name(key)[2:]}"], not default
    if key == "target_modules":
        return [flag_name(key), "q_proj,v_proj"], ["q_proj", "v_proj"]
    if key == "directions":
        return [flag_name(key), "term2id,id2term"], ["term2id", "id2term"]
    if key == "train_forms":
        return [flag_name(key), "label,synonym"], ["label", "synonym"]
    if options:
        other = next(o for o in options if o != default)
        return [flag_name(key), other], other
    if kind is int:
        value = 5 if default is None else default + 1
        return [flag_name(key), str(value)], value
    if kind is float:
        value = (default or 0.0) + 0.25
        return [flag_name(key), str(value)], value
    return [flag_name(key), f"{key}-value"], f"{key}-value"


def test_every_flag_sets_its_field(monkeypatch: pytest.MonkeyPatch) -> None:
    args: list[str] = []
    expected: dict[str, Any] = {}
    for key in CONFIG_KEYS:
        flag_args, expected[key] = _other_value(key)
        args += flag_args
    cfg = captured_config(monkeypatch, *args, "--resume")
    assert dataclasses.asdict(cfg) == {**expected, "resume": True}
    assert all(expected[k] != FIELDS[k].default for k in CONFIG_KEYS)


def test_short_and_alias_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = captured_config(monkeypatch, "-m", "x/y", "-o", "o", "-t", "hpo", "--lr", "0.01")
    assert (cfg.model, cfg.output_dir, cfg.terminology, cfg.learning_rate) == ("x/y", "o", "hpo", 0.01)


def test_generated_options_show_the_dataclass_default_and_parse_none_when_left_out() -> None:
    import typer

    params = {p.name: p for p in typer.main.get_command(cli_module.app).params}
    assert set(params) == {*CONFIG_KEYS, "config", "resume", "quiet"}
    for key in CONFIG_KEYS:
        assert params[key].default is None, key  # so a config file's value is not overridden
        assert params[key].show_default == cli_module.shown_default(key), key
    assert params["lora_r"].show_default == "16" and params["load_in_4bit"].show_default == "on"
    assert params["model"].show_default is False


def test_resume_is_not_a_config_key(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("resume: true\n", encoding="utf-8")
    with pytest.raises(TermnormError, match="unknown config key 'resume'"):
        build_config(cfg, REQUIRED)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("lora_r", 0, "--lora-r must be an integer from 1 to 65536 (got 0)"),
    ("seed", True, "--seed must be an integer from 0 to 4294967295 (got True)"),
    ("epochs", float("inf"), "--epochs must be a number in (0, 10000] (got inf)"),
    ("learning_rate", -1.0, "--learning-rate must be a finite number > 0 (got -1.0)"),
    ("backend", "tpu", "--backend must be one of auto, hf, unsloth (got 'tpu')"),
    ("directions", [], "--directions must name at least one direction (got [])"),
    ("target_modules", ["q_proj", "v.*"], "--target-modules must be all-linear or module names"),
    ("model", None, "no base model given (--model or `model:` in the config file)"),
])
def test_post_init_is_the_one_check(key: str, value: Any, expected: str, tmp_path: Path) -> None:
    """Built directly, from flags or from a config file: the same check, naming where it came from."""
    with pytest.raises(TermnormError) as direct:
        FinetuneConfig(**{**REQUIRED, key: value})
    assert expected in str(direct.value)
    if value is None or isinstance(value, bool):
        return
    tail = expected.split(" ", 1)[1]  # the problem, without the flag
    flag_value = ",".join(value) if isinstance(value, list) else value
    with pytest.raises(TermnormError) as from_flag:
        build_config(None, {**REQUIRED, key: flag_value})
    assert str(from_flag.value).startswith(expected)
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(f"{key}: {json.dumps(value)}\n", encoding="utf-8")  # JSON is YAML
    with pytest.raises(TermnormError) as from_file:
        build_config(cfg_file, REQUIRED)
    assert str(from_file.value).startswith(f"{cfg_file}: config key '{key}' {tail}")


def test_library_names_are_real_knobs_of_trl_and_peft() -> None:
    """A misspelt "trl"/"peft" name would be a TypeError at the first real run."""
    from peft import LoraConfig
    from trl import SFTConfig

    cfg = FinetuneConfig(**REQUIRED)
    trl_params = set(inspect.signature(SFTConfig.__init__).parameters) | {"warmup_ratio"}  # see _sft_config
    assert set(library_kwargs(cfg, "trl")) <= trl_params
    assert set(library_kwargs(cfg, "peft")) <= {f.name for f in dataclasses.fields(LoraConfig)}
    assert library_kwargs(cfg, "peft") == {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0,
                                           "target_modules": "all-linear"}
    assert library_kwargs(cfg, "trl")["num_train_epochs"] == 3.0
    assert library_kwargs(cfg, "unsloth") == {"max_seq_length": 256, "load_in_4bit": True}


def test_sft_config_carries_the_settings_under_trl_names(tmp_path: Path) -> None:
    from finetune.train import _sft_config

    cfg = FinetuneConfig(**REQUIRED, epochs=2.5, batch_size=3, grad_accum=2, lr_scheduler="cosine", seed=9)
    args = _sft_config(cfg, "hf", tmp_path / "ck")
    got = (args.num_train_epochs, args.per_device_train_batch_size, args.gradient_accumulation_steps,
           getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type), args.seed, args.data_seed)
    assert got == (2.5, 3, 2, "cosine", 9, 9)


# ---------------------------------------------------------------- all-linear for libraries without it


def _tiny_phi3() -> Any:
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    config = Phi3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                        num_attention_heads=4, num_key_value_heads=4, pad_token_id=0, bos_token_id=1,
                        eos_token_id=2)
    return Phi3ForCausalLM(config)


def _peft_all_linear(model: Any) -> set[str]:
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(target_modules="all-linear"))
    return {name.rsplit(".", 1)[-1] for name in peft_model.peft_config["default"].target_modules}


def test_all_linear_resolves_to_the_llama_projections(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    from finetune.backends import resolve_target_modules

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    names = resolve_target_modules(model, "all-linear")
    assert names == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert set(names) == _peft_all_linear(model)


def test_all_linear_resolves_to_phi3_names() -> None:
    from finetune.backends import resolve_target_modules

    model = _tiny_phi3()
    names = resolve_target_modules(model, "all-linear")
    assert sorted(names) == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"]  # not the Llama names
    assert "lm_head" not in names
    assert set(names) == _peft_all_linear(_tiny_phi3())


def test_named_target_modules_must_be_layers_of_the_model() -> None:
    from finetune.backends import resolve_target_modules

    model = _tiny_phi3()
    assert resolve_target_modules(model, ["qkv_proj"]) == ["qkv_proj"]
    with pytest.raises(TermnormError, match=r"no layer named q_proj in the model \(its linear layers: "
                                            r"down_proj, gate_up_proj, lm_head, o_proj, qkv_proj"):
        resolve_target_modules(model, ["q_proj"])


# ---------------------------------------------------------------- one spelling of tasks and task folders


def test_scoring_commands_use_the_harness_task_names_and_folder(tmp_path: Path) -> None:
    from finetune.commands import include_path, scoring_commands
    from termnorm_eval.harness import runner
    from termnorm_eval.harness.taskgen import task_name
    from termnorm_eval.terminologies import BUILTIN, SPLITS

    assert include_path(None) == runner.include_path_needed()
    cmds = scoring_commands(base_model="some/model", adapter_dir=tmp_path / "a", key="go",
                            directions=["term2id", "id2term"], data_dir=None, gguf_file=None, chat=False,
                            limit=None)
    assert list(cmds) == list(SPLITS)
    for split, cmd in cmds.items():
        assert f"--tasks {task_name('go', 'term2id', split)},{task_name('go', 'id2term', split)} " in cmd
    # the mention tasks of the same concepts, on the splits that have documents (an added ontology's
    # kind may have forms in one split only)
    hpo = BUILTIN["hpo"]
    lay_val_only = dataclasses.replace(hpo.direction("lay2id"), splits=("val",))
    cmds = scoring_commands(base_model="some/model", adapter_dir=tmp_path / "a", key="hpo",
                            directions=["term2id"], data_dir=None, gguf_file=None, chat=False, limit=None,
                            mention_directions=(hpo.direction("synonym2id"), lay_val_only))
    assert "--tasks termnorm_hpo_term2id_train,termnorm_hpo_synonym2id_train " in cmds["train"]
    val_tasks = "termnorm_hpo_term2id_val,termnorm_hpo_synonym2id_val,termnorm_hpo_lay2id_val"
    assert f"--tasks {val_tasks} " in cmds["val"]
