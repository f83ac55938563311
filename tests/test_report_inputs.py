"""`termnorm report` on hostile inputs, through the CLI: impossible metric values, binary and deeply
nested files, broken samples files, and labels or model names that would break Markdown or rich.
Every bad input is exit status 2 with one line naming the file (and line); nothing is printed as a
percentage that cannot be one."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from test_report import STAMP, T_TRAIN, T_VAL, write_run

from termnorm_eval.cli import main
from termnorm_eval.harness.validity_names import PARSE_ERROR, metric

SAMPLES = {T_TRAIN: [("GO:1", "GO:1", 1.0, 50, 19), ("GO:2", "GO:2", 0.0, 1, 0),
                     ("GO:3", "GO:3", 0.0, 9, 9), ("GO:4", "GO:4", 1.0, 30, 15)]}
# after fine-tuning GO:2 is right too: 3 of 4, as the tuned results files say (0.75)
TUNED_SAMPLES = {T_TRAIN: [(i, a, 1.0 if i == "GO:2" else ok, p, b) for i, a, ok, p, b in SAMPLES[T_TRAIN]]}


def _pair(tmp_path: Path, **tuned_kw: object) -> tuple[Path, Path]:
    base = write_run(tmp_path / "b", {T_TRAIN: (0.5, 0.5)}, samples=SAMPLES)
    kw: dict = {"model_args": {"pretrained": "/m/base", "peft": "/a/lora"},
                "samples": TUNED_SAMPLES} | tuned_kw
    return base, write_run(tmp_path / "t", {T_TRAIN: (0.75, 0.75)}, **kw)


def _report_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["report", *argv])
    captured = capsys.readouterr()
    assert exc.value.code == 2, captured.out[-2000:]
    err = captured.err.strip()
    assert err.startswith("termnorm: error:") and "\n" not in err and "Traceback" not in err, err
    return err


def _report_ok(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Stdout of a successful run (main returns, or exits 0 in click's standalone mode)."""
    try:
        main(["report", *argv])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    return capsys.readouterr().out


def _edit(results: Path, edit) -> None:
    data = json.loads(results.read_text())
    edit(data)
    results.write_text(json.dumps(data))  # NaN is written as the harness would: a bare NaN


@pytest.mark.parametrize("value", [True, False, -3.5, 1e308, 1.0000001, "0.5", None, float("nan"),
                                   float("inf"), [0.5], {"v": 1}])
@pytest.mark.parametrize("key", ["exact_match,extract", "lenient_match,extract", "exact_match_low,extract",
                                 metric("wrong_real") + ",extract", PARSE_ERROR + ",extract"])
def test_impossible_metric_values_are_rejected(tmp_path: Path, capsys, key: str, value: object) -> None:
    base, tuned = _pair(tmp_path)
    _edit(tuned, lambda d: d["results"][T_TRAIN].__setitem__(key, value))
    err = _report_error(["--base", str(base), "--tuned", str(tuned)], capsys)
    assert str(tuned) in err and repr(key) in err and "[0, 1]" in err


def test_alignment_is_a_cosine(tmp_path: Path, capsys) -> None:
    base, tuned = _pair(tmp_path)
    for ok in (-0.25, 1.0000001192092896):  # a negative cosine is possible; float32 rounds 1 up
        _edit(tuned, lambda d, ok=ok: d["results"][T_TRAIN].__setitem__("alignment,extract", ok))
        _report_ok(["--base", str(base), "--tuned", str(tuned)], capsys)
    _edit(tuned, lambda d: d["results"][T_TRAIN].__setitem__("alignment,extract", 1.5))
    err = _report_error(["--base", str(base), "--tuned", str(tuned)], capsys)
    assert "'alignment,extract'" in err and "[-1, 1]" in err


@pytest.mark.parametrize("field, value, expected", [
    ("exact_match", True, "exact_match = True is not a number in [0, 1]"),
    ("exact_match", 2.0, "exact_match = 2.0 is not a number in [0, 1]"),
    ("lenient_match", "1", "lenient_match = '1' is not a number in [0, 1]"),
    ("doc.popularity", float("nan"), "doc.popularity = nan is not a whole number"),
    ("doc.popularity", -1, "doc.popularity = -1 is not a whole number"),
    ("doc.bin", 1e300, "doc.bin = 1e+300 is not a whole number"),
    ("doc.bin", "3", "doc.bin = '3' is not a whole number"),
])
def test_impossible_sample_values_name_file_and_line(tmp_path: Path, capsys, field: str, value: object,
                                                      expected: str) -> None:
    base, tuned = _pair(tmp_path)
    s = tuned.with_name(f"samples_{T_TRAIN}_{STAMP}.jsonl")
    lines = s.read_text().splitlines()
    rec = json.loads(lines[2])
    (rec["doc"] if field.startswith("doc.") else rec)[field.removeprefix("doc.")] = value
    lines[2] = json.dumps(rec)
    s.write_text("\n".join(lines) + "\n")
    err = _report_error(["--base", str(base), "--tuned", str(tuned)], capsys)
    assert f"{s}:3: {expected}" in err


HOSTILE_RESULTS = {
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe" * 50, "not UTF-8 text (byte 1)"),
    "invalid UTF-8 inside JSON": (b'{"results": {"\xc3\x28": 1}}', "not UTF-8 text (byte 15)"),
    "100,000 levels of [": (b"[" * 100_000, "nested too deeply"),
    "100,000 levels of {": (b'{"a":' * 100_000, "nested too deeply"),
    "a 5000-digit number": (b'{"results": ' + b"1" * 5000 + b"}", "not valid JSON"),
}


@pytest.mark.parametrize("name", list(HOSTILE_RESULTS))
def test_hostile_results_files(tmp_path: Path, capsys, name: str) -> None:
    base, tuned = _pair(tmp_path)
    content, expected = HOSTILE_RESULTS[name]
    tuned.write_bytes(content)
    err = _report_error(["--base", str(base), "--tuned", str(tuned)], capsys)
    assert f"error: {tuned}" in err and expected in err
    # the same file found through its folder
    err = _report_error(["--base", str(tmp_path / "t"), "--tuned", str(base)], capsys)
    assert f"error: {tuned}" in err and expected in err


@pytest.mark.parametrize("section, value", [("config", ["hf"]), ("n-samples", "x"), ("versions", [1])])
def test_wrong_types_of_sections(tmp_path: Path, capsys, section: str, value: object) -> None:
    base, tuned = _pair(tmp_path)
    _edit(tuned, lambda d: d.__setitem__(section, value))
    err = _report_error(["--base", str(base), "--tuned", str(tuned)], capsys)
    assert str(tuned) in err and repr(section) in err and "not an object" in err


@pytest.mark.parametrize("line, expected", [
    (b"\xff\xfe\x00garbage\x80\x81", ":3: not UTF-8 text"),
    (b'{"doc": {"item_id": "GO:3", "answer": "\xed\xa0\x80"}}', ":3: not UTF-8 text"),  # encoded surrogate
    (b"[" * 100_000, ":3: JSON nested too deeply"),
    (b"[1, 2]", ":3: a JSON list, not a sample object"),
    (b'{"doc": ["GO:3"], "exact_match": 1.0, "filter": "extract"}', ":3: 'doc' is a JSON list"),
])
def test_hostile_samples_files_name_the_line(tmp_path: Path, capsys, line: bytes, expected: str) -> None:
    base, tuned = _pair(tmp_path)
    s = tuned.with_name(f"samples_{T_TRAIN}_{STAMP}.jsonl")
    lines = s.read_bytes().splitlines()
    lines[2] = line
    s.write_bytes(b"\n".join(lines) + b"\n")
    err = _report_error(["--base", str(base), "--tuned", str(tuned)], capsys)
    assert f"{s}{expected}" in err


def test_whole_binary_samples_file(tmp_path: Path, capsys) -> None:
    base, tuned = _pair(tmp_path)
    s = tuned.with_name(f"samples_{T_TRAIN}_{STAMP}.jsonl")
    s.write_bytes(bytes(range(256)) * 40)
    err = _report_error(["--base", str(base), "--tuned", str(tuned)], capsys)
    assert f"{s}:1: not valid JSON" in err or f"{s}:1: not UTF-8" in err


def test_samples_file_shorter_than_the_results_say(tmp_path: Path, capsys) -> None:
    """lm_eval stops writing a samples file at a response it cannot encode (it only warns): the
    partial file must not pass for the run's documents."""
    base, tuned = _pair(tmp_path)
    s = tuned.with_name(f"samples_{T_TRAIN}_{STAMP}.jsonl")
    s.write_text("\n".join(s.read_text().splitlines()[:3]) + "\n")
    err = _report_error(["--base", str(base), "--tuned", str(tuned)], capsys)
    assert f"{s}: 3 documents" in err and "says 4" in err


def _md_cells(row: str) -> list[str]:
    """A GFM table row split into cells the way a Markdown renderer splits it (``\\|`` is no split)."""
    cells, cur, i = [], "", 0
    while i < len(row):
        if row[i] == "\\" and i + 1 < len(row):
            cur += row[i : i + 2]
            i += 2
            continue
        if row[i] == "|":
            cells.append(cur)
            cur = ""
        else:
            cur += row[i]
        i += 1
    return cells[1:]  # before the leading pipe


def test_hostile_labels_and_model_names_are_escaped(tmp_path: Path, capsys) -> None:
    """A label with ``|``, a newline, rich markup, ``$`` (matplotlib's mathtext) and an undecodable
    argv byte (a lone surrogate under surrogateescape), and a results file whose model name holds
    markup and a newline."""
    model = "/m/[/red]base\n| x"
    base = write_run(tmp_path / "b", {T_TRAIN: (0.5, 0.5), T_VAL: (0.0, 0.0)}, samples=SAMPLES,
                     model_args={"pretrained": model})
    tuned = write_run(tmp_path / "t", {T_TRAIN: (0.75, 0.75), T_VAL: (0.25, 0.25)}, samples=TUNED_SAMPLES,
                      model_args={"pretrained": model, "peft": "/a/[bold]lora"})
    label = "a|b\\|c\nd [/red] $\\frac{$ \udcff"
    out = tmp_path / "out[/red]"
    printed = _report_ok(["--base", str(base), "--tuned", str(tuned), "--label", label, "--out", str(out)],
                         capsys)
    assert "[/red]" in printed and "[bold]lora" in printed  # shown, not parsed
    assert "+25.0" in printed and "\ufffd" in printed

    md = (out / "report.md").read_text(encoding="utf-8")
    table_rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    widths = {len(_md_cells(ln)) for ln in table_rows}
    assert len(widths) == 2, widths  # the summary table and the per-task table, each rectangular
    run_cells = [c.strip() for ln in table_rows for c in _md_cells(ln) if "frac" in c]
    assert run_cells and all(c == "a\\|b\\\\\\|c<br>d [/red] $\\\\frac{$ \ufffd" for c in run_cells)
    assert not any(ln.startswith("| x") for ln in md.splitlines())  # the model name stayed on its line
    assert all(ln.startswith(("#", "-", "|", "!", "Strict", "Brackets", "†", "Answer validity",
                              "Concept transfer", "Shown answers", "1.", "2.", "3.")) or not ln
               for ln in md.splitlines()), md
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep["tuned"][0]["label"] == label.replace("\udcff", "\ufffd")
    assert math.isclose(rep["rows"][1]["delta_strict"], 0.25)
    for png in ("gains.png", "popularity.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    # one document gained, none lost: the paired interval includes 0 (marked), the held-out delta
    # has no samples (unpaired, footnote 1)
    assert re.search(r"\| GO term2id \| a\\\|b.*\| \+25\.0 \[-23\.8, \+25\.0\]† \(\+25\.0\) \| "
                     r"\+25\.0 \(\+25\.0\) \[1\] \|", md)


HTML_TAG = re.compile(r"<\s*/?\s*[A-Za-z!?]")


def test_html_in_labels_paths_and_model_names_is_escaped(tmp_path: Path, capsys) -> None:
    """report.md is Markdown, where raw HTML is live: a --label, a results file's model path and
    the folder it lies in come out as text (``&lt;script&gt;``), never as tags; ``<br>`` (a line
    break inside a cell) is the only tag the report writes."""
    model = "/m/<img src=x onerror=alert(1)>base"
    folder = tmp_path / "<i>runs</i>"
    base = write_run(folder / "b", {T_TRAIN: (0.5, 0.5), T_VAL: (0.0, 0.0)}, samples=SAMPLES,
                     model_args={"pretrained": model})
    tuned = write_run(folder / "t", {T_TRAIN: (0.75, 0.75), T_VAL: (0.25, 0.25)}, samples=TUNED_SAMPLES,
                      model_args={"pretrained": model, "peft": "/a/<b onclick=alert(2)>lora</b>"})
    label = "<script>alert(1)</script> & <!-- x"
    out = tmp_path / "out"
    _report_ok(["--base", str(base), "--tuned", str(tuned), "--label", label, "--out", str(out)], capsys)
    md = (out / "report.md").read_text(encoding="utf-8")
    tags = {m.group(0) for m in HTML_TAG.finditer(md.replace("<br>", ""))}
    assert not tags, (tags, md)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!-- x" in md  # the label, shown as typed
    assert "&lt;img src=x onerror=alert(1)&gt;base" in md and "&lt;i&gt;runs&lt;/i&gt;" in md
    assert "&lt;b onclick=alert(2)&gt;lora&lt;/b&gt;" in md
    table_rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len({len(_md_cells(ln)) for ln in table_rows}) == 2  # still rectangular tables
    # the other outputs keep the text as it is (CSV, JSON): only Markdown needs the escape
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep["tuned"][0]["label"] == label and rep["base"]["model_args"]["pretrained"] == model


def test_the_studys_report_md_escapes_model_paths_and_file_values(tmp_path: Path) -> None:
    """The study's report.md adds a header (the user's model path and name), a table of every run
    and the lexicalization table (read from a file): the same escape as `termnorm report`."""
    from types import SimpleNamespace

    from termnorm_eval.report.results import load_run
    from termnorm_eval.study import report as study_report

    model = "/m/<script>alert(1)</script>`x"
    cfg = SimpleNamespace(model_type="hf", model=model, epochs=[1, 2], sweep=[1], limit_pairs=4, limit=2)
    ctx = SimpleNamespace(cfg=cfg, model_path=model, selected={"go": ["term2id"]})
    lex = tmp_path / "lexicalization"
    lex.mkdir()
    (lex / "alignment.json").write_text(json.dumps({"rows": [
        {"embedder": "<img src=x onerror=alert(2)>", "title": "GO | term", "split": "<b>val</b>", "n": 3,
         "true_cos": 0.5, "random_cos": 0.1, "gap": 0.4, "top1": 1.0}]}), encoding="utf-8")
    run = load_run(write_run(tmp_path / "<i>base</i>", {T_TRAIN: (0.5, 0.5)}), "base", "--base")
    lines = [*study_report._header_lines(ctx, ["base", "report"], {}),  # type: ignore[arg-type]
             *study_report._lexicalization_lines(lex), *study_report._scores_table({"<u>run</u>": run})]
    md = "\n".join(lines)
    assert not HTML_TAG.search(md.replace("`<step>/step.json`", "")), md  # a code span: literal
    assert "# Study: script&gt;`x" in md  # the name of the model folder
    assert "- model: /m/&lt;script&gt;alert(1)&lt;/script&gt;`x (hf)" in md
    assert "| &lt;img src=x onerror=alert(2)&gt; | GO \\| term | &lt;b&gt;val&lt;/b&gt; | 3 | 0.500 |" in md
    assert "| task | &lt;u&gt;run&lt;/u&gt; |" in md
