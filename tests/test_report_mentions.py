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
from report_figures import capture_figures
from scipy import stats
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


# ------------------------------------------------------------------ item 2: trained concepts only


def write_manifest(adapter: Path, key: str, directions: list[str], limit_pairs: int | None,
                   mention_tasks: bool) -> set[str]:
    """The data section termnorm-finetune's manifest records for this training (finetune/train.py),
    from finetune's own training set; returns the record ids it trained."""
    from finetune.data import build_training_set
    from finetune.rundir import MANIFEST_FILE
    from termnorm_eval.sources.mirrors import sha256_file
    from termnorm_eval.splits import store

    tset = build_training_set(key, directions, None, chat=False, limit_pairs=limit_pairs,
                              mention_tasks=mention_tasks)
    adapter.mkdir(parents=True)
    manifest = {"format": 1, "base_model": "/m/base",
                "data": {"data_dir": str(tset.data_dir), "data_manifest_sha256": tset.data_manifest_sha256,
                         "train_split_sha256": sha256_file(store.split_path(key, "train")),
                         "terminology": key, "directions": list(tset.directions),
                         "train_pairs": len(tset.pairs),
                         "train_pairs_per_direction": tset.pairs_per_direction,
                         "train_forms": list(tset.train_forms), "limit_pairs": limit_pairs},
                "hyperparameters": {"terminology": key, "directions": directions, "limit_pairs": limit_pairs,
                                    "mention_tasks": mention_tasks, "data_dir": None}}
    (adapter / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    return {r for _, r in tset.pairs}


GENE_TASKS = [("name2symbol", "train"), ("alias2symbol", "train"), ("prev2symbol", "train"),
              ("name2symbol", "val"), ("alias2symbol", "val")]


def _gene_runs(tmp_path: Path, limit: int = 6) -> dict[str, Any]:
    """A base run and three fine-tuned runs on the first ``limit`` documents of GENE_TASKS, answering
    every one right: the adapter of termnorm-finetune --limit-pairs 6 on name2symbol (no --mention-tasks),
    a GO adapter (cross-eval), and an adapter whose folder is not here."""
    tasks = {f"termnorm_gene_{d}_{s}": docs("gene", d, s, limit) for d, s in GENE_TASKS}
    gene, go = tmp_path / "adapters" / "gene", tmp_path / "adapters" / "go"
    trained = write_manifest(gene, "gene", ["name2symbol"], 6, False)
    write_manifest(go, "go", ["term2id"], 6, True)
    write_run(tmp_path / "b", BASE_ARGS, {t: (ds, set()) for t, ds in tasks.items()})
    for name, adapter in (("gene", gene), ("go", go), ("gone", tmp_path / "adapters" / "gone")):
        write_run(tmp_path / name, BASE_ARGS | {"peft": str(adapter)},
                  {t: (ds, set(ids(ds))) for t, ds in tasks.items()})
    return {"tasks": tasks, "trained": trained}


def test_trained_cells_hold_the_concepts_the_adapter_trained(tmp_path: Path, capsys) -> None:
    runs = _gene_runs(tmp_path)
    out, text = _report(tmp_path, capsys, tmp_path / "b",
                        *((n, tmp_path / n) for n in ("gene", "go", "gone")))
    cells = {(c["direction"], c["cell"], c["run"]): c for c in _csv(out / "transfer.csv")}
    notes = json.loads((out / "report.json").read_text(encoding="utf-8"))["notes"]

    def noted(c: dict[str, str]) -> list[str]:
        return [notes[int(n) - 1] for n in c["notes"].strip("[]").split("] [") if n]

    trained = runs["trained"]
    assert len(trained) == 6
    for direction in ("alias2symbol", "prev2symbol"):
        form = runs["tasks"][f"termnorm_gene_{direction}_train"]
        mine = [i for i in ids(form) if i in trained]
        c = cells[(direction, "trained_form", "gene")]
        assert (int(c["n"]), int(c["untrained"])) == (len(mine), 6 - len(mine))
        if len(mine) < 6:  # tuned right on all, base on none: the gain is 1 on the trained ones
            assert any(f"{6 - len(mine)} of 6 documents" in t and "left out" in t for t in noted(c))
        if mine:
            assert (float(c["tuned"]), float(c["base"]), float(c["delta"])) == (1.0, 0.0, 1.0)
        assert int(cells[(direction, "trained_label", "gene")]["n"]) == 6  # the label's six were trained
    # the README's example: 5 of the first 6 prev2symbol_train documents ask untrained concepts
    assert cells[("prev2symbol", "trained_form", "gene")]["untrained"] == "5"
    # the GO adapter trained no gene: no cells, one line that says so
    assert not any(run == "go" for _, _, run in cells)
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert {(x["direction"], x["run"], x["why"]) for x in data["transfer_left_out"]} == {
        (d, "go", "its adapter trained go") for d in ("alias2symbol", "prev2symbol")}
    # an adapter whose manifest is not here: every document, with a footnote saying so
    c = cells[("alias2symbol", "trained_form", "gone")]
    assert int(c["n"]) == 6 and c["untrained"] == ""
    assert any("trained concepts not known" in t and "all documents of the _train split" in t
               for t in noted(c))
    assert cells[("alias2symbol", "unseen_form", "gone")]["notes"] == ""
    md = (out / "report.md").read_text(encoding="utf-8")
    line = "gene name2symbol / alias2symbol: go (its adapter trained go)"
    assert line in md and line in text


# ------------------------------------------------------------------ item 8: label and form, same concepts


def _mcnemar_p(gained: int, lost: int) -> float:
    return 1.0 if gained + lost == 0 else stats.binomtest(gained, gained + lost).pvalue


def test_the_label_beside_the_form_on_the_same_concepts(tmp_path: Path, capsys) -> None:
    """HPO term2id and lay2id, the first 40 documents of each (the study's --limit 40): the label task
    asks concepts the lay-term task does not (only concepts with a lay term have a document there), so
    the 'both ways' rows score the concepts the two tasks share, and the conditional row a subset."""
    n = 40
    label, form = docs("hpo", "term2id", "train", n), docs("hpo", "lay2id", "train", n)
    adapter = tmp_path / "adapters" / "hpo"
    trained = write_manifest(adapter, "hpo", ["term2id"], n, True)  # as the study: every first n
    shared = [i for i in ids(form) if i in set(ids(label))]
    assert 0 < len(shared) < n and set(ids(label)) | set(ids(form)) <= trained
    tasks = {"termnorm_hpo_term2id_train": label, "termnorm_hpo_lay2id_train": form}
    before = {"termnorm_hpo_term2id_train": set(ids(label[::7])),
              "termnorm_hpo_lay2id_train": set(ids(form[::9]))}
    after = {"termnorm_hpo_term2id_train": set(ids(label[::2])) | set(shared[:4]),
             "termnorm_hpo_lay2id_train": set(ids(form[::3]))}
    write_run(tmp_path / "b", BASE_ARGS, {t: (ds, before[t]) for t, ds in tasks.items()})
    write_run(tmp_path / "t", BASE_ARGS | {"peft": str(adapter)},
              {t: (ds, after[t]) for t, ds in tasks.items()})
    out, _ = _report(tmp_path, capsys, tmp_path / "b", ("lora", tmp_path / "t"))
    cells = {c["cell"]: c for c in _csv(out / "transfer.csv") if c["direction"] == "lay2id"}

    def check(c: dict[str, str], task: str, on: list[str]) -> None:
        b, t = before[task], after[task]
        gained, lost = sum(i in t and i not in b for i in on), sum(i in b and i not in t for i in on)
        assert c["task"] == task and int(c["n"]) == len(on)
        assert float(c["base"]) == pytest.approx(sum(i in b for i in on) / len(on), abs=1e-6)
        assert float(c["tuned"]) == pytest.approx(sum(i in t for i in on) / len(on), abs=1e-6)
        assert (int(c["gained"]), int(c["lost"])) == (gained, lost)
        assert float(c["p_strict"]) == pytest.approx(_mcnemar_p(gained, lost), rel=1e-5)

    check(cells["trained_label"], "termnorm_hpo_term2id_train", ids(label))  # every concept
    check(cells["trained_both_label"], "termnorm_hpo_term2id_train", shared)  # those with a lay term asked
    check(cells["trained_both_form"], "termnorm_hpo_lay2id_train", shared)
    check(cells["trained_form"], "termnorm_hpo_lay2id_train", ids(form))
    memorized = [i for i in shared if i in after["termnorm_hpo_term2id_train"]]
    check(cells["trained_form_if_label"], "termnorm_hpo_lay2id_train", memorized)


# ------------------------------------------------------------------ items 6/7: forms near their label


def test_transfer_without_the_forms_near_their_label(tmp_path: Path, capsys) -> None:
    """HPO exact synonyms: many of the first 40 training forms are near their label (mostly its words, a
    small edit of it, a UK spelling, a plural). The tuned run answers those right and few others: the
    far cells show transfer through genuinely different words, paired like the shown-answer rows."""
    n = 40
    label = docs("hpo", "term2id", "train", n)
    forms = {s: docs("hpo", "synonym2id", s, n) for s in ("train", "val")}
    near = {s: [d["item_id"] for d in ds if d["form_near_label"]] for s, ds in forms.items()}
    assert 0 < len(near["train"]) < n and 0 < len(near["val"]) < n
    adapter = tmp_path / "adapters" / "hpo"
    write_manifest(adapter, "hpo", ["term2id"], n, True)
    tasks = {"termnorm_hpo_term2id_train": label, "termnorm_hpo_synonym2id_train": forms["train"],
             "termnorm_hpo_synonym2id_val": forms["val"]}
    base = {t: set(ids(ds[:3])) for t, ds in tasks.items()}
    tuned = {t: set(ids(ds[:3])) | set(near["train"] + near["val"]) | set(ids(ds[::10]))
             for t, ds in tasks.items()}
    write_run(tmp_path / "b", BASE_ARGS, {t: (ds, base[t]) for t, ds in tasks.items()})
    write_run(tmp_path / "t", BASE_ARGS | {"peft": str(adapter)},
              {t: (ds, tuned[t]) for t, ds in tasks.items()})
    out, text = _report(tmp_path, capsys, tmp_path / "b", ("lora", tmp_path / "t"))
    cells = {c["cell"]: c for c in _csv(out / "transfer.csv") if c["direction"] == "synonym2id"}
    for name, split in (("trained_form_far", "train"), ("unseen_form_far", "val")):
        task = f"termnorm_hpo_synonym2id_{split}"
        far = [i for i in ids(forms[split]) if i not in near[split]]
        c = cells[name]
        b, t = base[task], tuned[task]
        gained, lost = sum(i in t and i not in b for i in far), sum(i in b and i not in t for i in far)
        assert c["task"] == task and (int(c["n"]), int(c["near"])) == (len(far), len(near[split]))
        assert float(c["tuned"]) == pytest.approx(sum(i in t for i in far) / len(far), abs=1e-6)
        assert float(c["base"]) == pytest.approx(sum(i in b for i in far) / len(far), abs=1e-6)
        assert (int(c["gained"]), int(c["lost"])) == (gained, lost)
        assert float(c["p_strict"]) == pytest.approx(_mcnemar_p(gained, lost), rel=1e-5)
        # the near forms were all answered: without them the gain is smaller
        assert float(c["delta"]) < float(cells[name.replace("_far", "")]["delta"])
    md = (out / "report.md").read_text(encoding="utf-8")
    assert transfer.CELL_TITLE["trained_form_far"] in md and transfer.NO_NEAR_INFO not in text


def test_samples_without_the_near_flag_are_one_line(tmp_path: Path, capsys) -> None:
    """Samples of a plugin version before form_near_label: no far cells, one line that says why."""
    tasks = {f"termnorm_gene_{d}_{s}": [{k: v for k, v in d_.items() if k != "form_near_label"}
                                       for d_ in docs("gene", d, s, 8)]
             for d in ("name2symbol", "alias2symbol") for s in ("train", "val")}
    write_run(tmp_path / "b", BASE_ARGS, {t: (ds, set()) for t, ds in tasks.items()})
    write_run(tmp_path / "t", BASE_ARGS | {"peft": "/a/x"},
              {t: (ds, set(ids(ds[:4]))) for t, ds in tasks.items()})
    out, text = _report(tmp_path, capsys, tmp_path / "b", ("lora", tmp_path / "t"))
    assert {c["cell"] for c in _csv(out / "transfer.csv")}.isdisjoint(transfer.FAR_CELLS)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.count(render.md_cell(transfer.NO_NEAR_INFO)) == 1
    assert transfer.NO_NEAR_INFO in text.replace("\n", " ")
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["transfer_near_note"] == transfer.NO_NEAR_INFO


# ------------------------------------------------------------------ item 3: the study's trained concepts


def test_the_studys_report_counts_the_concepts_each_adapter_trained(tmp_path: Path) -> None:
    """limit_pairs 6 trains the records of the first 6 documents of every _train task of the adapter's
    directions (the mention tasks' too): more than 6 concepts. report.md says how many, from the training
    step's settings, and the transfer cells use them although the adapter folder is gone."""
    from types import SimpleNamespace as NS

    from finetune.data import build_training_set
    from termnorm_eval.study import report as study_report

    settings = {"terminology": "gene", "directions": ["name2symbol"], "limit_pairs": 6,
                "mention_tasks": True, "data_dir": None, "train_forms": ["label"], "epochs": 1.0}
    tset = build_training_set("gene", ["name2symbol"], None, chat=False, limit_pairs=6, mention_tasks=True)
    records = {r for _, r in tset.pairs}
    assert len(records) > 6
    out = tmp_path / "study"
    tasks = {f"termnorm_gene_{d}_train": docs("gene", d, "train", 6)
             for d in ("name2symbol", "alias2symbol", "prev2symbol")}
    write_run(out / "base" / "results", BASE_ARGS, {t: (ds, set()) for t, ds in tasks.items()})
    write_run(out / "eval-gene" / "results", BASE_ARGS | {"peft": str(tmp_path / "gone/train-gene/adapter")},
              {t: (ds, set(ids(ds))) for t, ds in tasks.items()})
    cfg = NS(model_type="hf", model="tiny", epochs=[1], sweep=[], limit_pairs=6, limit=6, train=False)
    steps = {name: NS(name=name, kind=kind, inputs=inputs) for name, kind, inputs in (
        ("base", "base", {}), ("train-gene", "train", {"finetune": settings}),
        ("eval-gene", "eval", {"adapter_of": "train-gene"}), ("report", "report", {}))}
    ctx = NS(cfg=cfg, model_path=out / "tiny", selected={"gene": ["name2symbol"]}, out=out, steps=steps)
    stage = tmp_path / "stage"
    stage.mkdir()
    got = study_report.write(ctx, stage, ["base", "train-gene", "eval-gene", "report"])  # type: ignore[arg-type]
    md = got["report_md"]
    header = md.split("\n## ", 1)[0]
    assert "training pairs per direction" not in header
    assert f"gene {len(records)} (name2symbol {len(records)})" in header
    cells = _csv(stage / "transfer.csv")
    assert cells and all(c["untrained"] == "0" for c in cells
                         if c["cell"] in ("trained_label", "trained_form"))
    assert "trained concepts not known" not in md


def test_each_transfer_panel_shows_only_the_runs_that_scored_its_pair(tmp_path: Path, monkeypatch) -> None:
    """The committed CPU transfer study: the GO adapter's run scored only GO tasks, the HPO adapter's only
    HPO tasks. Each panel of transfer.png has the bars and legend of its own run, in the run's colour."""
    from matplotlib import colormaps

    study = Path(__file__).resolve().parent.parent / "benchmarks/results/mini_study/transfer/study-out"
    figs = capture_figures(monkeypatch)
    base = load_run(study / "base" / "results", "base", "--base")
    tuned = [load_run(study / f"eval-{k}" / "results", f"eval-{k}", "--tuned") for k in ("go", "hpo")]
    render.transfer_figure(compare.build(base, tuned))
    (fig,) = figs
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert set(panels) == {"GO term2id / synonym2id", "HPO term2id / synonym2id", "HPO term2id / lay2id"}
    for title, ax in panels.items():
        run = "eval-go" if title.startswith("GO") else "eval-hpo"
        handles, labels = ax.get_legend_handles_labels()
        assert labels == [f"{run}: base", f"{run}: fine-tuned"], title
        colour = colormaps["tab10"](0 if run == "eval-go" else 1)  # by the run's place among the runs
        assert tuple(handles[1].patches[0].get_facecolor()[:3]) == pytest.approx(colour[:3]), title
