"""`termnorm report` on real lm_eval output: the tiny model before and after a short LoRA fine-tune
(termnorm-finetune), both scored by the real `lm_eval` CLI with --log_samples.

The fine-tune sees the first GO term->ID training documents (exactly the ones `--limit` scores),
so the report must show a memorization gain on the training split and none on held-out items.
Mismatched inputs are derived from these real files by editing one field at a time.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from termnorm_eval.cli import main
from termnorm_eval.report import compare
from termnorm_eval.report.results import load_run
from termnorm_eval.terminologies import TASK_VERSION

pytestmark = pytest.mark.slow

LIMIT = 6
TASKS = ["termnorm_go_term2id_train", "termnorm_go_term2id_val",
         "termnorm_gene_name2symbol_train", "termnorm_gene_name2symbol_val"]
# GO term->ID is fine-tuned; gene name->symbol is scored as an untouched control.
TRAINED = ("go", "term2id")
CONTROL = ("gene", "name2symbol")


def _finetune(model_dir: Path, out: Path) -> Path:
    """termnorm-finetune (issue 4's package, hf backend) on the first LIMIT GO term->ID training
    pairs: exactly the documents `--limit LIMIT` scores on the training task."""
    cmd = [sys.executable, "-m", "finetune", "-m", str(model_dir), "-o", str(out), "-t", "go",
           "--directions", "term2id", "--limit-pairs", str(LIMIT), "--epochs", "100", "--batch-size", "30",
           "--lr", "1e-2", "--lr-scheduler", "constant", "--seed", "0", "--backend", "hf",
           "--chat-template", "off", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "adapter_config.json").is_file()
    return out


def _lm_eval(model_args: str, out: Path, repo: Path) -> Path:
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", model_args,
           "--tasks", ",".join(TASKS), "--include_path", str(repo / "tasks"), "--limit", str(LIMIT),
           "--log_samples", "--output_path", str(out), "--device", "cpu", "--batch_size", "8"]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=dict(os.environ), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def runs(tiny_model: Path, repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report-runs")
    adapter = _finetune(tiny_model, root / "lora-go")
    base = _lm_eval(f"pretrained={tiny_model}", root / "base", repo_root)
    tuned = _lm_eval(f"pretrained={tiny_model},peft={adapter}", root / "tuned", repo_root)
    return {"base": base, "tuned": tuned, "adapter": adapter}


def _report(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["report", *argv])
    captured = capsys.readouterr()
    assert exc.value.code in (0, None), captured.err
    return captured.out


def _results_file(folder: Path) -> Path:
    (f,) = folder.glob("*/results_*.json")
    return f


def test_report_shows_memorization_not_generalization(runs, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    text = _report(["--base", str(runs["base"]), "--tuned", str(runs["tuned"]), "--out", str(out)], capsys)
    assert "GO term2id" in text and "gene name2symbol" in text and "lora-go" in text

    rows = list(csv.DictReader((out / "report.csv").open()))
    assert len(rows) == len(TASKS) * 2  # base + tuned per task
    base_res = json.loads(_results_file(runs["base"]).read_text())["results"]
    tuned_res = json.loads(_results_file(runs["tuned"]).read_text())["results"]
    for r in rows:
        res = (base_res if r["role"] == "base" else tuned_res)[r["task"]]
        assert float(r["strict"]) == pytest.approx(res["exact_match,extract"], abs=1e-6)
        assert float(r["lenient"]) == pytest.approx(res["lenient_match,extract"], abs=1e-6)
        assert int(r["n"]) == LIMIT
        if r["role"] == "tuned":
            b = base_res[r["task"]]
            assert float(r["delta_strict"]) == pytest.approx(
                res["exact_match,extract"] - b["exact_match,extract"], abs=1e-6)
            counts = [int(r[k]) for k in ("gained", "lost", "kept_correct", "kept_wrong")]
            assert sum(counts) == LIMIT
            # gained - lost is the change in the number of correct documents
            assert counts[0] - counts[1] == round(float(r["delta_strict"]) * LIMIT)

    tuned = {(r["terminology"], r["direction"], r["split"]): r for r in rows if r["role"] == "tuned"}
    # The study's contrast in miniature: trained items are learned, held-out ones are not.
    memorized = tuned[(*TRAINED, "train")]
    assert float(memorized["delta_strict"]) >= 0.5 and int(memorized["gained"]) >= 3
    assert float(tuned[(*TRAINED, "val")]["strict"]) <= 0.2
    assert all(float(tuned[(*CONTROL, s)]["strict"]) <= 0.2 for s in ("train", "val"))

    md = (out / "report.md").read_text()
    assert "## GO term2id" in md and "![popularity.png](popularity.png)" in md
    summary = json.loads((out / "report.json").read_text())["summary"]
    assert {(s["terminology"], s["direction"]) for s in summary} == {TRAINED, CONTROL}
    for name in ("gains.png", "popularity.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bins = list(csv.DictReader((out / "popularity_bins.csv").open()))
    assert sum(int(b["n"]) for b in bins) == LIMIT * len(TASKS) * 2


def test_spearman_matches_scipy_on_logged_samples(runs) -> None:
    from scipy.stats import spearmanr

    tuned = load_run(runs["tuned"], "t", "--tuned")
    rep = compare.build(load_run(runs["base"], "base", "--base"), [tuned])
    for row in (r for r in rep.rows if r.run == "t"):
        samples = tuned.tasks[row.task].samples
        assert samples is not None and len(samples) == LIMIT
        pops = [s.popularity for s in samples.values()]
        correct = [s.strict for s in samples.values()]
        if len(set(correct)) < 2:
            assert row.rho is None  # undefined, shown blank, never 0
        else:
            assert row.rho == pytest.approx(spearmanr(pops, correct).statistic)


def _edited_copy(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    f = _results_file(dst)
    data = json.loads(f.read_text())
    edit(data, f)
    f.write_text(json.dumps(data))
    return dst


def test_missing_task_and_other_version_are_marked_not_computed(runs, tmp_path: Path, capsys) -> None:
    def drop_and_bump(data, f):
        del data["results"]["termnorm_go_term2id_val"]
        f.with_name(f.name.replace("results_", "samples_termnorm_go_term2id_val_") + "l").unlink()
        data["versions"]["termnorm_gene_name2symbol_train"] = 1.0  # a result of the v1 benchmark

    tuned = _edited_copy(runs["tuned"], tmp_path / "tuned", drop_and_bump)
    out = tmp_path / "report"
    _report(["--base", str(runs["base"]), "--tuned", str(tuned), "--out", str(out)], capsys)
    rows = {(r["task"], r["role"]): r for r in csv.DictReader((out / "report.csv").open())}
    gone = rows[("termnorm_go_term2id_val", "tuned")]
    assert gone["strict"] == "" and gone["delta_strict"] == "" and gone["notes"]
    bumped = rows[("termnorm_gene_name2symbol_train", "tuned")]
    assert bumped["strict"] != "" and bumped["delta_strict"] == "" and bumped["gained"] == ""
    notes = json.loads((out / "report.json").read_text())["notes"]
    assert any("not in" in n and "termnorm_go_term2id_val" in n for n in notes)
    refused = [n for n in notes if "task version 1.0 in " in n and f"but {TASK_VERSION} in the base run" in n]
    assert len(refused) == 1, notes
    md = (out / "report.md").read_text()
    assert "n/a [" in md
    # Untouched tasks keep their deltas.
    assert rows[("termnorm_go_term2id_train", "tuned")]["delta_strict"] != ""


def test_other_documents_give_no_delta(runs, tmp_path: Path, capsys) -> None:
    """A tuned run scored on other documents (e.g. another --limit): no paired delta."""
    def other_docs(data, f):
        s = f.with_name(f.name.replace("results_", "samples_termnorm_go_term2id_train_") + "l")
        lines = s.read_text().splitlines()
        s.write_text("\n".join(lines[:-1]) + "\n")
        data["n-samples"]["termnorm_go_term2id_train"]["effective"] = LIMIT - 1

    tuned = _edited_copy(runs["tuned"], tmp_path / "tuned", other_docs)
    out = tmp_path / "report"
    _report(["--base", str(runs["base"]), "--tuned", str(tuned), "--out", str(out)], capsys)
    rows = {(r["task"], r["role"]): r for r in csv.DictReader((out / "report.csv").open())}
    assert rows[("termnorm_go_term2id_train", "tuned")]["delta_strict"] == ""
    assert "other documents" in " ".join(json.loads((out / "report.json").read_text())["notes"])


def test_same_file_twice_is_an_error(runs, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", "--base", str(runs["base"]), "--tuned", str(_results_file(runs["base"]))])
    assert exc.value.code == 2
    assert "same results file" in capsys.readouterr().err


def _split_like_finetune(tuned: Path, adapter_eval: Path) -> None:
    """The real tuned results as termnorm-finetune's printed commands lay them out: training-split
    tasks in <adapter>/eval/train, held-out ones in <adapter>/eval/val (each with its samples)."""
    f = _results_file(tuned)
    data = json.loads(f.read_text())
    stamp = f.name[len("results_"):-len(".json")]
    for split, later in (("train", "0"), ("val", "1")):
        part = json.loads(json.dumps(data))
        keep = [t for t in data["results"] if t.endswith(f"_{split}")]
        for section in ("results", "versions", "n-samples", "configs", "higher_is_better", "n-shot"):
            if isinstance(part.get(section), dict):
                part[section] = {k: v for k, v in part[section].items() if k in keep}
        out = adapter_eval / split / f.parent.name
        out.mkdir(parents=True)
        new_stamp = stamp[:-1] + later  # two runs, one after the other
        (out / f"results_{new_stamp}.json").write_text(json.dumps(part))
        for task in keep:
            name = f"samples_{task}_{{}}.jsonl"
            shutil.copy(f.with_name(name.format(stamp)), out / name.format(new_stamp))


def test_finetune_layout_and_intervals_on_real_runs(runs, tmp_path: Path, capsys) -> None:
    from scipy import stats

    from termnorm_eval.report import intervals, render

    adapter_eval = tmp_path / "lora-go" / "eval"
    _split_like_finetune(runs["tuned"], adapter_eval)
    one, two = tmp_path / "one", tmp_path / "two"
    _report(["--base", str(runs["base"]), "--tuned", str(runs["tuned"]), "--out", str(one)], capsys)
    text = _report(["--base", str(runs["base"]), "--tuned", str(adapter_eval), "--out", str(two)], capsys)
    assert "2 results files" in text
    assert (one / "report.csv").read_text() == (two / "report.csv").read_text()

    base = load_run(runs["base"], "base", "--base")
    tuned = load_run(adapter_eval, "lora-go", "--tuned")
    for r in csv.DictReader((two / "report.csv").open()):
        samples = (base if r["role"] == "base" else tuned).tasks[r["task"]].samples
        assert samples is not None
        k = round(sum(s.strict for s in samples.values()))
        ci = stats.binomtest(k, len(samples)).proportion_ci(method="wilson")
        assert (float(r["strict_lo"]), float(r["strict_hi"])) == pytest.approx((ci.low, ci.high), abs=1e-6)
        if r["role"] == "tuned":
            g, lost = int(r["gained"]), int(r["lost"])
            p = 1.0 if g + lost == 0 else stats.binomtest(g, g + lost).pvalue
            assert float(r["p_strict"]) == pytest.approx(p, rel=1e-6)
            assert float(r["delta_strict_lo"]) <= float(r["delta_strict"]) <= float(r["delta_strict_hi"])
            unclear = intervals.includes_zero((float(r["delta_strict_lo"]), float(r["delta_strict_hi"])))
            delta_cell = _md_row(two, r)[5]  # ROW_HEAD: "Δ strict pp [95% CI]"
            assert delta_cell.startswith(f"{100 * float(r['delta_strict']):+.1f} [")
            assert (render.UNCLEAR in delta_cell) == unclear

    rep = json.loads((two / "report.json").read_text())
    # these runs come from this plugin version, whose tasks emit validity_<category>: the shares of
    # every task and run are there (before and after the fine-tune), sum to one, and are drawn
    assert rep["validity"] and render.VALIDITY_MISSING not in text
    for v in rep["validity"]:
        assert v["shares"] is not None and sum(v["shares"].values()) == pytest.approx(1.0, abs=1e-4)
    assert {v["run"] for v in rep["validity"]} >= {"base", "lora-go"}
    png = (two / "validity.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def _md_row(folder: Path, r: dict[str, str]) -> list[str]:
    """The cells of the Markdown row of a CSV row (its task's table, its split and run)."""
    from termnorm_eval.report.render import pair_title
    from termnorm_eval.report.roles import split_title

    md = (folder / "report.md").read_text()
    title = "## " + pair_title(r["terminology"], r["direction"], r["family"])
    section = md.split(title + "\n", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in section.splitlines()
            if ln.startswith("| ")]
    return next(c for c in rows if c[0] == split_title(r["direction"], r["split"]) and c[1] == r["run"])
