"""`termnorm study` evaluates the mention tasks by default (issue 21, item 6's study half): each
selected label direction brings the mention directions that mirror it, in every evaluation (base,
eval-<key>, sweep), train and val; training stays on the label directions (a recipe's
train_forms adds forms); toggling ``mentions`` changes the evaluations' records, not the training's.
No model runs here: the plan and its records are built, not executed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from termnorm_cli import one_line_error

from termnorm_eval.study.config import build_config
from termnorm_eval.study.steps import Context, Step, make_context, plan, steps_per_epoch


def _plan(tiny_model: Path, tmp_path: Path, **settings: Any) -> tuple[Context, dict[str, Step]]:
    # rag off: these are the mention tasks alone (test_study_rag.py adds the retrieval arm's)
    values = {"model": str(tiny_model), "out": str(tmp_path / "o"), "device": "cpu", "epochs": "1,2",
              "lexicalization": False, "rag": False} | settings
    ctx = make_context(build_config(None, values))
    return ctx, {s.name: s for s in plan(ctx)}


def _split_tasks(key: str, *directions: str) -> list[str]:
    return [f"termnorm_{key}_{d}_{s}" for d in directions for s in ("train", "val")]


def test_every_evaluation_scores_the_mention_tasks_of_the_selected_label_directions(
        tiny_model: Path, tmp_path: Path) -> None:
    ctx, steps = _plan(tiny_model, tmp_path, terminologies="go,hpo,gene",
                       directions="term2id,name2symbol,symbol2name")
    assert ctx.selected == {"go": ["term2id"], "hpo": ["term2id"], "gene": ["name2symbol", "symbol2name"]}
    expected = {
        "go": _split_tasks("go", "term2id", "synonym2id"),
        "hpo": _split_tasks("hpo", "term2id", "synonym2id", "lay2id"),
        "gene": _split_tasks("gene", "name2symbol", "symbol2name", "alias2symbol", "prev2symbol"),
    }
    assert {k: sorted(v) for k, v in ctx.tasks.items()} == {k: sorted(v) for k, v in expected.items()}
    assert sorted(steps["base"].inputs["tasks"]) == sorted(t for v in expected.values() for t in v)
    for key, tasks in expected.items():
        assert sorted(steps[f"eval-{key}"].inputs["tasks"]) == sorted(tasks)
        assert sorted(steps[f"sweep-{key}-e1"].inputs["tasks"]) == sorted(tasks)
        # training: the label directions, labels only
        train = steps[f"train-{key}"].inputs
        assert train["directions"] == ctx.selected[key]
        assert train["finetune"]["directions"] == ctx.selected[key]
        assert train["finetune"]["train_forms"] == ["label"]


def test_a_label_direction_without_mention_tasks_brings_none(tiny_model: Path, tmp_path: Path) -> None:
    _, steps = _plan(tiny_model, tmp_path, terminologies="go", directions="id2term")
    assert steps["base"].inputs["tasks"] == _split_tasks("go", "id2term")


def test_mentions_off_evaluates_the_label_tasks_and_reruns_the_evaluations_only(
        tiny_model: Path, tmp_path: Path) -> None:
    _, on = _plan(tiny_model, tmp_path, terminologies="go", directions="term2id")
    _, off = _plan(tiny_model, tmp_path, terminologies="go", directions="term2id", mentions=False)
    assert off["base"].inputs["tasks"] == _split_tasks("go", "term2id")
    for name in ("base", "eval-go", "sweep-go-e1", "report"):
        assert on[name].inputs != off[name].inputs, name  # so these steps run again
    assert on["train-go"].inputs == off["train-go"].inputs  # the adapter is the same one


def test_a_recipes_train_forms_is_trained_and_recorded(tiny_model: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("train_forms: [label, synonym]\nbatch_size: 10\n", encoding="utf-8")
    _, labels = _plan(tiny_model, tmp_path, terminologies="go", directions="term2id", limit_pairs=4)
    _, forms = _plan(tiny_model, tmp_path, terminologies="go", directions="term2id", limit_pairs=4,
                     recipe=str(recipe))
    assert forms["train-go"].inputs["finetune"]["train_forms"] == ["label", "synonym"]
    rows = forms["train-go"].inputs["training_rows"]["count"]
    assert rows > labels["train-go"].inputs["training_rows"]["count"] == 30
    # the sweep's checkpoints are counted on the rows actually trained
    settings = {"directions": ["term2id"], "limit_pairs": 4, "batch_size": 10, "mention_tasks": True}
    assert steps_per_epoch("go", settings | {"train_forms": ["label", "synonym"]}) == -(-rows // 10)
    assert steps_per_epoch("go", settings) == 3
    # the evaluations are those of the labels-only study: the same tasks
    assert forms["base"].inputs["tasks"] == labels["base"].inputs["tasks"]


def test_a_train_forms_kind_no_selected_terminology_has_is_refused_before_any_step(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("train_forms: [label, lay]\n", encoding="utf-8")
    out = tmp_path / "o"
    one_line_error(["study", "--model", str(tiny_model), "--terminologies", "go,gene", "--recipe",
                    str(recipe), "--out", str(out)], capsys,
                   f"{recipe}: train_forms lay: no selected terminology has lay forms for its selected "
                   "directions (go: synonym; gene: alias, prev)")
    assert not out.exists()


def test_each_adapter_trains_the_recipes_kinds_its_terminology_has(tiny_model: Path, tmp_path: Path) -> None:
    """[label, synonym, alias] in a study of GO, HPO and genes: GO and HPO train their synonyms, genes
    their aliases; each adapter says what it trains. A kind is refused only when no terminology has it."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("train_forms: [label, synonym, alias]\n", encoding="utf-8")
    settings = {"terminologies": "go,hpo,gene", "directions": "term2id,name2symbol", "limit_pairs": 4}
    _, labels = _plan(tiny_model, tmp_path, **settings)
    _, forms = _plan(tiny_model, tmp_path, **settings, recipe=str(recipe))
    trained = {k: forms[f"train-{k}"].inputs["finetune"]["train_forms"] for k in ("go", "hpo", "gene")}
    assert trained == {"go": ["label", "synonym"], "hpo": ["label", "synonym"], "gene": ["label", "alias"]}
    for key, kinds in (("go", "synonym"), ("hpo", "synonym"), ("gene", "alias")):
        rows = forms[f"train-{key}"].inputs["training_rows"]["count"]
        assert rows > labels[f"train-{key}"].inputs["training_rows"]["count"], key
        assert forms[f"train-{key}"].describe.endswith(f"labels and {kinds} forms" + (
            " (train_forms synonym: none for gene's directions)" if key == "gene" else
            f" (train_forms alias: none for {key}'s directions)")), forms[f"train-{key}"].describe
    assert labels["train-go"].describe.endswith("epoch(s), labels")
    # the labels-only study's training records are unchanged by the per-terminology rule
    assert all(labels[f"train-{k}"].inputs["finetune"]["train_forms"] == ["label"] for k in trained)


def test_a_mention_direction_in_directions_points_at_its_label_direction(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    one_line_error(["study", "--model", str(tiny_model), "--terminologies", "hpo", "--directions",
                    "term2id,lay2id", "--out", str(out)], capsys,
                   "--directions lay2id: a mention direction;",
                   "select the label direction it mirrors (term2id)")
    assert not out.exists()
