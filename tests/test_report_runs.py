"""`termnorm report`: one run made of several results files, the study-protocol task family,
intervals in every output and the answer-validity section, on results written the way lm_eval
writes them (``<output_path>/<model>/results_<stamp>.json`` + ``samples_<task>_<stamp>.jsonl``,
every metric of process_results in each sample record, the results holding their means).

Expected numbers are computed here from the documents, independently of the report's code
(scipy for the Wilson intervals and the exact McNemar test)."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from report_figures import capture_figures
from scipy import stats
from termnorm_cli import one_line_error, run

from termnorm_eval.harness.validity_names import (
    CATEGORIES,
    CLOSE_CATEGORIES,
    CREDIT,
    LABELS,
    PARSE_ERROR,
    categories_for,
    metric,
)
from termnorm_eval.report import make_report, render
from termnorm_eval.report.results import TASK_RE, load_run
from termnorm_eval.terminologies import BUILTIN

BASE_ARGS = {"pretrained": "/m/base", "dtype": "float32"}
PLAIN_TRAIN, PLAIN_VAL = "termnorm_go_term2id_train", "termnorm_go_term2id_val"
NAME_TRAIN = "termnorm_go_id2term_train"
STUDY_TRAIN = "termnorm-study_go_term2id_train"


@dataclass
class Doc:
    item_id: str
    category: str  # its answer-validity category: decides strict and lenient too
    popularity: int
    bin: int
    parse_error: float = 0.0

    @property
    def strict(self) -> float:
        return float(self.category == "correct")

    @property
    def lenient(self) -> float:
        return float(self.category in ("correct", "lenient_only"))

    @property
    def credit(self) -> float:
        """hierarchy_credit: a parent or child answered as a bare identifier (as these documents' are)."""
        return 1.0 if self.category == "correct" else 0.5 if self.category in CLOSE_CATEGORIES else 0.0


def _kind(task: str) -> str:
    m = TASK_RE.match(task)
    assert m is not None
    return next(d.answer_kind for d in BUILTIN[m["key"]].directions if d.name == m["direction"])


def make_docs(n: int, seed: int, weights: dict[str, float], *, parse_errors: float = 0.0) -> list[Doc]:
    rnd = random.Random(seed)
    cats = list(weights)
    return [
        Doc(
            f"GO:{i:07d}",
            rnd.choices(cats, [weights[c] for c in cats])[0],
            popularity=i % 37,
            bin=i % 20,
            parse_error=float(rnd.random() < parse_errors),
        )
        for i in range(n)
    ]


def improve(docs: list[Doc], seed: int, gain: float, loss: float = 0.0) -> list[Doc]:
    """The same documents after fine-tuning: some wrong ones right, some right ones wrong."""
    rnd = random.Random(seed)
    out = []
    for d in docs:
        cat = d.category
        if cat != "correct" and rnd.random() < gain:
            cat = "correct"
        elif cat == "correct" and rnd.random() < loss:
            cat = "nonexistent"  # used on identifier tasks only
        out.append(Doc(d.item_id, cat, d.popularity, d.bin, d.parse_error))
    return out


def write_lm_eval(
    folder: Path,
    model_args: dict[str, str],
    tasks: dict[str, list[Doc]],
    *,
    stamp: str = "2026-05-01T10-00-00.000000",
    version: float = 2.0,
    samples: bool = True,
    validity: bool = True,
) -> Path:
    """<folder>/<model>/results_<stamp>.json (+ samples): metrics are the documents' means."""
    sub = folder / model_args["pretrained"].strip("/").replace("/", "__")
    sub.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for task, docs in tasks.items():
        per_doc = []
        for d in docs:
            vals: dict[str, float] = {"exact_match": d.strict, "lenient_match": d.lenient}
            if validity:
                cats = categories_for(_kind(task))
                assert d.category in cats, (task, d.category)
                vals |= {metric(c): float(c == d.category) for c in cats}
                vals[CREDIT] = d.credit
                if task.startswith("termnorm-study_"):
                    vals[PARSE_ERROR] = d.parse_error
            per_doc.append(vals)
        res: dict[str, Any] = {"alias": task}
        for k in per_doc[0]:
            res[f"{k},extract"] = sum(v[k] for v in per_doc) / len(per_doc)
            res[f"{k}_stderr,extract"] = "N/A"
        res["alignment,extract"] = 0.3
        results[task] = res
        if samples:
            lines = [
                json.dumps(
                    {
                        "doc_id": i,
                        "doc": {
                            "item_id": d.item_id,
                            "answer": d.item_id,
                            "popularity": d.popularity,
                            "bin": d.bin,
                        },
                        "target": d.item_id,
                        "filter": "extract",
                        "metrics": list(v),
                        "resps": [["x"]],
                        "filtered_resps": ["x"],
                        **v,
                    }
                )
                for i, (d, v) in enumerate(zip(docs, per_doc, strict=True))
            ]
            (sub / f"samples_{task}_{stamp}.jsonl").write_text("\n".join(lines) + "\n")
    data = {
        "results": results,
        "versions": dict.fromkeys(tasks, version),
        "n-samples": {t: {"original": 600, "effective": len(d)} for t, d in tasks.items()},
        "config": {"model": "hf", "model_args": model_args},
    }
    f = sub / f"results_{stamp}.json"
    f.write_text(json.dumps(data))
    return f


ID_MIX = {
    "correct": 0.3,
    "lenient_only": 0.05,
    "no_answer": 0.1,
    "wrong_real": 0.25,
    "nonexistent": 0.2,
    "near_miss": 0.1,
}


def _adapter_runs(tmp_path: Path, *, validity: bool = True) -> dict[str, Any]:
    """A base run and an adapter scored as termnorm-finetune prints: <adapter>/eval/{train,val}."""
    train = make_docs(80, 1, ID_MIX)
    val = make_docs(80, 2, ID_MIX)
    after_train, after_val = improve(train, 3, 0.5), improve(val, 4, 0.06, 0.1)
    base = tmp_path / "base"
    write_lm_eval(base, BASE_ARGS, {PLAIN_TRAIN: train, PLAIN_VAL: val}, validity=validity)
    adapter = tmp_path / "adapters" / "smol-go"
    tuned_args = BASE_ARGS | {"peft": str(adapter)}
    write_lm_eval(
        adapter / "eval" / "train", tuned_args, {PLAIN_TRAIN: after_train}, stamp="2026-05-02T10-00-00.000000"
    )
    write_lm_eval(
        adapter / "eval" / "val", tuned_args, {PLAIN_VAL: after_val}, stamp="2026-05-02T11-00-00.000000"
    )
    return {
        "base": base,
        "adapter": adapter,
        "docs": {
            "base": {PLAIN_TRAIN: train, PLAIN_VAL: val},
            "tuned": {PLAIN_TRAIN: after_train, PLAIN_VAL: after_val},
        },
    }


def _csv(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["task"], r["role"]): r for r in csv.DictReader(path.open())}


def _ok(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run(["report", *argv], capsys)
    assert code == 0, err
    return out


def test_task_names_of_both_families() -> None:
    for name, family in [
        (PLAIN_TRAIN, "termnorm"),
        (STUDY_TRAIN, "termnorm-study"),
        ("termnorm-study_gene_name2symbol_val", "termnorm-study"),
    ]:
        m = TASK_RE.match(name)
        assert m is not None and m["family"] == family
    for group in (
        "termnorm-study",
        "termnorm-study-go",
        "termnorm-go",
        "termnorm-stud_go_term2id_train",
        "termnorm-study_go_term2id_dev",  # test is a split (a user's mentions)
    ):
        assert TASK_RE.match(group) is None, group


def test_finetune_layout_is_one_run_however_given(tmp_path: Path, capsys) -> None:
    runs = _adapter_runs(tmp_path)
    eval_dir = runs["adapter"] / "eval"
    # another benchmark's results beside them (same --output_path): not part of the report
    other = eval_dir / "hellaswag" / "m__base"
    other.mkdir(parents=True)
    hellaswag = {"results": {"hellaswag": {"acc,none": 0.3}}, "config": {"model_args": {"pretrained": "x"}}}
    (other / "results_2026-05-09T00-00-00.000000.json").write_text(json.dumps(hellaswag))
    reports = {}
    for name, tuned in {
        "eval": [eval_dir],
        "adapter": [runs["adapter"]],
        "two": [eval_dir / "val", eval_dir / "train"],
    }.items():
        out = tmp_path / f"out-{name}"
        argv = ["--base", str(runs["base"]), "--out", str(out)]
        for t in tuned:
            argv += ["--tuned", str(t)]
        printed = _ok(argv, capsys)
        assert "2 results files" in printed and "smol-go" in printed
        rows = _csv(out / "report.csv")
        assert {r["run"] for r in rows.values()} == {"base", "smol-go"} and len(rows) == 4
        reports[name] = rows
        assert json.loads((out / "report.json").read_text())["tuned"][0]["files"] == [
            str(eval_dir / "train" / "m__base" / "results_2026-05-02T10-00-00.000000.json"),
            str(eval_dir / "val" / "m__base" / "results_2026-05-02T11-00-00.000000.json"),
        ]
    assert reports["eval"] == reports["adapter"] == reports["two"]
    docs = runs["docs"]
    for task in (PLAIN_TRAIN, PLAIN_VAL):
        row = reports["eval"][(task, "tuned")]
        expected = (
            sum(d.strict for d in docs["tuned"][task]) - sum(d.strict for d in docs["base"][task])
        ) / 80
        assert float(row["delta_strict"]) == pytest.approx(expected, abs=1e-6)


def test_same_task_in_two_files_takes_the_newest_with_a_footnote(tmp_path: Path, capsys) -> None:
    runs = _adapter_runs(tmp_path)
    adapter = runs["adapter"]
    args = BASE_ARGS | {"peft": str(adapter)}
    rerun = make_docs(80, 9, {"correct": 1.0})
    newest = write_lm_eval(
        adapter / "eval" / "rerun", args, {PLAIN_TRAIN: rerun}, stamp="2026-06-01T00-00-00.000000"
    )
    older = adapter / "eval" / "train" / "m__base" / "results_2026-05-02T10-00-00.000000.json"
    out = tmp_path / "out"
    _ok(["--base", str(runs["base"]), "--tuned", str(adapter / "eval"), "--out", str(out)], capsys)
    row = _csv(out / "report.csv")[(PLAIN_TRAIN, "tuned")]
    assert float(row["strict"]) == 1.0
    notes = json.loads((out / "report.json").read_text())["notes"]
    (note,) = [n for n in notes if "results files of smol-go" in n]
    assert str(older) in note and str(newest) in note and f"the newest, {newest}, is used" in note
    assert f"[{notes.index(note) + 1}]" in row["notes"]


def test_two_models_in_one_run_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    runs = _adapter_runs(tmp_path)
    other = tmp_path / "adapters" / "smol-hpo"
    write_lm_eval(
        runs["adapter"] / "eval" / "val",
        BASE_ARGS | {"peft": str(other)},
        {PLAIN_VAL: make_docs(10, 5, ID_MIX)},
        stamp="2026-05-03T00-00-00.000000",
    )
    one_line_error(
        ["report", "--base", str(runs["base"]), "--tuned", str(runs["adapter"] / "eval")],
        capsys,
        "one run holds results of two models",
        f"adapter {runs['adapter']}",
        f"adapter {other}",
    )
    # base given as two folders of different models
    one_line_error(
        [
            "report",
            "--base",
            str(runs["base"]),
            "--base",
            str(runs["adapter"] / "eval" / "train"),
            "--tuned",
            str(runs["adapter"] / "eval" / "val"),
        ],
        capsys,
        "--base",
        "/m/base (no adapter)",
        f"/m/base with adapter {runs['adapter']}",
    )


def test_two_task_versions_in_one_run_is_an_error(tmp_path: Path, capsys) -> None:
    runs = _adapter_runs(tmp_path)
    args = BASE_ARGS | {"peft": str(runs["adapter"])}
    write_lm_eval(
        runs["adapter"] / "eval" / "v1",
        args,
        {PLAIN_VAL: make_docs(10, 5, ID_MIX)},
        version=1.0,
        stamp="2026-05-03T00-00-00.000000",
    )
    one_line_error(
        ["report", "--base", str(runs["base"]), "--tuned", str(runs["adapter"] / "eval")],
        capsys,
        "termnorm task version 2.0",
        "and 1.0",
        "one benchmark version",
    )


def test_tuned_paths_of_one_adapter_merge_and_labels(tmp_path: Path, capsys) -> None:
    runs = _adapter_runs(tmp_path)
    ev = runs["adapter"] / "eval"
    base = ["report", "--base", str(runs["base"])]
    one_line_error(
        [*base, "--tuned", str(ev / "train"), "--label", "a", "--tuned", str(ev / "val"), "--label", "b"],
        capsys,
        "--label 'a' and --label 'b' name one run",
    )
    out = tmp_path / "out"
    argv = [*base[1:], "--tuned", str(ev / "train"), "--label", "mine", "--tuned", str(ev / "val")]
    _ok([*argv, "--label", "mine", "--out", str(out)], capsys)
    assert {r["run"] for r in _csv(out / "report.csv").values()} == {"base", "mine"}
    one_line_error([*base, "--tuned", str(ev), "--tuned", str(ev / "val")], capsys, "given twice")


def _wilson_scipy(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    return ci.low, ci.high


def test_intervals_in_csv_json_markdown_and_terminal(tmp_path: Path, capsys) -> None:
    runs = _adapter_runs(tmp_path)
    out = tmp_path / "out"
    printed = _ok(["--base", str(runs["base"]), "--tuned", str(runs["adapter"]), "--out", str(out)], capsys)
    rows = _csv(out / "report.csv")
    md = (out / "report.md").read_text()
    for (task, role), r in rows.items():
        docs = runs["docs"][role][task]
        n = len(docs)
        k = int(sum(d.strict for d in docs))
        lo, hi = _wilson_scipy(k, n)
        assert float(r["strict_lo"]) == pytest.approx(lo, abs=1e-6)
        assert float(r["strict_hi"]) == pytest.approx(hi, abs=1e-6)
        kl = int(sum(d.lenient for d in docs))
        assert float(r["lenient_lo"]) == pytest.approx(_wilson_scipy(kl, n)[0], abs=1e-6)
        cell = f"{100 * k / n:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
        assert cell in md and cell in printed
        if role == "base":
            continue
        before = runs["docs"]["base"][task]
        gained = sum(1 for b, a in zip(before, docs, strict=True) if a.strict > b.strict)
        lost = sum(1 for b, a in zip(before, docs, strict=True) if a.strict < b.strict)
        assert (int(r["gained"]), int(r["lost"])) == (gained, lost)
        assert gained + lost > 0  # else p is 1 by definition, binomtest has no n
        assert float(r["p_strict"]) == pytest.approx(stats.binomtest(gained, gained + lost).pvalue, rel=1e-6)
        # exact McNemar-based interval, from scipy's Clopper-Pearson on gained of the discordant
        cp = stats.binomtest(gained, gained + lost).proportion_ci(method="exact")
        m = gained + lost
        dlo, dhi = m * (2 * cp.low - 1) / n, m * (2 * cp.high - 1) / n
        assert (float(r["delta_strict_lo"]), float(r["delta_strict_hi"])) == pytest.approx(
            (dlo, dhi), abs=1e-6
        )
        assert r["paired"] == "True"
        assert float(r["delta_strict_lo"]) <= float(r["delta_strict"]) <= float(r["delta_strict_hi"])
    train, val = rows[(PLAIN_TRAIN, "tuned")], rows[(PLAIN_VAL, "tuned")]
    # the built data: a clear memorization gain, no clear change held out (marked with †)
    assert float(train["delta_strict_lo"]) > 0 and float(train["p_strict"]) < 0.001
    assert float(val["delta_strict_lo"]) <= 0 <= float(val["delta_strict_hi"])
    dcell = f"{100 * float(val['delta_strict']):+.1f} [{100 * float(val['delta_strict_lo']):+.1f}, "
    assert dcell in md and f"]{render.UNCLEAR}" in md.split(dcell, 1)[1][:12]
    tcell = f"{100 * float(train['delta_strict']):+.1f} [{100 * float(train['delta_strict_lo']):+.1f}, "
    assert render.UNCLEAR not in md.split(tcell, 1)[1].split("|", 1)[0]
    assert render.UNCLEAR_TEXT in md and "Wilson" in md
    summary = json.loads((out / "report.json").read_text())["summary"][0]
    assert summary["memorization_strict_lo"] == pytest.approx(float(train["delta_strict_lo"]), abs=1e-6)
    assert summary["generalization_strict_p"] == pytest.approx(float(val["p_strict"]), abs=1e-6)
    bins = list(csv.DictReader((out / "popularity_bins.csv").open()))
    one = next(b for b in bins if b["run"] == "base" and b["split"] == "train" and b["bin"] == "3")
    docs3 = [d for d in runs["docs"]["base"][PLAIN_TRAIN] if d.bin == 3]
    assert float(one["strict_lo"]) == pytest.approx(
        _wilson_scipy(int(sum(d.strict for d in docs3)), len(docs3))[0], abs=1e-6
    )


def test_unpaired_without_samples(tmp_path: Path, capsys) -> None:
    docs = make_docs(50, 1, ID_MIX)
    write_lm_eval(tmp_path / "b", BASE_ARGS, {PLAIN_TRAIN: docs}, samples=False)
    write_lm_eval(
        tmp_path / "t", BASE_ARGS | {"peft": "/a/x"}, {PLAIN_TRAIN: improve(docs, 2, 0.3)}, samples=False
    )
    out = tmp_path / "out"
    _ok(["--base", str(tmp_path / "b"), "--tuned", str(tmp_path / "t"), "--out", str(out)], capsys)
    row = _csv(out / "report.csv")[(PLAIN_TRAIN, "tuned")]
    assert row["delta_strict"] != "" and row["delta_strict_lo"] == "" and row["p_strict"] == ""
    assert row["paired"] == "False" and row["strict_lo"] != ""  # accuracy intervals need only n
    notes = json.loads((out / "report.json").read_text())["notes"]
    assert any("unpaired difference" in n for n in notes)


def test_validity_section_json_csv_and_stacked_bars(tmp_path: Path, capsys, monkeypatch) -> None:
    name_mix = {
        "correct": 0.2,
        "lenient_only": 0.1,
        "no_answer": 0.2,
        "other_concept": 0.3,
        "not_a_name": 0.2,
    }
    base_docs = {
        PLAIN_TRAIN: make_docs(40, 1, ID_MIX),
        NAME_TRAIN: make_docs(30, 2, name_mix),
        STUDY_TRAIN: make_docs(40, 3, ID_MIX, parse_errors=0.25),
    }
    tuned_docs = {
        PLAIN_TRAIN: improve(base_docs[PLAIN_TRAIN], 4, 0.6),
        NAME_TRAIN: base_docs[NAME_TRAIN],
        STUDY_TRAIN: improve(base_docs[STUDY_TRAIN], 5, 0.3),
    }
    write_lm_eval(tmp_path / "b", BASE_ARGS, base_docs)
    write_lm_eval(tmp_path / "t", BASE_ARGS | {"peft": "/a/lora"}, tuned_docs)
    out = tmp_path / "out"
    printed = _ok(["--base", str(tmp_path / "b"), "--tuned", str(tmp_path / "t"), "--out", str(out)], capsys)
    rep = json.loads((out / "report.json").read_text())
    by = {(v["task"], v["run"]): v for v in rep["validity"]}
    assert len(by) == 6
    for (task, run_label), v in by.items():
        docs = (base_docs if run_label == "base" else tuned_docs)[task]
        # ID_MIX has wrong_real GO answers (an index without the is_a hierarchy): the report shows
        # wrong_real and leaves out the relations, all 0
        cats = categories_for(_kind(task), hierarchy=False)
        counts = {c: sum(1 for d in docs if d.category == c) / len(docs) for c in cats}
        assert v["shares"] == pytest.approx(counts, abs=1e-6)
        assert list(v["shares"]) == [c for c in CATEGORIES if c in v["shares"]]  # display order
        if task == STUDY_TRAIN:
            assert v["parse_error"] == pytest.approx(sum(d.parse_error for d in docs) / len(docs))
        else:
            assert v["parse_error"] is None
    md = (out / "report.md").read_text()
    assert "## Answer validity" in md and "![validity.png](validity.png)" in md
    assert "### GO term2id (study protocol)" in md and "parse error %" in md
    assert LABELS["other_concept"] + " %" in md and LABELS["wrong_other_aspect"] + " %" in md
    assert "Answer validity: GO term2id" in printed
    vrows = list(csv.DictReader((out / "validity.csv").open()))
    assert len(vrows) == 6 and float(next(r for r in vrows if r["task"] == STUDY_TRAIN)["parse_error"]) > 0

    figs = capture_figures(monkeypatch)
    base, tuned = load_run(tmp_path / "b", "base", "--base"), load_run(tmp_path / "t", "lora", "--tuned")
    from termnorm_eval.report import compare

    render.validity_figure(compare.build(base, [tuned]))
    (fig,) = figs
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    used = [
        c
        for c in CATEGORIES
        if any(d.category == c for docs in (base_docs, tuned_docs) for ds in docs.values() for d in ds)
    ]
    assert legend == [LABELS[c] for c in used]
    # stacked: per bar (task x run) the segments add up to 100 %
    tops: dict[float, float] = {}
    for patch in ax.patches:
        x = round(patch.get_x(), 6)
        tops[x] = tops.get(x, 0.0) + patch.get_height()
    assert len(tops) == 3 * 2 and all(t == pytest.approx(100.0) for t in tops.values())


def test_results_without_validity_metrics(tmp_path: Path, capsys) -> None:
    runs = _adapter_runs(tmp_path, validity=False)  # base made before validity metrics, tuned after
    out = tmp_path / "out"
    _ok(["--base", str(runs["base"]), "--tuned", str(runs["adapter"]), "--out", str(out)], capsys)
    rep = json.loads((out / "report.json").read_text())
    base_rows = [v for v in rep["validity"] if v["run"] == "base"]
    assert base_rows and all(v["shares"] is None and v["notes"] for v in base_rows)
    assert any("no answer-validity metrics in base" in n for n in rep["notes"])
    assert "| train (memorization) | base | n/a [" in (out / "report.md").read_text()

    docs = make_docs(20, 1, ID_MIX)
    write_lm_eval(tmp_path / "ob", BASE_ARGS, {PLAIN_TRAIN: docs}, validity=False)
    write_lm_eval(tmp_path / "ot", BASE_ARGS | {"peft": "/a/x"}, {PLAIN_TRAIN: docs}, validity=False)
    out2 = tmp_path / "out2"
    printed = _ok(
        ["--base", str(tmp_path / "ob"), "--tuned", str(tmp_path / "ot"), "--out", str(out2)], capsys
    )
    md = (out2 / "report.md").read_text()
    assert render.VALIDITY_MISSING in printed and render.md_cell(render.VALIDITY_MISSING) in md
    assert "&lt;category&gt;" in md  # shown, not taken for an HTML tag
    assert json.loads((out2 / "report.json").read_text())["validity"] == []
    assert (out2 / "validity.png").read_bytes()[:4] == b"\x89PNG"


def test_study_family_pairs_by_full_task_name(tmp_path: Path, capsys) -> None:
    plain, study = make_docs(40, 1, ID_MIX), make_docs(40, 2, ID_MIX)
    write_lm_eval(tmp_path / "b", BASE_ARGS, {PLAIN_TRAIN: plain, STUDY_TRAIN: study})
    write_lm_eval(
        tmp_path / "t",
        BASE_ARGS | {"peft": "/a/x"},
        {PLAIN_TRAIN: improve(plain, 3, 0.1), STUDY_TRAIN: improve(study, 4, 0.8)},
    )
    out = tmp_path / "out"
    _ok(["--base", str(tmp_path / "b"), "--tuned", str(tmp_path / "t"), "--out", str(out)], capsys)
    rows = _csv(out / "report.csv")
    assert rows[(STUDY_TRAIN, "tuned")]["family"] == "termnorm-study"
    assert rows[(PLAIN_TRAIN, "tuned")]["family"] == "termnorm"
    for task, before, after in [
        (PLAIN_TRAIN, plain, improve(plain, 3, 0.1)),
        (STUDY_TRAIN, study, improve(study, 4, 0.8)),
    ]:
        d = (sum(x.strict for x in after) - sum(x.strict for x in before)) / 40
        assert float(rows[(task, "tuned")]["delta_strict"]) == pytest.approx(d, abs=1e-6)
    md = (out / "report.md").read_text()
    assert "## GO term2id\n" in md and "## GO term2id (study protocol)\n" in md
    summary = json.loads((out / "report.json").read_text())["summary"]
    assert [s["family"] for s in summary] == ["termnorm", "termnorm-study"]


def test_make_report_is_what_the_cli_writes(tmp_path: Path, capsys, monkeypatch) -> None:
    runs = _adapter_runs(tmp_path)
    ev = runs["adapter"] / "eval"
    rep = make_report([runs["base"]], [(None, [ev / "train", ev / "val"])], tmp_path / "lib")
    assert [r.label for r in rep.tuned] == ["smol-go"] and len(rep.tuned[0].files) == 2
    assert sorted(p.name for p in rep.written) == sorted(
        [
            "report.md",
            "report.csv",
            "report.json",
            "popularity_bins.csv",
            "validity.csv",
            "transfer.csv",
            "answer_shown.csv",
            "rag.csv",
            "gains.png",
            "popularity.png",
            "validity.png",
            "transfer.png",
            "rag.png",
        ]
    )
    _ok(["--base", str(runs["base"]), "--tuned", str(ev), "--out", str(tmp_path / "cli")], capsys)
    for name in ("report.md", "report.csv", "report.json", "validity.csv", "popularity_bins.csv",
                 "transfer.csv", "answer_shown.csv"):
        assert (tmp_path / "lib" / name).read_text() == (tmp_path / "cli" / name).read_text(), name
    assert make_report([runs["base"]], [("x", [ev])], None).written == []


def test_gains_figure_error_bars_are_the_paired_intervals(tmp_path: Path, monkeypatch) -> None:
    runs = _adapter_runs(tmp_path)
    from termnorm_eval.report import compare

    rep = compare.build(
        load_run(runs["base"], "base", "--base"), [load_run(runs["adapter"], "lora", "--tuned")]
    )
    figs = capture_figures(monkeypatch)
    render.gains_figure(rep)
    (fig,) = figs
    ax = fig.axes[0]
    segments = [seg for coll in ax.collections for seg in coll.get_segments()]
    rows = {r.split: r for r in rep.rows if r.role == "tuned"}
    spans = sorted((round(float(s[0][1]), 6), round(float(s[1][1]), 6)) for s in segments)
    expected = sorted(
        (round(100 * r.delta_strict_lo, 6), round(100 * r.delta_strict_hi, 6))  # type: ignore[operator]
        for r in rows.values()
    )
    assert spans == expected
    labels = [t.get_text() for t in ax.texts]
    assert any(t.endswith(render.UNCLEAR) for t in labels)  # the held-out change


HIERARCHY_MIX = {
    "correct": 0.2, "lenient_only": 0.05, "no_answer": 0.05, "wrong_parent": 0.15, "wrong_child": 0.1,
    "wrong_ancestor": 0.05, "wrong_descendant": 0.05, "wrong_sibling": 0.1, "wrong_unrelated": 0.15,
    "nonexistent": 0.1,
}


def closer(docs: list[Doc], seed: int) -> list[Doc]:
    """After fine-tuning: some wrong answers become the gold's parent, some become right."""
    rnd = random.Random(seed)
    out = []
    for d in docs:
        cat = d.category
        if cat in ("wrong_unrelated", "nonexistent", "no_answer") and rnd.random() < 0.5:
            cat = "wrong_parent"
        elif cat != "correct" and rnd.random() < 0.15:
            cat = "correct"
        out.append(Doc(d.item_id, cat, d.popularity, d.bin))
    return out


def test_hierarchy_categories_and_credit_with_paired_intervals(tmp_path: Path, capsys, monkeypatch) -> None:
    """GO identifier answers classed by is_a: the report shows the relations (not wrong_real), the
    share of parent/child answers and the hierarchy credit before/after, with intervals computed
    here independently (scipy: Wilson and Clopper-Pearson at 97.5%, averaged)."""
    gene = "termnorm_gene_name2symbol_train"
    base_docs = {PLAIN_TRAIN: make_docs(120, 1, HIERARCHY_MIX), gene: make_docs(40, 2, ID_MIX)}
    tuned_docs = {PLAIN_TRAIN: closer(base_docs[PLAIN_TRAIN], 3), gene: improve(base_docs[gene], 4, 0.3)}
    write_lm_eval(tmp_path / "b", BASE_ARGS, base_docs)
    write_lm_eval(tmp_path / "t", BASE_ARGS | {"peft": "/a/lora"}, tuned_docs)
    out = tmp_path / "out"
    printed = _ok(["--base", str(tmp_path / "b"), "--tuned", str(tmp_path / "t"), "--out", str(out)], capsys)
    rows = _csv(out / "report.csv")

    def wilson975(k: int, n: int) -> tuple[float, float]:
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.975, method="wilson")
        return ci.low, ci.high

    def gain975(gained: int, lost: int, n: int) -> tuple[float, float]:
        m = gained + lost
        cp = stats.binomtest(gained, m).proportion_ci(confidence_level=0.975, method="exact")
        return m * (2 * cp.low - 1) / n, m * (2 * cp.high - 1) / n

    md = (out / "report.md").read_text()
    for role, docs in (("base", base_docs[PLAIN_TRAIN]), ("tuned", tuned_docs[PLAIN_TRAIN])):
        r, n = rows[(PLAIN_TRAIN, role)], len(docs)
        right = sum(d.strict for d in docs)
        close = sum(d.category in CLOSE_CATEGORIES for d in docs)
        assert float(r["credit"]) == pytest.approx(sum(d.credit for d in docs) / n, abs=1e-6)
        assert float(r["close"]) == pytest.approx(close / n, abs=1e-6)
        (alo, ahi), (blo, bhi) = wilson975(int(right), n), wilson975(int(right) + close, n)
        assert (float(r["credit_lo"]), float(r["credit_hi"])) == pytest.approx(
            ((alo + blo) / 2, (ahi + bhi) / 2), abs=1e-6)
        assert float(r["credit_lo"]) <= float(r["credit"]) <= float(r["credit_hi"])
        lo, hi = float(r["credit_lo"]), float(r["credit_hi"])
        cell = f"{100 * float(r['credit']):.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
        assert cell in md and cell in printed
    before, after = base_docs[PLAIN_TRAIN], tuned_docs[PLAIN_TRAIN]
    t = rows[(PLAIN_TRAIN, "tuned")]
    pairs = list(zip(before, after, strict=True))
    n = len(pairs)
    a = gain975(sum(y.strict > x.strict for x, y in pairs), sum(y.strict < x.strict for x, y in pairs), n)
    b = gain975(sum(y.credit > 0 >= x.credit for x, y in pairs),
                sum(x.credit > 0 >= y.credit for x, y in pairs), n)
    base_credit = float(rows[(PLAIN_TRAIN, "base")]["credit"])
    assert float(t["delta_credit"]) == pytest.approx(float(t["credit"]) - base_credit)
    assert (float(t["delta_credit_lo"]), float(t["delta_credit_hi"])) == pytest.approx(
        ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2), abs=1e-6)
    assert float(t["delta_credit_lo"]) > 0  # the built data: many more parents after
    assert rows[(gene, "tuned")]["delta_credit"] != ""  # genes: the strict score, in the CSV alone

    rep = json.loads((out / "report.json").read_text())
    for v in rep["validity"]:
        if v["task"] == PLAIN_TRAIN:  # the relations, in display order right after the right answers
            assert list(v["shares"])[:7] == ["correct", "lenient_only", "wrong_parent", "wrong_child",
                                             "wrong_ancestor", "wrong_descendant", "wrong_sibling"]
            assert "wrong_unrelated" in v["shares"] and "wrong_real" not in v["shares"]
        else:  # genes have no hierarchy
            assert "wrong_real" in v["shares"] and "wrong_parent" not in v["shares"]
    assert "## Wrong but close: is_a parent or child" in md and "### GO term2id" in md
    section = md.split("## Wrong but close", 1)[1]
    assert "gene name2symbol" not in section.split("![")[0]  # only the ontology's table
    assert "Wrong but close: GO term2id" in printed
    assert LABELS["wrong_parent"] + " %" in md
    assert "wrong_parent" in next(csv.DictReader((out / "validity.csv").open()))

    figs = capture_figures(monkeypatch)
    from termnorm_eval.report import compare

    base, tuned = load_run(tmp_path / "b", "base", "--base"), load_run(tmp_path / "t", "lora", "--tuned")
    render.validity_figure(compare.build(base, [tuned]))
    (fig,) = figs
    labels = [x.get_text() for x in fig.axes[0].texts]
    share = sum(d.category in CLOSE_CATEGORIES for d in after) / len(after)
    assert f"lora (is_a parent/child {100 * share:.1f}%)" in labels
