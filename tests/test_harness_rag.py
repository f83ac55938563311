"""The retrieval-augmented tasks termnorm-rag_* (issue 22, item 5) on the shipped data and its shipped
BM25 candidates: the family's leaves and groups, the seeded order, the gold never forced in (the
candidates' recall is the manifest's), the candidate shares, another retriever's candidates, bad
metadata and files, a real lm_eval run."""

from __future__ import annotations

import gzip
import json
import math
import re
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest
from termnorm_cli import one_line_error, run

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import dataset, rag, taskgen
from termnorm_eval.harness import validity_names as vn
from termnorm_eval.harness.dataset import build_docs, load_task_dataset
from termnorm_eval.splits import rag as rag_files
from termnorm_eval.splits import store
from termnorm_eval.terminologies import BUILTIN, input_text

# the X->ID directions: an identifier or symbol out, not from an identifier
RAG_DIRECTIONS = {"go": ("term2id", "synonym2id"), "hpo": ("term2id", "synonym2id", "lay2id"),
                  "gene": ("name2symbol", "name2id", "protein2symbol", "alias2symbol", "prev2symbol")}
RAG_TASKS = sorted(f"termnorm-rag_{k}_{d}_{s}" for k, ds in RAG_DIRECTIONS.items() for d in ds
                   for s in ("train", "val"))
F = taskgen.FILTER_NAME


def _rag(key: str, direction: str, **metadata: Any) -> dict:
    return load_task_dataset(key, direction, rag=True, **metadata)


def _block(key: str) -> dict:
    return store.read_manifest()["terminologies"][key]["rag"]


def test_the_family_has_a_task_per_retrievable_direction_and_split(repo_root: Path) -> None:
    from lm_eval.tasks import TaskManager

    assert len(RAG_TASKS) == 20
    tm = TaskManager(include_path=str(repo_root / "tasks"), include_defaults=False)
    assert tm.match_tasks(["termnorm-rag_*"]) == RAG_TASKS
    assert not [t for t in tm.match_tasks(["termnorm_*"]) if "rag" in t]  # the plain wildcard: plain only
    files = taskgen.render_task_family(BUILTIN.values())
    assert sorted(n[:-5] for n in files if n.startswith("termnorm-rag_")) == RAG_TASKS
    assert "group: termnorm-rag\n" in files["_group_termnorm-rag.yaml"]
    for key, directions in RAG_DIRECTIONS.items():
        members = [line[4:] for line in files[f"_group_termnorm-rag-{key}.yaml"].splitlines()
                   if line.startswith("  - termnorm-rag_")]
        assert sorted(members) == [t for t in RAG_TASKS if f"_{key}_" in t]
        assert set(directions) == {d.name for d in taskgen.rag_directions(BUILTIN[key])}


def test_documents_keep_the_plain_question_and_show_the_first_k_in_the_seeded_order() -> None:
    block = _block("hpo")
    table = rag_files.read(store.shipped_data_dir() / "hpo" / rag_files.FILE_NAME)
    plain = build_docs("hpo", "lay2id", "val")
    docs = list(_rag("hpo", "lay2id")["val"])
    labels = rag_files.display_rows(store.index_path("hpo"))
    assert len(docs) == len(plain) and block["k"] == rag_files.K == 10
    reordered = 0
    for p, d in zip(plain, docs, strict=True):
        # only what the model reads changes: the validity and answer_in_prompt checks read question
        assert {k: d[k] for k in p} == {**p, "input": d["input"]}
        listed = "".join(f"- {c} {labels[c][1]}\n" for c in d["candidates"]) or "(no candidates found)\n"
        assert d["input"] == rag.header(BUILTIN["hpo"]) + listed + input_text(p["question"])
        ranked = table[("val", "mentions.lay", p["item_id"])]
        shown = rag_files.shown_order(list(ranked[:10]), block["seed"], p["item_id"], "lay2id")
        assert d["candidates"] == shown
        assert d["rag_k"] == 10 and d["retriever"] == block["retriever_digest"]
        reordered += d["candidates"] != list(ranked[: len(d["candidates"])])
    assert reordered > 0.8 * len(docs)  # the rank order is not what is shown
    # stable: the same order again from a fresh load
    dataset._dataset_dict.cache_clear()
    assert [d["candidates"] for d in _rag("hpo", "lay2id")["val"]] == [d["candidates"] for d in docs]
    first = docs[0]
    other = rag_files.shown_order(list(first["candidates"]), block["seed"] + 1, first["item_id"], "lay2id")
    assert sorted(other) == sorted(docs[0]["candidates"]) and other != docs[0]["candidates"]


def test_a_gene_symbol_task_lists_symbols_and_approved_names() -> None:
    doc = next(d for d in _rag("gene", "name2symbol")["val"] if d["gold_in_candidates"])
    lines = doc["input"].splitlines()
    assert lines[0] == "Candidate HGNC genes from a search (the right one may be missing):"
    assert f"- {doc['answer']} {doc['source']}" in lines  # the gold: symbol and approved name
    ids = _rag("gene", "name2id")["val"][0]
    assert all(c.startswith("HGNC:") for c in ids["candidates"])


@pytest.mark.parametrize("task", RAG_TASKS)
def test_the_gold_is_never_forced_in_candidate_recall_is_the_manifests(task: str) -> None:
    _, key, direction, split = task.split("_")
    docs = _rag(key, direction)[split]
    recall = statistics.fmean(d["gold_in_candidates"] for d in docs)
    assert recall == pytest.approx(_block(key)["recall"][split][direction]["10"], abs=1e-6)
    assert all(d["gold_in_candidates"] == (d["answer"] in d["candidates"]) for d in docs)
    assert recall < 0.9  # BM25 with the asked form held out misses many: nothing added them


def test_the_tasks_readme_recall_table_is_the_manifests(repo_root: Path) -> None:
    rows = {}
    for line in (repo_root / "tasks" / "README.md").read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"\| `termnorm-rag_([a-z]+)_(\w+)_\*` \| ([\d.]+) / ([\d.]+) \| "
                         r"([\d.]+) / ([\d.]+) \|", line)
        if m:
            rows[(m[1], m[2])] = [float(x) for x in m.groups()[2:]]
    assert sorted(rows) == sorted((k, d) for k, ds in RAG_DIRECTIONS.items() for d in ds)
    for (key, direction), cells in rows.items():
        r = _block(key)["recall"]
        want = [r[s][direction][at] for at in ("10", "20") for s in ("train", "val")]
        assert cells == [round(x, 3) for x in want], (key, direction)


def test_rag_k_shows_fewer() -> None:
    ten = _rag("go", "synonym2id")["val"]
    three = _rag("go", "synonym2id", rag_k=3)["val"]
    assert all(len(d["candidates"]) <= 3 and d["rag_k"] == 3 for d in three)
    assert all(set(t["candidates"]) <= set(d["candidates"]) for t, d in zip(three, ten, strict=True))
    assert statistics.fmean(d["gold_in_candidates"] for d in three) < statistics.fmean(
        d["gold_in_candidates"] for d in ten)


@pytest.mark.parametrize(("key", "direction"), [("go", "term2id"), ("hpo", "synonym2id"),
                                                ("gene", "name2symbol"), ("gene", "alias2symbol")])
def test_rag_shares_and_validity_shares_sum_to_one(key: str, direction: str) -> None:
    docs = list(_rag(key, direction)["val"])[:40]
    seen = {m: 0.0 for m in ("lenient_match", rag.PICKED_WRONG, rag.OUTSIDE)}
    for doc in docs:
        wrong = [c for c in doc["candidates"] if c != doc["answer"]]
        for response in (doc["answer"], f"The answer is {doc['answer'].lower()}.", *wrong[:1], "HP:0000001",
                         "no idea", ""):
            s = rag.process_rag_results(doc, [response])
            shares = s["lenient_match"] + s[rag.PICKED_WRONG] + s[rag.OUTSIDE]
            assert shares == 1.0, (doc["item_id"], response)
            assert math.isclose(sum(s[m] for m in vn.METRICS), 1.0)
            assert s[rag.CANDIDATE_RECALL] == float(doc["gold_in_candidates"])
            for m in seen:
                seen[m] += s[m]
        if wrong:  # a picked wrong candidate is a real identifier or symbol, not the prompt's example
            s = rag.process_rag_results(doc, [wrong[0]])
            assert s[rag.PICKED_WRONG] == 1.0 and s["validity_prompt_example"] == 0.0
    assert all(seen.values()), seen


def test_an_added_ontology_gets_candidates_and_rag_tasks(tmp_path: Path) -> None:
    from lm_eval.tasks import TaskManager

    from termnorm_eval.ontology import add_ontology
    from termnorm_eval.sources.mirrors import extract

    out = add_ontology(extract("cl.obo")[0], name="cl", out=tmp_path / "cl").out_dir
    tm = TaskManager(include_path=str(out), include_defaults=False)
    rag_tasks = tm.match_tasks(["termnorm-rag_*"])
    assert rag_tasks == [f"termnorm-rag_cl_{d}_{s}" for d in ("synonym2id", "term2id")
                         for s in ("train", "val")]
    assert "termnorm-rag-cl" in tm.all_groups
    recall = store.read_manifest(out)["terminologies"]["cl"]["rag"]["recall"]
    docs = load_task_dataset("cl", "term2id", out, rag=True)["val"]
    assert docs[0]["input"].startswith("Candidate CL terms from a search")
    # every RAG task of the added ontology loads, its recall in the manifest (the mention
    # directions' too: their candidates are ranked at add-ontology time)
    for direction in ("term2id", "synonym2id"):
        for split in ("train", "val"):
            docs = load_task_dataset("cl", direction, out, rag=True)[split]
            shown = statistics.fmean(d["gold_in_candidates"] for d in docs)
            assert shown == pytest.approx(recall[split][direction]["10"], abs=1e-6), (direction, split)


# --- another retriever's candidates; bad inputs -----------------------------------------------------

@pytest.fixture(scope="module")
def hpo_candidates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`termnorm retrieve candidates --terminology hpo` (BM25: what the build ships) into a folder."""
    from termnorm_eval.cli import main

    root = tmp_path_factory.mktemp("cands")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TERMNORM_CACHE", str(root / "cache"))  # its BM25 index: not the user's cache
        try:
            main(["retrieve", "candidates", "--terminology", "hpo", "--out", str(root / "out")])
        except SystemExit as e:
            assert not e.code, e.code
    return root / "out"


def test_retrieve_candidates_writes_the_shipped_format(hpo_candidates: Path) -> None:
    shipped = store.shipped_data_dir() / "hpo" / rag_files.FILE_NAME
    assert (hpo_candidates / "hpo" / rag_files.FILE_NAME).read_bytes() == shipped.read_bytes()
    meta = json.loads((hpo_candidates / rag_files.META).read_text(encoding="utf-8"))
    assert meta["terminologies"]["hpo"]["recall"] == _block("hpo")["recall"]
    given = _rag("hpo", "term2id", rag_candidates=str(hpo_candidates))["val"]
    assert [d["input"] for d in given] == [d["input"] for d in _rag("hpo", "term2id")["val"]]


def test_an_earlier_candidates_folder_needs_force(hpo_candidates: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c"
    shutil.copytree(hpo_candidates, out)
    one_line_error(["retrieve", "candidates", "--terminology", "hpo", "--out", str(out)], capsys,
                   "--out", "already holds a RAG candidates folder", "--force")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    one_line_error(["retrieve", "candidates", "--terminology", "hpo", "--out", str(tmp_path / "mine")],
                   capsys, "holds no termnorm RAG candidates folder")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def _data_copy(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(store.shipped_data_dir(), data)
    return data


def test_candidates_of_other_data_are_refused(hpo_candidates: Path, tmp_path: Path) -> None:
    data = _data_copy(tmp_path)
    manifest = json.loads((data / store.MANIFEST).read_text(encoding="utf-8"))
    manifest["parameters"]["note"] = "another build"
    (data / store.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(TermnormError, match=r"meta.json: candidates of other data .* recompute them") as e:
        load_task_dataset("hpo", "term2id", str(data), rag=True, rag_candidates=str(hpo_candidates))
    assert "\n" not in str(e.value)
    with pytest.raises(TermnormError, match=r"rag_candidates .*: not a folder"):
        _rag("hpo", "term2id", rag_candidates=str(tmp_path / "missing"))
    with pytest.raises(TermnormError, match=r"no readable meta.json"):
        _rag("hpo", "term2id", rag_candidates=str(data))


@pytest.mark.parametrize("k", [0, 21, -1, "5", True, 2.5])
def test_rag_k_out_of_range_is_one_line(k: object) -> None:
    with pytest.raises(TermnormError, match=r"^metadata rag_k: expected an integer from 1 to 20, got ") as e:
        _rag("hpo", "term2id", rag_k=k)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("line", "why"), [
    ("{not json", "not JSON"),
    ('{"split": "val", "source": "name", "item_id": "HP:1"}', "expected an object with item_id, ranked"),
    ('{"split": "val", "source": "name", "item_id": "HP:1", "ranked": "HP:2"}', "ranked must be a list"),
    ('{"split": "val", "source": "name", "item_id": "HP:1", "ranked": ["HP:2", "HP:2"]}', "distinct ids"),
])
def test_a_malformed_candidates_line_names_the_file_and_line(tmp_path: Path, line: str, why: str) -> None:
    data = _data_copy(tmp_path)
    path = data / "hpo" / rag_files.FILE_NAME
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
    lines[4] = line
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    with pytest.raises(TermnormError, match=r"candidates\.jsonl\.gz:5: malformed RAG candidates line") as e:
        load_task_dataset("hpo", "term2id", str(data), rag=True)
    assert why in str(e.value) and "\n" not in str(e.value)


def test_a_data_folder_without_candidates_says_so(tmp_path: Path) -> None:
    data = _data_copy(tmp_path)
    manifest = json.loads((data / store.MANIFEST).read_text(encoding="utf-8"))
    del manifest["terminologies"]["go"]["rag"]
    (data / store.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(TermnormError, match=r"terminologies.go.rag: no RAG candidates here"):
        load_task_dataset("go", "term2id", str(data), rag=True)
    with pytest.raises(TermnormError, match="no retrieval-augmented task"):
        load_task_dataset("go", "id2term", rag=True)


# --- a real run ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_lm_eval_runs_a_rag_task(tiny_model: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    task = "termnorm-rag_hpo_synonym2id_val"
    out = tmp_path / "out"
    code, _, err = run(["eval", "--model-args", f"pretrained={tiny_model},dtype=float32", "--tasks", task,
                        "--limit", "4", "--device", "cpu", "--batch-size", "4", "--output-path", str(out),
                        "--log-samples", "--metadata", json.dumps({"rag_k": 5})], capsys)
    assert code == 0, err
    (path,) = sorted(out.rglob("results_*.json"))
    row = json.loads(path.read_text(encoding="utf-8"))["results"][task]
    samples = [json.loads(x) for x in next(out.rglob(f"samples_{task}_*.jsonl")).read_text(
        encoding="utf-8").splitlines()]
    assert len(samples) == 4
    for s in samples:
        doc = s["doc"]
        assert doc["rag_k"] == 5 and len(doc["candidates"]) <= 5
        prompt = s["arguments"]["gen_args_0"]["arg_0"]
        assert prompt.startswith("Candidate HPO terms from a search") and doc["question"] in prompt
        assert s["lenient_match"] + s[rag.PICKED_WRONG] + s[rag.OUTSIDE] == 1.0
    for m in rag.METRICS:
        assert row[f"{m},{F}"] == pytest.approx(statistics.fmean(s[m] for s in samples)), m
    assert row[f"{rag.CANDIDATE_RECALL},{F}"] == statistics.fmean(s["doc"]["gold_in_candidates"]
                                                                  for s in samples)


def test_answer_in_prompt_judges_the_prompt_with_its_candidates() -> None:
    """A RAG prompt shows the gold when a candidate line is the gold: exact_match_shown/_hidden split
    on that (the document's own answer_in_prompt field stays the question's)."""
    from termnorm_eval.harness.rag import process_rag_results

    docs = list(load_task_dataset("hpo", "synonym2id", rag=True)["val"])
    with_gold = [d for d in docs if d["gold_in_candidates"]]
    without = [d for d in docs if not d["gold_in_candidates"]]
    assert with_gold and without
    for doc in with_gold[:20] + without[:20]:
        s = process_rag_results(doc, [doc["answer"]])
        shown = doc["gold_in_candidates"] or doc["answer_in_prompt"]
        assert s["answer_in_prompt"] == float(shown)
        assert (f"exact_match_{'shown' if shown else 'hidden'}" in s
                and f"exact_match_{'hidden' if shown else 'shown'}" not in s)
