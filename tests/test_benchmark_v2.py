"""Benchmark v2 (issue 11): the shipped build's popularity axis, lenient answers owned by one concept,
``--popularity`` tables and ``--include-unannotated`` through the CLI, the data card and the task
version. The figures come from benchmarks/audit_popularity.py, which reads the records and the
release files with its own plain loops."""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness.dataset import make_doc
from termnorm_eval.harness.scoring import score_document
from termnorm_eval.sources.fetch import fetch_mirror
from termnorm_eval.sources.gaf import read_gaf
from termnorm_eval.sources.hgnc import read_hgnc
from termnorm_eval.sources.obo import read_obo
from termnorm_eval.splits import store
from termnorm_eval.splits.build import PHENOTYPIC_ABNORMALITY
from termnorm_eval.splits.candidates import gene_candidates, ontology_candidates
from termnorm_eval.splits.hierarchy import descendants
from termnorm_eval.terminologies import BUILTIN, TASK_VERSION

REPO = Path(__file__).resolve().parent.parent
SERIES = ("gene", "go BP", "go CC", "go MF", "hpo")


def _audit_module():
    path = REPO / "benchmarks" / "audit_popularity.py"
    spec = importlib.util.spec_from_file_location("audit_popularity", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def audit():
    return _audit_module()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("sources")
    fetch_mirror(dest)
    return dest


@pytest.fixture(scope="module")
def figures(audit, sources: Path) -> dict:
    return audit.audit(store.shipped_data_dir(), sources)


def termnorm(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from termnorm_eval.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


# --- the measured invariants of the shipped build ------------------------------------------------------

def test_no_shipped_record_has_popularity_zero(figures: dict) -> None:
    assert sorted(figures) == list(SERIES)
    assert {name: f["zero"] for name, f in figures.items()} == dict.fromkeys(SERIES, 0.0)
    assert figures["hpo"]["records"] == figures["gene"]["records"] == 1200
    assert all(figures[f"go {a}"]["records"] == 400 for a in ("BP", "CC", "MF"))


def test_no_bin_is_decided_by_the_identifier_and_no_adjacent_bins_share_a_value(figures: dict) -> None:
    assert {name: f["decided_by_id"] for name, f in figures.items()} == dict.fromkeys(SERIES, 0)
    assert {name: f["same_adjacent"] for name, f in figures.items()} == dict.fromkeys(SERIES, 0)


def test_bins_rank_popularity(figures: dict) -> None:
    rho = {name: f["spearman"] for name, f in figures.items()}
    assert all(r >= 0.95 for r in rho.values()), rho


def test_hpo_is_phenotypic_abnormality_and_gene_popularity_is_not_mass_annotation(figures: dict) -> None:
    assert figures["hpo"]["under_root"] == 1.0
    assert figures["gene"]["mass_only"] == 0.0


def test_the_audit_can_fail(audit, sources: Path, tmp_path: Path) -> None:
    """On a build with items of popularity 0 and on bins whose ranges overlap, the same measures fire."""
    out = tmp_path / "with-zero"
    proc = termnorm("data", "build", "--sources", str(sources), "--out", str(out), "--terminology", "hpo",
                    "--include-unannotated")
    assert proc.returncode == 0, proc.stderr
    got = audit.audit(out, sources)["hpo"]
    assert got["zero"] == pytest.approx(60 / 1260) and got["decided_by_id"] == 0
    copy = tmp_path / "overlap"
    shutil.copytree(store.shipped_data_dir(), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    bins = manifest["terminologies"]["hpo"]["bins"]
    assert bins[0]["key_min"] == bins[0]["key_max"] == [1, 0]
    bins[1]["key_min"] = bins[1]["key_max"] = [1, 0]  # bin 1 claims bin 0's one value instead of its own
    (copy / "manifest.json").write_text(json.dumps(manifest))
    broken = audit.audit(copy, sources)["hpo"]
    # bin 0's 60 records now lie in two bins' ranges, bin 1's 60 in none
    assert broken["decided_by_id"] == 120 and broken["same_adjacent"] == 1


# --- pools and popularity, against the source files ------------------------------------------------------

@pytest.fixture(scope="module")
def genes(sources: Path):
    return read_hgnc(sources / "hgnc_complete_set.txt"), read_gaf(sources / "goa_human.gaf.gz")


def test_gene_popularity_counts_only_focused_papers(genes) -> None:
    hgnc, gaf = genes
    focused = gene_candidates(hgnc.genes, gaf)
    everything = gene_candidates(hgnc.genes, gaf, max_genes_per_reference=20000)
    assert focused.facts["references_over_limit"] == 44
    assert focused.facts["largest_references"][0] == {"pmid": "PMID:21873635", "genes": 11198}
    ranked = sum(r["popularity"] > 0 for r in focused.records.values())
    assert ranked == 13418 < sum(r["popularity"] > 0 for r in everything.records.values())
    # a gene cited only by the mass-annotation papers has popularity 0 and leaves the pool
    mass_only = [i for i, r in everything.records.items()
                 if r["popularity"] and not focused.records[i]["popularity"]]
    assert len(mass_only) > 500
    tp53 = focused.records["HGNC:11998"]
    assert 0 < tp53["popularity"] < everything.records["HGNC:11998"]["popularity"] == 370
    with pytest.raises(Exception, match="--max-genes-per-reference 0: must be >= 1"):
        gene_candidates(hgnc.genes, gaf, max_genes_per_reference=0)


def test_hpo_pool_is_below_phenotypic_abnormality(sources: Path) -> None:
    below = descendants(read_obo(sources / "hp.obo").terms, PHENOTYPIC_ABNORMALITY)
    assert "HP:0001250" in below and "HP:0000006" not in below  # Seizure yes, autosomal dominant no
    assert PHENOTYPIC_ABNORMALITY not in below
    manifest = store.read_manifest()
    assert manifest["terminologies"]["hpo"]["excluded"]["not_phenotypic_abnormality"] == 648


# --- lenient answers owned by one concept only -------------------------------------------------------------

def _doc(record: dict, key: str, direction: str) -> dict:
    term = BUILTIN[key]
    return make_doc({**record, "bin": 0}, term, term.direction(direction), n_bins=20)


def test_previous_symbols_of_other_genes_are_no_lenient_answer(genes) -> None:
    hgnc, gaf = genes
    rows = {g.id: g for g in hgnc.genes}
    assert rows["HGNC:10934"].prev_symbols == ("VMAT1", "VAT1") and rows["HGNC:16919"].symbol == "VAT1"
    assert rows["HGNC:15757"].prev_symbols == ("SIRPB2",) and rows["HGNC:16247"].symbol == "SIRPB2"
    cands = gene_candidates(hgnc.genes, gaf)
    slc18a1, sirpg = cands.records["HGNC:10934"], cands.records["HGNC:15757"]
    assert slc18a1["prev_symbols"] == ["VMAT1"] and sirpg["prev_symbols"] == []
    assert cands.notes["ambiguous_prev_symbols_dropped"] == 252
    for record, wrong, right in ((slc18a1, "VAT1", "VMAT1"), (sirpg, "SIRPB2", "SIRPG")):
        doc = _doc(record, "gene", "name2symbol")
        assert score_document(doc, wrong)["lenient_match"] == 0.0  # another gene's symbol scores nothing
        assert score_document(doc, right)["lenient_match"] == 1.0
    # and in the shipped splits no lenient symbol is any other approved gene's symbol
    approved = {g.symbol.casefold(): g.id for g in hgnc.genes if g.status == "Approved"}
    for split in ("train", "val"):
        for r in store.load_records("gene", split):
            assert all(approved.get(s.casefold(), r["id"]) == r["id"] for s in r["prev_symbols"]), r["id"]


def test_shared_synonyms_are_no_lenient_answer(sources: Path) -> None:
    hpo = read_obo(sources / "hp.obo", prefix="HP")
    cands = ontology_candidates(hpo, {})
    # "ASD" is an exact synonym of Autistic behavior and of Atrial septal defect
    assert "ASD" in next(t for t in hpo.terms if t.id == "HP:0001631").synonyms
    assert "ASD" not in cands.records["HP:0001631"]["synonyms"]
    assert "ASD" not in cands.records["HP:0000729"]["synonyms"]
    doc = _doc(cands.records["HP:0001631"], "hpo", "id2term")
    assert score_document(doc, "ASD")["lenient_match"] == 0.0
    assert score_document(doc, "Atrial septal defect")["lenient_match"] == 1.0


def test_gene_name_directions_have_no_dead_lenient_fields() -> None:
    gene = BUILTIN["gene"]
    for name in ("symbol2name", "id2name"):
        assert gene.direction(name).lenient_fields == ()
    record = store.load_records("gene", "val")[0]
    assert "prev_names" not in record and "alias_names" not in record


# --- --popularity and --include-unannotated through the CLI -------------------------------------------------

def _hpoa_rows(sources: Path) -> Counter[str]:
    """A real count from a real file: annotation rows per HPO term in phenotype.hpoa."""
    rows: Counter[str] = Counter()
    for line in (sources / "phenotype.hpoa").read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        if not line.startswith("#") and len(cols) > 3 and cols[3].startswith("HP:"):
            rows[cols[3]] += 1
    return rows


def test_build_with_a_popularity_table(sources: Path, tmp_path: Path) -> None:
    counts = _hpoa_rows(sources)
    table = tmp_path / "hpo_rows.tsv"
    foreign = ["GO:0005634", "GO:0008150", "HP:9999999"]  # no HPO candidate: counted, not fatal
    lines = [f"{i}\t{n}\n" for i, n in sorted(counts.items())] + [f"{i}\t5\n" for i in foreign]
    table.write_text("# annotation rows per term\n" + "".join(lines))
    out = tmp_path / "lit"
    proc = termnorm("data", "build", "--sources", str(sources), "--out", str(out), "--terminology", "hpo",
                    "--popularity", str(table))
    assert proc.returncode == 0, proc.stderr
    unknown = [line for line in proc.stderr.splitlines() if "warning:" in line]
    assert len(unknown) == 1 and "ids are no candidate of hpo (counted, left out)" in unknown[0]
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["sources"]["hpo_rows.tsv"]
    assert entry["role"] == "popularity" and entry["used"]["hpo"] > 10000
    assert f"{entry['unknown_ids']} of {entry['rows']} ids" in unknown[0]
    assert entry["unknown_ids"] >= len(foreign)
    assert entry["rows"] == len(counts) + len(foreign)
    hpo = manifest["terminologies"]["hpo"]
    assert hpo["popularity_source"] == "table hpo_rows.tsv" and "hpo_rows.tsv" in hpo["popularity"]
    assert manifest["parameters"]["popularity_tables"] == ["hpo_rows.tsv"]
    records = store.load_records("hpo", "train", out) + store.load_records("hpo", "val", out)
    assert all(r["popularity"] == counts[r["id"]] >= 1 for r in records)
    assert "--popularity hpo_rows.tsv" in (out / "DATA_CARD.md").read_text()


@pytest.mark.parametrize("body, message", [
    ("HP:0001250\t3\nHP:0001250\t4\n", r"t\.tsv:2: HP:0001250 given twice \(first on line 1\)"),
    ("HP:0001250\t-3\n", r"t\.tsv:1: count '-3' of HP:0001250 is not a non-negative integer"),
    ("# header\nHP:0001250\t2.5\n", r"t\.tsv:2: count '2\.5' of HP:0001250 is not a non-negative integer"),
    ("HP:0001250\t3\textra\n", r"t\.tsv:1: 3 tab-separated columns, expected 2 \(id<TAB>count\)"),
])
def test_bad_popularity_table_is_one_line(sources: Path, tmp_path: Path, body: str, message: str) -> None:
    import re

    table = tmp_path / "t.tsv"
    table.write_text(body)
    line = one_line_error(termnorm("data", "build", "--sources", str(sources), "--out", str(tmp_path / "o"),
                                   "--terminology", "hpo", "--popularity", str(table)))
    assert re.search(message, line), line
    assert not (tmp_path / "o").exists()


def test_include_unannotated_is_a_bin_of_its_own(sources: Path, tmp_path: Path) -> None:
    out = tmp_path / "all"
    proc = termnorm("data", "build", "--sources", str(sources), "--out", str(out), "--terminology", "hpo",
                    "--include-unannotated")
    assert proc.returncode == 0, proc.stderr
    entry = json.loads((out / "manifest.json").read_text())["terminologies"]["hpo"]
    assert [b.get("label") for b in entry["bins"]] == ["unannotated"] + [None] * 20
    assert store.bin_count("hpo", out) == 21
    records = store.load_records("hpo", "train", out) + store.load_records("hpo", "val", out)
    assert {r["id"] for r in records if r["bin"] == 0} == {r["id"] for r in records if r["popularity"] == 0}
    assert len([r for r in records if r["bin"] == 0]) == 60
    assert "0 unannotated" in proc.stdout and "bin 0 (unannotated)" in proc.stdout


# --- data card, histogram, version ------------------------------------------------------------------------

def _png_pixels(data: bytes) -> tuple[int, int, list[list[int]]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, {}
    while at < len(data):
        (n,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + n]
        assert struct.unpack(">I", data[at + 8 + n:at + 12 + n])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        at += 12 + n
    w, h, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (2, 3) and len(chunks[b"PLTE"]) == 12
    raw = zlib.decompress(chunks[b"IDAT"])  # the standard decoder reads the hand-made stream
    stride = 1 + (w + 3) // 4
    rows = []
    for y in range(h):
        line = raw[y * stride + 1:(y + 1) * stride]
        rows.append([(line[x // 4] >> (6 - 2 * (x % 4))) & 3 for x in range(w)])
    return w, h, rows


def test_data_card_and_histogram_show_the_bins() -> None:
    card = (store.shipped_data_dir() / "DATA_CARD.md").read_text()
    assert f"task version {TASK_VERSION}" in card and "(popularity_bins.png)" in card
    assert card.count("| 19 |") == 3  # one bin table per terminology
    assert "| 0 | 1 (0) | 1 (0) | 1 (0) |" in card  # GO's first bin in each aspect: one gene, no paper
    assert "termnorm data build --out DIR --popularity" in card and "max-genes-per-reference 100" in card
    w, _, rows = _png_pixels((store.shipped_data_dir() / "popularity_bins.png").read_bytes())
    bar = 2
    columns = [x for x in range(w) if any(row[x] == bar for row in rows)]
    runs = sum(1 for a, b in zip(columns, [*columns[1:], -1], strict=True) if b != a + 1)
    assert runs == 5 * 20  # five panels (GO BP, CC, MF, HPO, genes) of 20 bars


def test_task_version_is_3_and_reports_refuse_other_versions(tmp_path: Path) -> None:
    """3.0: mention tasks in the groups, answer_in_prompt on every document (issue 21)."""
    from termnorm_eval.harness.taskgen import GROUP_VERSION, STUDY_TEMPLATE_FILE, TEMPLATE_FILE
    from termnorm_eval.report import compare
    from termnorm_eval.report.results import load_run

    assert TASK_VERSION == 3.0 and GROUP_VERSION == 3.0
    for path in (REPO / "tasks").iterdir():
        if path.name.startswith("_group_") or path.name in (TEMPLATE_FILE, STUDY_TEMPLATE_FILE):
            # groups carry their own version (taskgen.GROUP_VERSION: what their rows mean)
            assert "metadata:\n  version: 3.0\n" in path.read_text(), path.name
    task = "termnorm_go_term2id_train"

    def write(folder: Path, version: float, score: float, stamp: str = "2026-01-01T00-00-00.000000") -> None:
        sub = folder / "__model"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"results_{stamp}.json").write_text(json.dumps({
            "results": {task: {"alias": task, "exact_match,extract": score, "lenient_match,extract": score}},
            "versions": {task: version}, "n-samples": {task: {"original": 600, "effective": 600}},
            "config": {"model": "hf", "model_args": {"pretrained": str(folder)}},
        }))

    def run(folder: Path, version: float, score: float):
        write(folder, version, score)
        return load_run(folder, folder.name, "--base")

    for old in (1.0, 2.0):  # v2's label tasks scored the same documents, but its groups meant less
        base, tuned_run = run(tmp_path / f"v{old}", old, 0.2), run(tmp_path / f"v3-{old}", TASK_VERSION, 0.6)
        rep = compare.build(base, [tuned_run])
        tuned = [r for r in rep.rows if r.task == task and r.run == f"v3-{old}"]
        assert len(tuned) == 1 and tuned[0].strict == 0.6 and tuned[0].delta_strict is None
        assert any(f"task version {TASK_VERSION}" in n for n in rep.footnotes.texts)
    mixed = tmp_path / "mixed"  # one run's files of two versions: refused, never merged
    write(mixed, 2.0, 0.2)
    write(mixed, TASK_VERSION, 0.2, "2026-01-02T00-00-00.000000")
    with pytest.raises(TermnormError, match=r"one run holds termnorm task version 2\.0 .* and 3\.0 "):
        load_run(mixed, "mixed", "--base")
