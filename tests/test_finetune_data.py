"""Training rows come from the training split only, in the harness's exact input format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from finetune.commands import include_path, scoring_commands
from finetune.data import build_training_set
from termnorm_eval.errors import TermnormError
from termnorm_eval.harness.dataset import build_docs
from termnorm_eval.splits import store
from termnorm_eval.terminologies import BUILTIN, input_text


@pytest.mark.parametrize("key", sorted(BUILTIN))
def test_held_out_pairs_never_enter_training(key: str) -> None:
    tset = build_training_set(key, None, None, chat=False)
    text = "\n".join(r["prompt"] + r["completion"] for r in tset.rows)
    train_ids = {rid for _, rid in tset.pairs}
    val = store.load_records(key, "val")
    assert val and tset.rows
    for rec in val:
        assert rec["id"] not in train_ids
        # IDs as whole tokens (HGNC:12 must not match inside HGNC:123).
        assert not re.search(re.escape(rec["id"]) + r"(?![0-9])", text), rec["id"]
    # Every question's source value and every answer belongs to a training record.
    term = BUILTIN[key]
    train_values = {str(r[f]) for r in store.load_records(key, "train") for d in term.directions
                    for f in (d.source, d.target) if r.get(f)}
    val_only = {str(r[f]) for r in val for d in term.directions for f in (d.source, d.target)
                if r.get(f)} - train_values
    for row in tset.rows:
        assert row["completion"].strip() not in val_only
        quoted = re.findall(r'"([^"]+)"', row["prompt"])
        assert not set(quoted) & val_only


def test_every_pair_in_all_five_prompts_with_the_bare_answer() -> None:
    tset = build_training_set("go", None, None, chat=False)
    term = BUILTIN["go"]
    records = store.load_records("go", "train")
    n_pairs = sum(d.applies_to(r) for d in term.directions for r in records)
    assert len(tset.pairs) == n_pairs
    assert len(tset.rows) == 5 * n_pairs
    d = term.direction("term2id")
    rec = records[0]
    first = tset.rows[:5]
    assert [r["prompt"] for r in first] == [input_text(d.prompt(rec, term, v)) for v in range(5)]
    assert first[0]["prompt"] == input_text(d.prompt(rec, term, 0))  # the evaluation prompt
    assert all(r["completion"] == " " + rec["id"] + "\n" for r in first)


def test_chat_rows_are_conversational_prompt_completion() -> None:
    tset = build_training_set("hpo", ["id2term"], None, chat=True, limit_pairs=2)
    rec = store.load_records("hpo", "train")[0]
    row = tset.rows[0]
    d = BUILTIN["hpo"].direction("id2term")
    assert row == {
        "prompt": [{"role": "user", "content": input_text(d.prompt(rec, BUILTIN["hpo"], 0))}],
        "completion": [{"role": "assistant", "content": rec["name"]}],
    }


@pytest.mark.parametrize(("key", "direction"), [("go", "term2id"), ("gene", "protein2symbol")])
def test_limit_pairs_follows_the_harness_document_order(key: str, direction: str) -> None:
    n = 7
    tset = build_training_set(key, [direction], None, chat=False, limit_pairs=n)
    docs = build_docs(key, direction, "train")[:n]
    assert [rid for _, rid in tset.pairs] == [doc["item_id"] for doc in docs]
    assert [r["prompt"] for r in tset.rows[::5]] == [doc["input"] for doc in docs]
    assert [r["completion"] for r in tset.rows[::5]] == [" " + doc["answer"] + "\n" for doc in docs]


def _copy_go_split(dst: Path, overlap: bool) -> Path:
    (dst / "go").mkdir(parents=True)
    src = store.shipped_data_dir()
    (dst / "manifest.json").write_text((src / "manifest.json").read_text(encoding="utf-8"), encoding="utf-8")
    train = (src / "go" / "train.jsonl").read_text(encoding="utf-8")
    val = (src / "go" / "val.jsonl").read_text(encoding="utf-8")
    if overlap:
        val = train.splitlines()[3] + "\n" + val
    (dst / "go" / "train.jsonl").write_text(train, encoding="utf-8")
    (dst / "go" / "val.jsonl").write_text(val, encoding="utf-8")
    return dst


def test_overlapping_splits_are_refused(tmp_path: Path) -> None:
    data = _copy_go_split(tmp_path / "data", overlap=True)
    rid = json.loads((data / "go" / "train.jsonl").read_text(encoding="utf-8").splitlines()[3])["id"]
    with pytest.raises(TermnormError, match=f"also in the val split \\(e.g. {rid}"):
        build_training_set("go", None, data, chat=False)


def test_custom_data_dir_commands_point_at_its_tasks(tmp_path: Path) -> None:
    data = _copy_go_split(tmp_path / "data", overlap=False)
    assert include_path(data) == data.resolve()
    cmds = scoring_commands(base_model="org/model", adapter_dir=tmp_path / "a", key="go",
                            directions=("term2id", "id2term"), data_dir=data, gguf_file="m.Q4.gguf",
                            chat=True, limit=None)
    assert "--tasks termnorm_go_term2id_train,termnorm_go_id2term_train" in cmds["train"]
    assert "--tasks termnorm_go_term2id_val,termnorm_go_id2term_val" in cmds["val"]
    assert f"--include_path {data.resolve()}" in cmds["val"]
    assert "pretrained=org/model,peft=" in cmds["train"] and ",gguf_file=m.Q4.gguf" in cmds["train"]
    assert "--apply_chat_template" in cmds["train"] and "--limit" not in cmds["train"]
