"""`termnorm report` on mention tasks (issue 21 review): what each split of a mention task or a user's
mention table is called, which concepts the transfer cells score (the adapter's manifest says which were
trained), the label beside the form on the same concepts, forms near their label, and shown answers of
tasks no fine-tuned run scored.

The documents are the shipped splits' own (``build_docs``: real item ids, gold answers, forms and flags);
which of them a run answers right is chosen here, and lm-eval's files are written the way it writes them
(results with the documents' means, samples with every metric). Expected numbers are counted here from
those choices, intervals and p-values from scipy.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from termnorm_cli import run

from termnorm_eval.harness.dataset import build_docs
from termnorm_eval.harness.validity_names import CATEGORIES, CREDIT, metric
from termnorm_eval.report import compare, render, roles, transfer
from termnorm_eval.report.results import load_run

BASE_ARGS = {"pretrained": "/m/base", "dtype": "float32"}
STAMP = "2026-05-01T10-00-00.000000"


def docs(key: str, direction: str, split: str, n: int | None = None) -> list[dict[str, Any]]:
    """The first ``n`` documents of a shipped task (what --limit n scores)."""
    return build_docs(key, direction, split)[:n]


Scored = dict[str, tuple[list[dict[str, Any]], set[str]]]  # task -> (documents, item ids answered right)


def write_run(folder: Path, model_args: dict[str, str], tasks: Scored, *, stamp: str = STAMP,
              samples: bool = True, total: dict[str, int] | None = None) -> Path:
    """<folder>/<model>/results_<stamp>.json (+ samples) of ``tasks``: task -> (documents, item ids
    answered right). A wrong answer is a nonexistent identifier (a category of every identifier task)."""
    sub = folder / model_args["pretrained"].strip("/").replace("/", "__")
    sub.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for task, (ds, right) in tasks.items():
        per_doc = []
        for d in ds:
            ok = float(d["item_id"] in right)
            cat = "correct" if ok else "nonexistent"
            per_doc.append({"exact_match": ok, "lenient_match": ok, CREDIT: ok,
                            "answer_in_prompt": float(d["answer_in_prompt"]),
                            **{metric(c): float(c == cat) for c in CATEGORIES}})
        res: dict[str, Any] = {"alias": task}
        for k in per_doc[0]:
            res[f"{k},extract"] = sum(v[k] for v in per_doc) / len(per_doc)
        results[task] = res
        if samples:
            lines = [json.dumps({"doc_id": i, "doc": d, "target": d["answer"], "filter": "extract",
                                 "resps": [["x"]], "filtered_resps": ["x"], **v})
                     for i, (d, v) in enumerate(zip(ds, per_doc, strict=True))]
            (sub / f"samples_{task}_{stamp}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = {"results": results, "versions": dict.fromkeys(tasks, 3.0),
            "n-samples": {t: {"original": (total or {}).get(t, len(d)), "effective": len(d)}
                          for t, (d, _) in tasks.items()},
            "config": {"model": "hf", "model_args": model_args}}
    f = sub / f"results_{stamp}.json"
    f.write_text(json.dumps(data), encoding="utf-8")
    return f


def ids(ds: Iterable[dict[str, Any]]) -> list[str]:
    return [d["item_id"] for d in ds]


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(encoding="utf-8")))


def _report(tmp_path: Path, capsys: pytest.CaptureFixture[str], base: Path, *tuned: tuple[str, Path]
            ) -> tuple[Path, str]:
    out = tmp_path / "report"
    argv = ["report", "--base", str(base), "--out", str(out)]
    for label, path in tuned:
        argv += ["--tuned", str(path), "--label", label]
    code, text, err = run(argv, capsys)
    assert code == 0, err
    return out, text


def two_runs(tmp_path: Path, tasks: dict[str, list[dict[str, Any]]], right_after: int) -> compare.Report:
    """The report of a base run answering nothing right and a tuned run answering the first
    ``right_after`` documents of every task right."""
    write_run(tmp_path / "b", BASE_ARGS, {t: (ds, set()) for t, ds in tasks.items()})
    write_run(tmp_path / "t", BASE_ARGS | {"peft": "/a/x"},
              {t: (ds, set(ids(ds[:right_after]))) for t, ds in tasks.items()})
    base, tuned = load_run(tmp_path / "b", "base", "--base"), load_run(tmp_path / "t", "x", "--tuned")
    return compare.build(base, [tuned])


def capture_figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    figs: list[Any] = []

    def keep(fig: Any, dpi: int = 150) -> bytes:
        figs.append(fig)
        return b"\x89PNG fake"

    monkeypatch.setattr(render, "figure_png", keep)
    return figs


def _md_rows(md: str, heading: str) -> list[list[str]]:
    """The table rows (cells) of the section under ``heading``."""
    section = md.split(heading + "\n", 1)[1].split("\n#", 1)[0]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in section.splitlines()
            if ln.startswith("| ") and not ln.startswith("| ---")][1:]


# ------------------------------------------------------------------ item 1: what a split measures


def test_a_mention_tasks_train_split_is_concept_transfer_not_memorization(tmp_path: Path, capsys) -> None:
    """GO term2id and synonym2id, a user's HPO lay-term table (test split): only the label task is in the
    memorization/generalization summary and gains.png; the others' tables say what their splits are."""
    tasks = {f"termnorm_go_{d}_{s}": docs("go", d, s, 12) for d in ("term2id", "synonym2id")
             for s in ("train", "val")}
    tasks["termnorm_mylay_mention2id_test"] = docs("hpo", "lay2id", "val", 12)
    before = {t: (ds, set(ids(ds[:2]))) for t, ds in tasks.items()}
    after = {t: (ds, set(ids(ds[:9]))) for t, ds in tasks.items()}
    write_run(tmp_path / "b", BASE_ARGS, before)
    write_run(tmp_path / "t", BASE_ARGS | {"peft": str(tmp_path / "no-adapter")}, after)
    out, text = _report(tmp_path, capsys, tmp_path / "b", ("lora", tmp_path / "t"))
    md = (out / "report.md").read_text(encoding="utf-8")
    summary = json.loads((out / "report.json").read_text(encoding="utf-8"))["summary"]
    assert [(s["terminology"], s["direction"]) for s in summary] == [("go", "term2id")]
    rows = _md_rows(md, "## Summary")
    assert [r[0] for r in rows] == ["GO term2id"]  # no all-n/a row for the user's table
    assert "synonym2id" in md.split("## Summary", 1)[1].split("\n## ", 1)[0]  # the line that says why
    assert "memorization" not in "".join(r[0] for r in _md_rows(md, "## GO synonym2id"))
    assert [r[0] for r in _md_rows(md, "## GO synonym2id")][::2] == [
        roles.split_title("synonym2id", "train"), roles.split_title("synonym2id", "val")]
    assert "concept transfer" in roles.split_title("synonym2id", "train")
    assert _md_rows(md, "## MYLAY mention2id")[0][0] == roles.TEST_TITLE
    assert "train (memorization)" in [r[0] for r in _md_rows(md, "## GO term2id")]
    assert "memorization" not in roles.split_title("mention2id", "test")
    for title in (roles.split_title("synonym2id", "train"), roles.TEST_TITLE):
        assert title in text


def test_gains_figure_holds_the_label_tasks_only(tmp_path: Path, monkeypatch) -> None:
    tasks = {f"termnorm_gene_{d}_{s}": docs("gene", d, s, 10) for d in ("name2symbol", "alias2symbol")
             for s in ("train", "val")}
    rep = two_runs(tmp_path, tasks, 6)
    figs = capture_figures(monkeypatch)
    render.gains_figure(rep)
    ticks = [t.get_text() for t in figs[0].axes[0].get_xticklabels()]
    assert ticks == ["gene name2symbol"]
    legend = [t.get_text() for t in figs[0].axes[0].get_legend().get_texts()]
    assert all("memorization" in x or "generalization" in x for x in legend)


# ------------------------------------------------------------------ item 11: a user's table's categories


def test_a_users_table_gets_the_categories_and_credit_of_its_label_direction(tmp_path: Path, capsys) -> None:
    hpo = docs("hpo", "lay2id", "val", 10)
    genes = docs("gene", "alias2symbol", "val", 10)
    tasks = {"termnorm_mylay_mention2id_test": hpo, "termnorm_mygenes_mention2symbol_test": genes}
    rep = two_runs(tmp_path, tasks, 5)
    hpo_cats = rep.validity_categories[("termnorm", "mylay", "mention2id")]
    gene_cats = rep.validity_categories[("termnorm", "mygenes", "mention2symbol")]
    # what term2id and name2symbol get: the is_a relations for an ontology, wrong_real for genes
    assert "wrong_parent" in hpo_cats and "wrong_real" not in hpo_cats
    assert "wrong_real" in gene_cats and "wrong_parent" not in gene_cats
    assert render.credit_pairs(rep) == [("termnorm", "mylay", "mention2id")]


# ------------------------------------------------------------------ item 9: shown answers, no comparable run


def test_shown_answers_of_a_task_no_tuned_run_scored_are_not_called_none(tmp_path: Path, capsys) -> None:
    """The base run scored protein2symbol, whose documents 1 and 2 show their symbol; the tuned run
    did not: there is no gain to show, but it is not true that no document shows its answer."""
    protein, names = docs("gene", "protein2symbol", "train", 10), docs("gene", "name2symbol", "train", 10)
    assert [d["answer_in_prompt"] for d in protein].count(True) == 2
    assert not any(d["answer_in_prompt"] for d in names)
    write_run(tmp_path / "b", BASE_ARGS, {"termnorm_gene_protein2symbol_train": (protein, set()),
                                          "termnorm_gene_name2symbol_train": (names, set())})
    write_run(tmp_path / "t", BASE_ARGS | {"peft": "/a/x"},
              {"termnorm_gene_name2symbol_train": (names, set(ids(names[:5])))})
    out, text = _report(tmp_path, capsys, tmp_path / "b", ("lora", tmp_path / "t"))
    md = (out / "report.md").read_text(encoding="utf-8")
    assert render.md_cell(transfer.NONE_SHOWN) not in md and transfer.NONE_SHOWN not in text
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    note = data["answer_shown_note"]
    assert "termnorm_gene_protein2symbol_train" in note and "no fine-tuned run" in note
    assert render.md_cell(note) in md and _csv(out / "answer_shown.csv") == []
