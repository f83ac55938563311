"""`termnorm study`'s retrieval arm (issue 22, item 6), on by default: a `retrieve` step scores bm25 on
the plain X->ID tasks of the study, and every evaluation scores the retrieval-augmented mirror of each
of them beside it (the same documents with the shipped candidates). No model runs here: the plan and
its records are built, not executed; test_study_rag_run.py runs one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from termnorm_cli import one_line_error

from termnorm_eval.study.config import build_config
from termnorm_eval.study.names import rag_name
from termnorm_eval.study.steps import Context, Step, make_context, plan


def _plan(tiny_model: Path, tmp_path: Path, **settings: Any) -> tuple[Context, dict[str, Step]]:
    values = {"model": str(tiny_model), "out": str(tmp_path / "o"), "device": "cpu", "epochs": "1",
              "lexicalization": False} | settings
    ctx = make_context(build_config(None, values))
    return ctx, {s.name: s for s in plan(ctx)}


def test_the_arm_adds_a_retrieve_step_and_the_rag_mirror_of_every_x_to_id_task(
        tiny_model: Path, tmp_path: Path) -> None:
    ctx, steps = _plan(tiny_model, tmp_path, terminologies="go,gene",
                       directions="term2id,id2term,name2symbol,symbol2name")
    names = list(steps)
    assert names.index("retrieve") == names.index("base") + 1  # a base model that cannot run stops first
    retrieved = steps["retrieve"].inputs["tasks"]
    # X->ID only: labels and forms in, identifiers and symbols out (never id2term, symbol2name)
    assert sorted(retrieved) == sorted(
        f"termnorm_{k}_{d}_{s}" for k, d in (("go", "term2id"), ("go", "synonym2id"), ("gene", "name2symbol"),
                                             ("gene", "alias2symbol"), ("gene", "prev2symbol"))
        for s in ("train", "val"))
    for key in ("go", "gene"):
        plain = [t for t in ctx.tasks[key] if t.startswith("termnorm_")]
        rag = [t for t in ctx.tasks[key] if t.startswith("termnorm-rag_")]
        assert sorted(rag) == sorted(rag_name(t) for t in plain if t in retrieved)
        assert steps[f"eval-{key}"].inputs["tasks"] == ctx.tasks[key]
    assert "retrieve" in steps["report"].depends


def test_rag_off_has_no_retrieve_step_and_the_training_is_the_same(tiny_model: Path, tmp_path: Path) -> None:
    _, on = _plan(tiny_model, tmp_path, terminologies="hpo", directions="term2id")
    _, off = _plan(tiny_model, tmp_path, terminologies="hpo", directions="term2id", rag=False)
    assert "retrieve" not in off and "retrieve" in on
    assert not any(t.startswith("termnorm-rag_") for t in off["base"].inputs["tasks"])
    assert on["base"].inputs != off["base"].inputs  # the evaluations rerun
    assert on["train-hpo"].inputs == off["train-hpo"].inputs  # the adapter is the same one


def test_rag_k_is_recorded_and_checked(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    _, default = _plan(tiny_model, tmp_path, terminologies="hpo", directions="term2id")
    _, five = _plan(tiny_model, tmp_path, terminologies="hpo", directions="term2id", rag_k=5)
    assert "rag_k" not in default["base"].inputs and five["base"].inputs["rag_k"] == 5
    one_line_error(["study", "--model", "x", "--rag-k", "21"], capsys, "--rag-k")


def test_without_an_x_to_id_direction_there_is_no_retrieve_step(tiny_model: Path, tmp_path: Path) -> None:
    ctx, steps = _plan(tiny_model, tmp_path, terminologies="go", directions="id2term")
    assert "retrieve" not in steps
    assert ctx.tasks["go"] == ["termnorm_go_id2term_train", "termnorm_go_id2term_val"]
