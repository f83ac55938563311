"""`termnorm report` on the committed CPU mini-study (real SmolLM2 runs of benchmark version 2, gene
name->symbol and protein->symbol before and after a LoRA): gains with and without the documents whose
prompt shows the answer, judged for these older samples from their logged question as the current tasks
judge it; no mention tasks, so the transfer section is one line. Bad shown flags are one-line errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from scipy import stats
from termnorm_cli import one_line_error, run

from termnorm_eval.harness.dataset import build_docs
from termnorm_eval.report import render, transfer

STUDY = Path(__file__).resolve().parent.parent / "benchmarks/results/mini_study/study-out"
BASE, TUNED = STUDY / "base/results", STUDY / "eval-gene/results"
GENE_TASKS = [f"termnorm_gene_{d}_{s}" for d in ("name2symbol", "protein2symbol") for s in ("train", "val")]


def _samples(folder: Path, task: str) -> dict[str, dict]:
    (path,) = folder.glob(f"*/samples_{task}_*.jsonl")
    return {r["doc"]["item_id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def _report(tmp_path: Path, capsys, base: Path = BASE, tuned: Path = TUNED) -> tuple[Path, str]:
    out = tmp_path / "report"
    code, text, err = run(["report", "--base", str(base), "--tuned", str(tuned), "--out", str(out)], capsys)
    assert code == 0, err
    return out, text


def test_gene_gains_without_the_documents_that_show_their_answer(tmp_path: Path, capsys) -> None:
    out, text = _report(tmp_path, capsys)
    rows = {r["task"]: r for r in csv.DictReader((out / "answer_shown.csv").open(encoding="utf-8"))}
    assert sorted(rows) == sorted(GENE_TASKS)  # GO and HPO prompts never show their identifier
    for task in GENE_TASKS:
        before, after = _samples(BASE, task), _samples(TUNED, task)
        assert "answer_in_prompt" not in next(iter(before.values()))["doc"]  # made before the flag
        # the documents the current task flags (its own answer_in_prompt), by concept
        _, _, direction, split = task.split("_")
        flagged = {d["item_id"] for d in build_docs("gene", direction, split) if d["answer_in_prompt"]}
        shown = flagged & set(before)
        hidden = [i for i in before if i not in shown]
        gained = sum(1 for i in hidden if after[i]["exact_match"] > before[i]["exact_match"])
        lost = sum(1 for i in hidden if after[i]["exact_match"] < before[i]["exact_match"])
        r = rows[task]
        assert int(r["shown"]) == len(shown) > 0 and int(r["n"]) == len(before) == 40
        assert float(r["delta_hidden"]) == pytest.approx((gained - lost) / len(hidden), abs=1e-6)
        assert float(r["p_hidden"]) == pytest.approx(stats.binomtest(gained, gained + lost).pvalue, rel=1e-5)
        assert float(r["delta_hidden_lo"]) <= float(r["delta_hidden"]) <= float(r["delta_hidden_hi"])
    # what the README says: the held-out gene gains barely change without the shown documents
    val = rows["termnorm_gene_name2symbol_val"]
    assert (val["shown"], val["delta"], round(float(val["delta_hidden"]), 3)) == ("3", "0.375", 0.351)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Answer shown in the prompt" in md and "Answer shown in the prompt" in text
    # no mention task in these runs: the transfer section is one line, its figure not linked
    assert md.count(render.md_cell(transfer.NO_MENTIONS)) == 1 and "## Concept transfer" not in md
    assert "transfer.png)" not in md and (out / "transfer.png").read_bytes()[:4] == b"\x89PNG"
    assert list(csv.DictReader((out / "transfer.csv").open(encoding="utf-8"))) == []


def test_without_samples_or_flags_the_shown_answers_are_one_line(tmp_path: Path, capsys) -> None:
    """Results files of a version before answer_in_prompt, without samples: nothing tells which
    prompts showed their answer, and the report says so instead of a table."""
    copies = []
    for name, src in (("base", BASE), ("tuned", TUNED)):
        dst = tmp_path / name
        shutil.copytree(src, dst)
        for s in dst.rglob("samples_*.jsonl"):
            s.unlink()
        copies.append(dst)
    out, _ = _report(tmp_path, capsys, *copies)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.count(render.md_cell(transfer.NO_SHOWN_INFO)) == 1 and "## Answer shown" not in md
    assert list(csv.DictReader((out / "answer_shown.csv").open(encoding="utf-8"))) == []


@pytest.mark.parametrize("value", [0.5, "yes", 2])
def test_an_answer_in_prompt_score_other_than_0_or_1_is_one_line(tmp_path: Path, capsys, value) -> None:
    tuned = tmp_path / "tuned"
    shutil.copytree(TUNED, tuned)
    (path,) = tuned.glob("*/samples_termnorm_gene_name2symbol_val_*.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[2])
    rec["answer_in_prompt"] = value
    lines[2] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    one_line_error(["report", "--base", str(BASE), "--tuned", str(tuned)], capsys,
                   f"{path}:3", "answer_in_prompt")


def test_the_readmes_transfer_tables_are_the_committed_studys_cells() -> None:
    """README.md and the mini-study's README quote the committed transfer study's cells (tuned strict
    accuracy with its Wilson interval, documents where not 30): each row of their table is transfer.csv."""
    path = STUDY.parent / "transfer/study-out/report/transfer.csv"
    cells = list(csv.DictReader(path.open(encoding="utf-8")))
    by = {(c["terminology"], c["direction"], c["cell"]): c for c in cells}
    rows = {"GO synonym": ("go", "synonym2id"), "HPO synonym": ("hpo", "synonym2id"),
            "HPO lay term": ("hpo", "lay2id"), "gene alias": ("gene", "alias2symbol"),
            "gene previous symbol": ("gene", "prev2symbol")}
    columns = ("trained_label", "trained_form", "trained_form_far", "unseen_label", "unseen_form")

    def pct(x: str) -> str:
        return f"{100 * float(x):.1f}".removesuffix(".0")

    for readme in (STUDY.parent.parent.parent.parent / "README.md", STUDY.parent / "README.md"):
        text = readme.read_text(encoding="utf-8")
        for title, (key, direction) in rows.items():
            want = []
            for cell in columns:
                c = by[(key, direction, cell)]
                assert float(c["base"]) == 0.0, (key, cell)  # "base: 0 everywhere"
                value = f"{pct(c['tuned'])} [{pct(c['tuned_lo'])}, {pct(c['tuned_hi'])}]"
                if c["n"] != "30":
                    value += f" (n {c['n']})"
                want.append(f"**{value}**" if f"**{value}**" in text else value)
            line = f"| {title} | " + " | ".join(want) + " |"
            assert line in text, (readme.name, line)
