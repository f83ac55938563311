"""The transfer report on real lm-eval output (issue 21, items 6 and 3): the tiny model before and after a
short LoRA fine-tune on gene name->symbol LABELS (--limit-pairs 6, no --mention-tasks: the first 6
name2symbol records), both scored by `termnorm eval` with --log_samples on the first 6 documents of the
label tasks and the mention tasks that mirror them (alias2symbol, prev2symbol, whose first documents ask
mostly untrained concepts; GO term2id and synonym2id as an untrained terminology), plus protein2symbol,
whose training documents show their answer. The report reads the trained concepts from the adapter's
real termnorm_manifest.json.

Expected numbers are counted here from the samples files lm-eval wrote (json, not the report's reader),
intervals and p-values from scipy.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from scipy import stats
from termnorm_cli import run

from termnorm_eval.report import render, transfer

pytestmark = pytest.mark.slow

LIMIT = 6
GENE = ["termnorm_gene_name2symbol_train", "termnorm_gene_name2symbol_val",
        "termnorm_gene_alias2symbol_train", "termnorm_gene_alias2symbol_val",
        "termnorm_gene_prev2symbol_train", "termnorm_gene_protein2symbol_train"]
GO = ["termnorm_go_term2id_train", "termnorm_go_synonym2id_train"]
TASKS = GENE + GO
MENTION_TASKS = [t for t in TASKS if t.split("_")[2] in transfer.MIRRORS]
LABEL = "lora|<b>gene</b>"  # a label that must go through md_cell


def _finetune(model_dir: Path, out: Path) -> Path:
    """termnorm-finetune (hf backend) on the first LIMIT gene name->symbol training pairs: labels only."""
    cmd = [sys.executable, "-m", "finetune", "-m", str(model_dir), "-o", str(out), "-t", "gene",
           "--directions", "name2symbol", "--limit-pairs", str(LIMIT), "--epochs", "100",
           "--batch-size", "30", "--lr", "1e-2", "--lr-scheduler", "constant", "--seed", "0",
           "--backend", "hf", "--chat-template", "off", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _eval(model_args: str, out: Path) -> Path:
    from termnorm_eval.cli import main

    try:
        main(["eval", "--model-args", model_args, "--tasks", ",".join(TASKS), "--limit", str(LIMIT),
              "--device", "cpu", "--batch-size", "8", "--output-path", str(out), "--log-samples"])
    except SystemExit as e:
        assert not e.code, e.code
    return out


@pytest.fixture(scope="module")
def runs(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("transfer-runs")
    adapter = _finetune(tiny_model, root / "lora-gene")
    base = _eval(f"pretrained={tiny_model},dtype=float32", root / "base")
    tuned = _eval(f"pretrained={tiny_model},dtype=float32,peft={adapter}", root / "tuned")
    return {"base": base, "tuned": tuned}


@pytest.fixture(scope="module")
def reported(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The --out folder of `termnorm report` on the two runs."""
    from termnorm_eval.cli import main

    out = tmp_path_factory.mktemp("transfer-report") / "report"
    try:
        main(["report", "--base", str(runs["base"]), "--tuned", str(runs["tuned"]), "--label", LABEL,
              "--out", str(out)])
    except SystemExit as e:
        assert not e.code, e.code
    return out


def _samples(folder: Path, task: str) -> dict[str, dict[str, Any]]:
    """The logged documents of ``task`` by item id, as lm-eval wrote them."""
    (path,) = folder.glob(f"*/samples_{task}_*.jsonl")
    recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["doc"]["item_id"]: r for r in recs}


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(encoding="utf-8")))


def _f(x: str) -> float | None:
    return None if x == "" else float(x)


def _wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    return ci.low, ci.high


def _mcnemar_p(gained: int, lost: int) -> float:
    return 1.0 if gained + lost == 0 else stats.binomtest(gained, gained + lost).pvalue


def _right(rec: dict[str, Any]) -> bool:
    return rec["exact_match"] >= 1.0


def _trained(runs: dict[str, Path]) -> set[str]:
    """The concepts --limit-pairs LIMIT trained: the first LIMIT name2symbol training records, which
    are the first LIMIT documents of its task (store order)."""
    return set(_samples(runs["base"], "termnorm_gene_name2symbol_train"))


def _cell_docs(runs: dict[str, Path], c: dict[str, str]) -> list[str]:
    """The documents a cell scores, counted here: its task's, the trained ones on the training split,
    those the other task of the pair also asks for the both-ways and conditional cells, the forms not
    near their label for the far cells."""
    task, split = c["task"], transfer.CELL_SPLIT[c["cell"]]
    tuned = _samples(runs["tuned"], task)
    ids = [i for i in tuned if split == "val" or i in _trained(runs)]
    label_task = f"termnorm_gene_{c['label_direction']}_{split}"
    form_task = f"termnorm_gene_{c['direction']}_{split}"
    if "both" in c["cell"] or c["cell"] == "trained_form_if_label":
        other = _samples(runs["tuned"], form_task if task == label_task else label_task)
        ids = [i for i in ids if i in other]
        if c["cell"] == "trained_form_if_label":
            ids = [i for i in ids if _right(other[i])]
    if c["cell"] in transfer.FAR_CELLS:
        ids = [i for i in ids if not tuned[i]["doc"]["form_near_label"]]
    return ids


def test_cells_are_hand_counts_on_the_trained_concepts(runs, reported) -> None:
    out = reported
    cells = _csv(out / "transfer.csv")
    rows = {(r["task"], r["role"]): r for r in _csv(out / "report.csv")}
    # the adapter trained genes: GO's pair has no cells, and a line says why
    pairs = [("termnorm", "gene", "alias2symbol"), ("termnorm", "gene", "prev2symbol")]
    assert sorted({(c["family"], c["terminology"], c["direction"]) for c in cells}) == pairs
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [(x["direction"], x["why"]) for x in data["transfer_left_out"]] == [
        ("synonym2id", "its adapter trained gene")]
    assert data["trained"][LABEL]["records"] == LIMIT and data["trained"][LABEL]["terminology"] == "gene"
    assert len(cells) == len(pairs) * len(transfer.CELLS)  # the samples say which forms are near their label
    trained = _trained(runs)
    for c in cells:
        assert c["run"] == LABEL and c["label_direction"] == transfer.MIRRORS[c["direction"]]
        split = transfer.CELL_SPLIT[c["cell"]]
        asked = c["label_direction"] if c["cell"] in transfer.LABEL_CELLS else c["direction"]
        assert c["task"] == f"termnorm_{c['terminology']}_{asked}_{split}"
        pair = {f"termnorm_gene_{c[k]}_{split}" for k in ("label_direction", "direction")}
        needs = pair if ("both" in c["cell"] or c["cell"] == "trained_form_if_label") else {c["task"]}
        if not needs <= set(TASKS):  # a task it needs was not scored: no numbers, a note that says so
            assert c["n"] == c["base"] == c["tuned"] == c["delta"] == "" and c["notes"], c["cell"]
            continue
        before, after = _samples(runs["base"], c["task"]), _samples(runs["tuned"], c["task"])
        on = _cell_docs(runs, c)
        if c["cell"] in ("trained_label", "trained_form"):
            assert int(c["untrained"]) == sum(i not in trained for i in after)
        if len(on) == LIMIT and c["cell"] in ("trained_label", "trained_form", "unseen_label", "unseen_form"):
            base, tuned = rows[(c["task"], "base")], rows[(c["task"], "tuned")]  # every document: the row
            for mine, theirs in (("base", base["strict"]), ("tuned", tuned["strict"]),
                                 ("delta", tuned["delta_strict"]), ("p_strict", tuned["p_strict"])):
                assert _f(c[mine]) == pytest.approx(_f(theirs), abs=1e-6), (c["task"], mine)
        assert int(c["n"]) == len(on), (c["cell"], c["direction"])
        if not on:
            assert c["tuned"] == c["base"] == ""
            continue
        kb, kt = sum(_right(before[i]) for i in on), sum(_right(after[i]) for i in on)
        m = len(on)
        assert float(c["base"]) == pytest.approx(kb / m, abs=1e-6)
        assert float(c["tuned"]) == pytest.approx(kt / m, abs=1e-6)
        assert (float(c["base_lo"]), float(c["base_hi"])) == pytest.approx(_wilson(kb, m), abs=1e-6)
        assert (float(c["tuned_lo"]), float(c["tuned_hi"])) == pytest.approx(_wilson(kt, m), abs=1e-6)
        gained = sum(1 for i in on if _right(after[i]) and not _right(before[i]))
        lost = sum(1 for i in on if _right(before[i]) and not _right(after[i]))
        assert (int(c["gained"]), int(c["lost"])) == (gained, lost)
        assert float(c["p_strict"]) == pytest.approx(_mcnemar_p(gained, lost), rel=1e-5)
        assert float(c["delta_lo"]) <= float(c["delta"]) <= float(c["delta_hi"])
    by = {(c["direction"], c["cell"]): c for c in cells}
    # the labels it was trained on are memorized; GO, not trained, stays where it was
    assert float(by[("alias2symbol", "trained_label")]["delta"]) >= 0.5
    assert float(rows[("termnorm_go_term2id_train", "tuned")]["strict"]) <= 0.2
    # most of the first prev2symbol_train documents ask concepts it did not train: left out, and said
    prev = by[("prev2symbol", "trained_form")]
    assert int(prev["untrained"]) > 0 and int(prev["n"]) == LIMIT - int(prev["untrained"])
    assert any("left out" in data["notes"][int(n) - 1] for n in prev["notes"].strip("[]").split("] ["))


def test_conditional_transfer_is_a_hand_count_from_the_samples(runs, reported) -> None:
    cells = {(c["direction"], c["cell"]): c for c in _csv(reported / "transfer.csv")}
    label_tuned = _samples(runs["tuned"], "termnorm_gene_name2symbol_train")
    trained = _trained(runs)
    checked = 0
    for direction in ("alias2symbol", "prev2symbol"):
        task = f"termnorm_gene_{direction}_train"
        form_base, form_tuned = _samples(runs["base"], task), _samples(runs["tuned"], task)
        shared = set(form_tuned) & set(label_tuned)
        # documents of one concept share its item_id across the label and mention tasks: same gold
        # symbol, asked through another word
        assert shared
        for i in shared:
            assert form_tuned[i]["doc"]["answer"] == label_tuned[i]["doc"]["answer"]
            assert form_tuned[i]["doc"]["source"] != label_tuned[i]["doc"]["source"]
        memorized = sorted(i for i in shared & trained if _right(label_tuned[i]))
        k = sum(_right(form_tuned[i]) for i in memorized)
        kb = sum(_right(form_base[i]) for i in memorized)
        gained = sum(1 for i in memorized if _right(form_tuned[i]) and not _right(form_base[i]))
        lost = sum(1 for i in memorized if _right(form_base[i]) and not _right(form_tuned[i]))
        c = cells[(direction, "trained_form_if_label")]
        assert c["task"] == task and int(c["n"]) == len(memorized)
        if not memorized:
            assert c["tuned"] == c["base"] == ""
            continue
        checked += 1
        assert float(c["tuned"]) == pytest.approx(k / len(memorized), abs=1e-6)
        assert float(c["base"]) == pytest.approx(kb / len(memorized), abs=1e-6)
        m = len(memorized)
        assert (float(c["tuned_lo"]), float(c["tuned_hi"])) == pytest.approx(_wilson(k, m), abs=1e-6)
        assert (float(c["base_lo"]), float(c["base_hi"])) == pytest.approx(_wilson(kb, m), abs=1e-6)
        assert (int(c["gained"]), int(c["lost"])) == (gained, lost)
        assert float(c["p_strict"]) == pytest.approx(_mcnemar_p(gained, lost), rel=1e-5)
        assert float(c["delta_lo"]) <= float(c["delta"]) <= float(c["delta_hi"])
    assert checked  # the fine-tune memorized some label whose concept is asked through a form


def test_gains_without_shown_answers_are_hand_counts(runs, reported) -> None:
    rows = {r["task"]: r for r in _csv(reported / "answer_shown.csv")}
    with_shown = []
    for task in TASKS:
        before, after = _samples(runs["base"], task), _samples(runs["tuned"], task)
        shown = {i for s in (before, after) for i, r in s.items() if r["answer_in_prompt"] == 1.0}
        if not shown:
            assert task not in rows
            continue
        with_shown.append(task)
        r = rows[task]
        assert r["run"] == LABEL and int(r["n"]) == LIMIT and int(r["shown"]) == len(shown)
        hidden = [i for i in before if i not in shown]
        gained = sum(1 for i in hidden if _right(after[i]) and not _right(before[i]))
        lost = sum(1 for i in hidden if _right(before[i]) and not _right(after[i]))
        assert float(r["delta_hidden"]) == pytest.approx((gained - lost) / len(hidden), abs=1e-6)
        kb = sum(_right(before[i]) for i in hidden)
        assert float(r["base_hidden"]) == pytest.approx(kb / len(hidden), abs=1e-6)
        assert float(r["p_hidden"]) == pytest.approx(_mcnemar_p(gained, lost), rel=1e-5)
        sg = sum(_right(after[i]) - _right(before[i]) for i in shown)
        assert float(r["delta_shown"]) == pytest.approx(sg / len(shown), abs=1e-6)
        # the gain on all documents is the report's row
        assert float(r["delta"]) == pytest.approx(
            (sum(map(_right, after.values())) - sum(map(_right, before.values()))) / LIMIT, abs=1e-6)
    # protein names holding their gene's symbol among the first training documents; a held-out gene name
    assert {"termnorm_gene_protein2symbol_train", "termnorm_gene_name2symbol_val"} <= set(with_shown)
    assert sorted(rows) == sorted(with_shown)


def test_the_section_in_markdown_terminal_json_and_figure(runs, reported, capsys) -> None:
    out = reported
    code, text, err = run(["report", "--base", str(runs["base"]), "--tuned", str(runs["tuned"]),
                           "--label", LABEL], capsys)
    assert code == 0, err
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Concept transfer: labels vs other forms" in md and "## Answer shown in the prompt" in md
    for title in ("gene name2symbol / alias2symbol", "gene name2symbol / prev2symbol"):
        assert f"### {title}\n" in md and f"Concept transfer: {title}" in text
    left = "GO term2id / synonym2id: lora\\|&lt;b&gt;gene&lt;/b&gt; (its adapter trained gene)"
    assert "### GO term2id / synonym2id" not in md and left in md
    section = md.split("### gene name2symbol / alias2symbol\n", 1)[1].split("\n### ", 1)[0]
    table = [ln for ln in section.splitlines() if ln.startswith("| ")]
    assert table[0] == "| " + " | ".join(render.TRANSFER_HEAD) + " |"
    assert [ln.split(" | ")[0][2:] for ln in table[1:]] == [transfer.CELL_TITLE[c] for c in transfer.CELLS]
    # the run's label is escaped in every table (issue 20): no live HTML, no split cell
    assert "lora\\|&lt;b&gt;gene&lt;/b&gt;" in section and "<b>" not in md
    assert "![transfer.png](transfer.png)" in md and transfer.NO_MENTIONS not in md
    assert (out / "transfer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert len(data["transfer"]) == 2 * len(transfer.CELLS) and data["transfer_note"] is None
    assert {r["task"] for r in data["answer_shown"]} == {r["task"] for r in _csv(out / "answer_shown.csv")}
    # the summary and gains.png: the label tasks only; the mention tasks' splits are named for what they are
    assert [s["direction"] for s in data["summary"]] == ["term2id", "name2symbol", "protein2symbol"]
    assert "alias2symbol" in data["summary_note"] and "train (memorization)" not in md.split(
        "## gene alias2symbol\n", 1)[1].split("\n## ", 1)[0]


def _without_mentions(src: Path, dst: Path) -> Path:
    """A copy of a run folder without its mention tasks (results entries and samples files)."""
    shutil.copytree(src, dst)
    (f,) = dst.glob("*/results_*.json")
    data = json.loads(f.read_text(encoding="utf-8"))
    for section in ("results", "versions", "n-samples", "configs", "higher_is_better", "n-shot"):
        if isinstance(data.get(section), dict):
            data[section] = {k: v for k, v in data[section].items() if k not in MENTION_TASKS}
    data["groups"] = {}
    data["group_subtasks"] = {}
    f.write_text(json.dumps(data), encoding="utf-8")
    for task in MENTION_TASKS:
        for s in dst.glob(f"*/samples_{task}_*.jsonl"):
            s.unlink()
    return dst


def test_without_mention_tasks_the_section_is_one_line(runs, tmp_path: Path, capsys) -> None:
    base = _without_mentions(runs["base"], tmp_path / "base")
    tuned = _without_mentions(runs["tuned"], tmp_path / "tuned")
    out = tmp_path / "report"
    code, text, err = run(["report", "--base", str(base), "--tuned", str(tuned), "--out", str(out)], capsys)
    assert code == 0, err
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.count(render.md_cell(transfer.NO_MENTIONS)) == 1 and "Concept transfer:" in text
    assert "## Concept transfer" not in md and "transfer.png)" not in md
    assert _csv(out / "transfer.csv") == [] and (out / "transfer.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["transfer"] == [] and data["transfer_note"] == transfer.NO_MENTIONS
    assert "## Answer shown in the prompt" in md  # the label tasks' shown answers are still reported


def test_without_samples_the_shown_gain_is_the_unpaired_difference_of_the_means(runs, tmp_path: Path,
                                                                               capsys) -> None:
    """Results files of this version without samples: the gain without the shown documents is the
    difference of the runs' exact_match_hidden, with no interval and the footnote of unpaired gains."""
    copies = []
    for name in ("base", "tuned"):
        dst = tmp_path / name
        shutil.copytree(runs[name], dst)
        for f in dst.rglob("samples_*.jsonl"):
            f.unlink()
        copies.append(dst)
    out = tmp_path / "report"
    code, _, err = run(["report", "--base", str(copies[0]), "--tuned", str(copies[1]), "--out", str(out)],
                       capsys)
    assert code == 0, err
    results = {name: json.loads(next(d.glob("*/results_*.json")).read_text(encoding="utf-8"))["results"]
               for name, d in zip(("base", "tuned"), copies, strict=True)}
    rows = {r["task"]: r for r in _csv(out / "answer_shown.csv")}
    shown_tasks = {t for t in TASKS if results["tuned"][t]["answer_in_prompt,extract"] > 0}
    assert sorted(rows) == sorted(shown_tasks) and shown_tasks
    notes = json.loads((out / "report.json").read_text(encoding="utf-8"))["notes"]
    for task, r in rows.items():
        b, t = results["base"][task], results["tuned"][task]
        assert float(r["delta_hidden"]) == pytest.approx(
            t["exact_match_hidden,extract"] - b["exact_match_hidden,extract"], abs=1e-6)
        assert int(r["shown"]) == round(t["answer_in_prompt,extract"] * LIMIT)
        assert r["paired"] == "False" and r["delta_hidden_lo"] == r["p_hidden"] == r["delta_shown"] == ""
        assert any("need --log_samples" in notes[int(n) - 1] for n in r["notes"].strip("[]").split("] ["))
    # and the conditional cell says it needs the samples
    cond = [c for c in _csv(out / "transfer.csv") if c["cell"] == "trained_form_if_label"]
    assert cond and all(c["tuned"] == "" and c["notes"] for c in cond)


def _study_layout(runs: dict[str, Path], out: Path) -> None:
    """The two runs where a study keeps them: <out>/<step>/results/<model>/..."""
    for step, src in (("base", runs["base"]), ("eval-gene", runs["tuned"])):
        shutil.copytree(src, out / step / "results")


def test_the_studys_report_md_has_the_transfer_section(runs, reported, tmp_path: Path) -> None:
    from termnorm_eval.study import report as study_report

    out = tmp_path / "study"
    _study_layout(runs, out)
    cfg = SimpleNamespace(model_type="hf", model="tiny", epochs=[100], sweep=[], limit_pairs=LIMIT,
                          limit=LIMIT, train=False)
    settings = {"terminology": "gene", "directions": ["name2symbol"], "limit_pairs": LIMIT, "data_dir": None,
                "train_forms": ["label"], "mention_tasks": False}  # as _finetune trained it
    steps = {name: SimpleNamespace(name=name, kind=kind, inputs=inputs) for name, kind, inputs in (
        ("base", "base", {}), ("train-gene", "train", {"finetune": settings}),
        ("eval-gene", "eval", {"adapter_of": "train-gene"}), ("report", "report", {}))}
    ctx = SimpleNamespace(cfg=cfg, model_path=out / "tiny", selected={"gene": ["name2symbol"]}, out=out,
                          steps=steps)
    stage = tmp_path / "stage"
    stage.mkdir()
    got = study_report.write(ctx, stage, ["base", "train-gene", "eval-gene", "report"])  # type: ignore[arg-type]
    md = got["report_md"]
    assert f"gene {LIMIT} (name2symbol {LIMIT})" in md.split("\n## ", 1)[0]  # the header counts them
    assert "### Concept transfer: labels vs other forms" in md  # one level down in the study's report
    assert "#### gene name2symbol / alias2symbol" in md
    assert "![report/transfer.png](report/transfer.png)" in md
    assert "### Answer shown in the prompt" in md
    for name in ("transfer.png", "transfer.csv", "answer_shown.csv"):
        assert name in got["files"] and (stage / name).is_file()
    # the training step's settings give the cells the adapter's manifest gives `termnorm report`
    numbers = ("cell", "direction", "n", "base", "tuned", "delta", "untrained", "near")
    study = [[c[k] for k in numbers] for c in _csv(stage / "transfer.csv")]
    assert study == [[c[k] for k in numbers] for c in _csv(reported / "transfer.csv")]
