"""Fine-tuning stays on labels by default; ``train_forms`` adds the trained concepts' other usable
forms, never the one a ``_train`` mention task asks (issue 21, item 5)."""

from __future__ import annotations

from typing import Any

import pytest
from finetune_cli import cli

from finetune.config import FinetuneConfig
from finetune.data import build_training_set, gene_owners, usable_forms
from termnorm_eval.errors import TermnormError
from termnorm_eval.harness.dataset import build_docs
from termnorm_eval.splits import store
from termnorm_eval.splits.mentions import fold, pick
from termnorm_eval.terminologies import ANSWER_CUE, BUILTIN, TARGET_DELIMITER, Terminology

ALL_KINDS = {"go": ["synonym"], "hpo": ["synonym", "lay"], "gene": ["alias", "prev"]}


def questions(term: Terminology, prompt: str) -> set[str]:
    """What a row's prompt asks about: the value in the ``{source}`` slot of whichever template of
    the terminology (label or mention direction) the prompt was rendered from."""
    assert prompt.endswith(ANSWER_CUE)
    text = prompt[: -len(ANSWER_CUE)]
    found = set()
    for d in term.all_directions:
        for t in d.templates:
            head, tail = t.format(source="\0", label=term.label, example=term.id_example).split("\0")
            if text.startswith(head) and text.endswith(tail) and len(text) > len(head) + len(tail):
                found.add(text[len(head): len(text) - len(tail)])
    assert found, prompt
    return found


def shown(term: Terminology, rows: list[dict[str, Any]]) -> set[str]:
    """Every question value and every answer of the rows, folded."""
    out = set()
    for row in rows:
        out |= {fold(q) for q in questions(term, row["prompt"])}
        out.add(fold(row["completion"].removeprefix(TARGET_DELIMITER)))
    return out


def train_mention_forms(key: str) -> set[str]:
    """The forms the ``_train`` mention tasks ask (their documents' sources), folded."""
    term = BUILTIN[key]
    forms = {fold(doc["source"]) for m in term.mention_directions for doc in build_docs(key, m.name, "train")}
    assert forms
    return forms


@pytest.mark.parametrize("key", sorted(BUILTIN))
def test_by_default_no_train_mention_form_is_in_a_training_row(key: str) -> None:
    term = BUILTIN[key]
    tset = build_training_set(key, None, None, chat=False)
    assert tset.directions == tuple(d.name for d in term.directions) and not tset.form_pairs
    assert tset.train_forms == ("label",)
    assert not shown(term, tset.rows) & train_mention_forms(key)


@pytest.mark.parametrize("key", sorted(BUILTIN))
def test_train_forms_add_every_usable_form_but_the_asked_ones(key: str) -> None:
    term = BUILTIN[key]
    kinds = ALL_KINDS[key]
    default = build_training_set(key, None, None, chat=False)
    tset = build_training_set(key, None, None, chat=False, train_forms=["label", *kinds])
    assert tset.train_forms == ("label", *kinds)
    # the label rows are those of the default run; the form rows come after them
    assert tset.rows[: len(default.rows)] == default.rows and tset.pairs == default.pairs
    added = tset.rows[len(default.rows):]
    assert len(added) == 5 * len(tset.form_pairs)
    # still: no form a _train mention task asks, as question or answer of any row
    assert not shown(term, tset.rows) & train_mention_forms(key)
    # and every other usable form of the trained concepts, each asked in its mention prompts
    owners = gene_owners(term, None, "the test")
    expected = []
    for kind in kinds:
        for rec in store.load_records(key, "train"):
            other = {fold(f) for f in rec["mentions"].values()}
            expected += [(kind, rec["id"], f) for f in usable_forms(rec, owners).get(kind, [])
                         if fold(f) not in other]
    assert tset.form_pairs == expected and all(tset.form_pairs_per_kind.values())
    by_id = {r["id"]: r for r in store.load_records(key, "train")}
    for i, (kind, rid, form) in enumerate(tset.form_pairs):
        m = next(d for d in term.mention_directions if d.mention == kind)
        rows = added[5 * i: 5 * i + 5]
        assert {q for r in rows for q in questions(term, r["prompt"])} == {form}
        assert all(r["completion"] == f" {m.answer(by_id[rid])}\n" for r in rows)


@pytest.mark.parametrize("key", sorted(BUILTIN))
def test_usable_forms_are_the_ones_the_build_chose_from(key: str) -> None:
    """Recomputed from the records (genes: with the release index), the usable forms give back every
    record's mentions by the build's seeded choice: the trained forms follow the build's rule."""
    term = BUILTIN[key]
    seed = store.read_manifest()["terminologies"][key]["mentions"]["seed"]
    owners = gene_owners(term, None, "the test")
    for split in ("train", "val"):
        for rec in store.load_records(key, split):
            assert pick(usable_forms(rec, owners), seed, rec["id"]) == rec["mentions"], rec["id"]


@pytest.mark.parametrize(("key", "direction", "mention"), [("go", "term2id", "synonym2id"),
                                                           ("gene", "name2symbol", "alias2symbol")])
def test_with_mention_tasks_limit_pairs_trains_the_concepts_of_their_first_documents_too(
        key: str, direction: str, mention: str) -> None:
    n = 7
    labels_only = build_training_set(key, [direction], None, chat=False, limit_pairs=n)
    first = [d["item_id"] for d in build_docs(key, direction, "train")[:n]]
    assert [rid for _, rid in labels_only.pairs] == first
    assert labels_only.mention_directions == ()
    tset = build_training_set(key, [direction], None, chat=False, limit_pairs=n, mention_tasks=True)
    assert mention in [m.name for m in tset.mention_directions]
    trained = {rid for _, rid in tset.pairs}
    for m in BUILTIN[key].mention_directions:
        assert {doc["item_id"] for doc in build_docs(key, m.name, "train")[:n]} <= trained
    label_docs = build_docs(key, direction, "train")
    assert {doc["item_id"] for doc in label_docs[:n]} <= trained
    # no other record, and in store order
    ids = [doc["item_id"] for doc in label_docs]
    assert [rid for _, rid in tset.pairs] == [i for i in ids if i in trained]
    assert len(trained) > n  # here the mention tasks' first documents reach further


def test_a_mention_direction_is_refused_with_a_pointer_to_train_forms(
        tiny_model: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TermnormError, match=r"--directions synonym2id: a mention direction; .* use "
                       r"--train-forms label,synonym with term2id"):
        build_training_set("go", ["term2id", "synonym2id"], None, chat=False)
    code = cli("-m", str(tiny_model), "-o", str(tmp_path / "o"), "-t", "hpo", "--directions", "lay2id")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--train-forms label,lay with term2id" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("key", "directions", "forms", "expected"), [
    ("go", None, ["label", "lay"],
     "--train-forms lay: terminology 'go' has no lay forms (its kinds: synonym)"),
    ("hpo", None, ["label", "alias"], "--train-forms alias: terminology 'hpo' has no alias forms"),
    ("gene", None, ["label", "synonym"], "(its kinds: alias, prev)"),
    ("go", ["id2term"], ["label", "synonym"], "--train-forms synonym: synonym forms are asked for term2id, "
     "which is not among --directions id2term"),
])
def test_a_form_kind_the_run_cannot_train_is_one_line(key: str, directions: list[str] | None,
                                                       forms: list[str], expected: str) -> None:
    with pytest.raises(TermnormError) as e:
        build_training_set(key, directions, None, chat=False, train_forms=forms)
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_a_kind_that_adds_nothing_is_refused() -> None:
    """The first HPO term2id record with a lay form has no second one: training 'lay forms' on it
    alone would silently be the default run."""
    with pytest.raises(TermnormError, match="no trained concept of hpo has a usable lay form besides"):
        build_training_set("hpo", ["term2id"], None, chat=False, limit_pairs=1, train_forms=["label", "lay"])


@pytest.mark.parametrize(("value", "expected"), [
    (["synonym"], "--train-forms must include label"),
    (["label", "obsolete"], "--train-forms must be among label, synonym, lay, alias, prev (got 'obsolete')"),
    ([], "--train-forms must list label"),
])
def test_train_forms_values_are_checked(value: list[str], expected: str) -> None:
    with pytest.raises(TermnormError) as e:
        FinetuneConfig(model="m", output_dir="o", train_forms=value)
    assert str(e.value).startswith(expected)


def test_train_forms_from_flag_and_config_file(tmp_path: Any) -> None:
    from finetune.config import build_config

    required = {"model": "m", "output_dir": "o"}
    assert FinetuneConfig(**required).train_forms == ["label"]
    from_flag = build_config(None, {**required, "train_forms": "label,synonym"})
    assert from_flag.train_forms == ["label", "synonym"]
    cfg = tmp_path / "run.yaml"
    cfg.write_text("train_forms: [label, alias, prev]\n", encoding="utf-8")
    assert build_config(cfg, required).train_forms == ["label", "alias", "prev"]
    cfg.write_text("train_forms: [lay]\n", encoding="utf-8")
    with pytest.raises(TermnormError, match=f"{cfg}: config key 'train_forms' must include label"):
        build_config(cfg, required)


def test_the_manifest_records_train_forms(tiny_model: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    import json

    out = tmp_path / "forms"
    # HPO term2id, --limit-pairs 1 --mention-tasks: HP:0000063 (first record, first lay2id document)
    # and HP:0000068 (first synonym2id document), plus HP:0000068's synonym that synonym2id does not
    # ask: 3 x 5 rows.
    assert cli("-m", str(tiny_model), "-o", str(out), "-t", "hpo", "--directions", "term2id",
               "--train-forms", "label,synonym", "--mention-tasks", "--limit-pairs", "1", "--epochs", "1",
               "--batch-size", "8", "--backend", "hf", "-q") == 0
    manifest = json.loads((out / "termnorm_manifest.json").read_text(encoding="utf-8"))
    data = manifest["data"]
    assert data["train_forms"] == ["label", "synonym"] and data["train_form_pairs_per_kind"] == {"synonym": 1}
    assert (data["train_pairs"], data["rows"]) == (2, 15)
    assert "2 pairs + 1 form pairs x 5 prompts = 15 rows" in capsys.readouterr().err
    assert manifest["hyperparameters"]["mention_tasks"] is True
    tasks = "termnorm_hpo_term2id_train,termnorm_hpo_synonym2id_train,termnorm_hpo_lay2id_train"
    assert f"--tasks {tasks} " in manifest["lm_eval_commands"]["train"]
    assert "--limit 1 " in manifest["lm_eval_commands"]["train"]
