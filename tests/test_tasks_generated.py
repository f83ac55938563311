"""The committed tasks/ folder: equal to the generator's output (both families: plain termnorm_* and
the study protocol termnorm-study_*), and loadable by the harness."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import taskgen
from termnorm_eval.splits import store
from termnorm_eval.terminologies import BUILTIN, SPLITS

LABEL_DIRECTIONS = {
    "go": ("term2id", "id2term"),
    "hpo": ("term2id", "id2term"),
    "gene": ("name2symbol", "symbol2name", "name2id", "id2name", "protein2symbol"),
}
MENTION_DIRECTIONS = {"go": ("synonym2id",), "hpo": ("synonym2id", "lay2id"),
                      "gene": ("alias2symbol", "prev2symbol")}
LABEL_TASKS = sorted(f"termnorm_{key}_{d}_{s}" for key, dirs in LABEL_DIRECTIONS.items() for d in dirs
                     for s in ("train", "val"))
MENTION_TASKS = sorted(f"termnorm_{key}_{d}_{s}" for key, dirs in MENTION_DIRECTIONS.items() for d in dirs
                       for s in ("train", "val"))
EXPECTED_TASKS = sorted(LABEL_TASKS + MENTION_TASKS)
EXPECTED_STUDY_TASKS = sorted("termnorm-study_" + t.split("_", 1)[1] for t in EXPECTED_TASKS)
EXPECTED_GROUPS = ["termnorm", "termnorm-gene", "termnorm-go", "termnorm-hpo", "termnorm-labels",
                   "termnorm-mentions", "termnorm-mentions-gene", "termnorm-mentions-go",
                   "termnorm-mentions-hpo", "termnorm-train", "termnorm-val"]
EXPECTED_STUDY_GROUPS = ["termnorm-study" + g[len("termnorm"):] for g in EXPECTED_GROUPS]
EXPECTED_RAG_GROUPS = ["termnorm-rag", "termnorm-rag-gene", "termnorm-rag-go", "termnorm-rag-hpo"]


def _study(tasks: list[str]) -> list[str]:
    return sorted("termnorm-study_" + t.split("_", 1)[1] for t in tasks)


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


def _yaml(path: Path) -> dict:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)


def test_committed_tasks_equal_generator_output(repo_root: Path) -> None:
    folder = repo_root / "tasks"
    expected = taskgen.render_task_family(BUILTIN.values(), out_dir=folder)
    committed = {p.name for p in folder.iterdir()
                 if p.is_file() and (p.suffix in {".yaml", ".py"} or p.name.endswith("_yaml"))}
    assert {taskgen.TEMPLATE_FILE, taskgen.STUDY_TEMPLATE_FILE} <= set(expected)
    assert committed - {"_generate_configs.py", "__init__.py"} == set(expected), (
        "tasks/ differs from the generator: run `python tasks/_generate_configs.py`")
    for name, text in expected.items():
        assert (folder / name).read_text(encoding="utf-8") == text, (
            f"tasks/{name} differs from the generator: run `python tasks/_generate_configs.py`")


def test_no_absolute_paths_in_committed_files(repo_root: Path) -> None:
    for path in (repo_root / "tasks").iterdir():
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert str(repo_root) not in text and "/root/" not in text and "/home/" not in text, path


def test_leaves_and_groups(repo_root: Path) -> None:
    folder = repo_root / "tasks"
    leaves = {p.stem: _yaml(p) for p in folder.glob("termnorm_*.yaml")}
    assert sorted(leaves) == EXPECTED_TASKS
    for name, cfg in leaves.items():
        assert cfg["task"] == name and cfg["include"] == taskgen.TEMPLATE_FILE
        assert cfg["test_split"] == name.rsplit("_", 1)[1]
        gen = cfg["generation_kwargs"]
        assert gen["until"][0] == "\n" and gen["do_sample"] is False
        assert gen["max_gen_toks"] == (48 if name.split("_")[2].endswith(("2term", "2name")) else 24)
    groups = {cfg["group"]: cfg for p in folder.glob("_group_*.yaml") if (cfg := _yaml(p))}
    assert sorted(groups) == sorted(EXPECTED_GROUPS + EXPECTED_STUDY_GROUPS + EXPECTED_RAG_GROUPS)
    assert groups["termnorm"]["task"] == ["termnorm-go", "termnorm-hpo", "termnorm-gene"]
    assert groups["termnorm-study"]["task"] == [
        "termnorm-study-go", "termnorm-study-hpo", "termnorm-study-gene"]
    assert sorted(groups["termnorm-train"]["task"]) == [t for t in EXPECTED_TASKS if t.endswith("_train")]
    assert sorted(groups["termnorm-study-val"]["task"]) == [
        t for t in EXPECTED_STUDY_TASKS if t.endswith("_val")]
    assert sorted(groups["termnorm-gene"]["task"]) == [t for t in EXPECTED_TASKS if "_gene_" in t]
    assert sorted(groups["termnorm-study-go"]["task"]) == [t for t in EXPECTED_STUDY_TASKS if "_go_" in t]
    # the label tasks alone (the benchmark before mentions), the mention tasks per terminology
    assert sorted(groups["termnorm-labels"]["task"]) == LABEL_TASKS
    assert sorted(groups["termnorm-study-labels"]["task"]) == _study(LABEL_TASKS)
    assert groups["termnorm-mentions"]["task"] == ["termnorm-mentions-go", "termnorm-mentions-hpo",
                                                   "termnorm-mentions-gene"]
    assert groups["termnorm-study-mentions"]["task"] == [
        "termnorm-study-mentions-go", "termnorm-study-mentions-hpo", "termnorm-study-mentions-gene"]
    for key in MENTION_DIRECTIONS:
        mine = [t for t in MENTION_TASKS if f"_{key}_" in t]
        assert sorted(groups[f"termnorm-mentions-{key}"]["task"]) == mine
        assert sorted(groups[f"termnorm-study-mentions-{key}"]["task"]) == _study(mine)
    assert sorted(groups["termnorm-val"]["task"]) == [t for t in EXPECTED_TASKS if t.endswith("_val")]
    for name, cfg in groups.items():
        metrics = (taskgen.STUDY_METRICS if name.startswith(taskgen.STUDY_PREFIX) else
                   taskgen.RAG_METRICS if name.startswith(taskgen.RAG_PREFIX) else taskgen.METRICS)
        assert [m["metric"] for m in cfg["aggregate_metric_list"]] == list(metrics)
        assert all(m["weight_by_size"] is False and m["aggregation"] == "mean"
                   for m in cfg["aggregate_metric_list"])
    template = _yaml(folder / taskgen.TEMPLATE_FILE)
    assert template["fewshot_split"] == "train" and template["target_delimiter"] == " "
    assert [f["name"] for f in template["filter_list"]] == ["extract"]
    assert {m["metric"]: m["higher_is_better"] for m in template["metric_list"]} == taskgen.HIGHER_IS_BETTER


def test_validity_metrics_come_from_validity_names(repo_root: Path) -> None:
    """Every validity_<category> of validity_names in both templates and every group, none else."""
    from termnorm_eval.harness import validity_names

    assert validity_names.METRICS and set(validity_names.METRICS) <= set(taskgen.METRICS)
    assert {m for m in taskgen.METRICS if m.startswith(validity_names.PREFIX)} == set(validity_names.METRICS)
    better = [m for m, up in taskgen.HIGHER_IS_BETTER.items() if m.startswith("validity_") and up]
    assert better == ["validity_correct", "validity_lenient_only"]
    assert (*taskgen.METRICS, validity_names.PARSE_ERROR) == taskgen.STUDY_METRICS
    assert taskgen.STUDY_HIGHER_IS_BETTER[validity_names.PARSE_ERROR] is False
    study = _yaml(repo_root / "tasks" / taskgen.STUDY_TEMPLATE_FILE)
    hib = {m["metric"]: m["higher_is_better"] for m in study["metric_list"]}
    assert hib == taskgen.STUDY_HIGHER_IS_BETTER
    assert all(m["aggregation"] == "mean" for m in study["metric_list"] if m["metric"] != "alignment")


def test_study_leaves_and_template(repo_root: Path) -> None:
    from termnorm_eval.harness.study_protocol import system_prompt

    folder = repo_root / "tasks"
    leaves = {p.stem: _yaml(p) for p in folder.glob("termnorm-study_*.yaml")}
    assert sorted(leaves) == EXPECTED_STUDY_TASKS
    for name, cfg in leaves.items():
        _, key, direction, split = name.split("_")
        assert cfg["task"] == name and cfg["include"] == taskgen.STUDY_TEMPLATE_FILE
        assert cfg["dataset_kwargs"] == {"terminology": key, "direction": direction}
        assert cfg["test_split"] == split
        assert cfg["description"] == system_prompt(BUILTIN[key]) + "\n\n"
    template = _yaml(folder / taskgen.STUDY_TEMPLATE_FILE)
    plain = _yaml(folder / taskgen.TEMPLATE_FILE)
    # the same documents, loader, scoring and filter name as the plain family
    for field in ("custom_dataset", "process_results", "fewshot_split", "doc_to_target", "output_type"):
        assert template[field] == plain[field], field
    assert [f["name"] for f in template["filter_list"]] == [f["name"] for f in plain["filter_list"]]
    assert template["doc_to_text"] == "!function utils.study_doc_to_text"
    assert template["generation_kwargs"] == {"until": list(taskgen.STUDY_UNTIL), "max_gen_toks": 128,
                                             "do_sample": False}


@pytest.fixture(scope="module")
def loaded(repo_root: Path) -> dict:
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(repo_root / "tasks"), include_defaults=False)
    assert tm.match_tasks(["termnorm_*"]) == EXPECTED_TASKS  # the wildcard matches plain tasks only
    assert tm.match_tasks(["termnorm-study_*"]) == EXPECTED_STUDY_TASKS  # and this one study tasks only
    assert sorted(tm.all_groups) == sorted(EXPECTED_GROUPS + EXPECTED_STUDY_GROUPS + EXPECTED_RAG_GROUPS)
    return tm.load(["termnorm"])  # the plain family only


def test_docs_follow_store_order_and_skip_inapplicable_records(loaded: dict) -> None:
    tasks = loaded["tasks"]
    assert sorted(tasks) == EXPECTED_TASKS
    for name, task in tasks.items():
        _, key, direction, split = name.split("_")
        d = BUILTIN[key].direction(direction)
        records = [r for r in store.load_records(key, split) if d.applies_to(r)]
        docs = list(task.test_docs())
        assert [doc["item_id"] for doc in docs] == [r["id"] for r in records]
        assert [doc["answer"] for doc in docs[:5]] == [d.answer(r) for r in records[:5]]
        assert {doc["stratum"] for doc in docs} == set(store.STRATA)
        assert len(task.fewshot_docs()) == sum(
            d.applies_to(r) for r in store.load_records(key, "train"))
    protein = tasks["termnorm_gene_protein2symbol_val"]
    all_genes = store.load_records("gene", "val")
    assert len(protein.test_docs()) == sum(bool(r.get("protein_name")) for r in all_genes) < len(all_genes)


def test_prompt_text_and_target(loaded: dict) -> None:
    task = loaded["tasks"]["termnorm_hpo_term2id_val"]
    doc = task.test_docs()[0]
    rec = store.load_records("hpo", "val")[0]
    assert task.doc_to_text(doc) == (
        f'What is the HPO identifier for the HPO term "{rec["name"]}"? '
        "Answer with the HPO identifier only, e.g. HP:1234567.\nAnswer:")
    assert task.doc_to_target(doc) == rec["id"]
    assert task.config.fewshot_split == "train" and task.config.test_split == "val"


def test_fewshot_never_shows_the_doc_itself_or_held_out_docs(loaded: dict) -> None:
    train_task = loaded["tasks"]["termnorm_go_term2id_train"]
    val_task = loaded["tasks"]["termnorm_go_term2id_val"]
    train_ids = {r["id"] for r in store.load_records("go", "train")}
    val_names = {r["name"] for r in store.load_records("go", "val")}
    for task in (train_task, val_task):
        for doc in list(task.test_docs())[:5]:
            ctx = task.fewshot_context(doc, num_fewshot=5)
            shots = ctx.split("\n\n")[:-1]
            assert len(shots) == 5 and ctx.endswith(doc["input"])
            for shot in shots:
                assert shot.rsplit("\nAnswer: ", 1)[1] in train_ids
                assert doc["answer"] not in shot  # never the doc's own answer
                assert not any(f'"{n}"' in shot for n in val_names)


def test_generator_writes_a_new_ontology_family(tmp_path: Path, repo_root: Path) -> None:
    """What add-ontology does: a new terminology, its own data folder, relative paths only."""
    from lm_eval.tasks import TaskManager

    from termnorm_eval.terminologies import ontology_terminology

    term = ontology_terminology("goslim", "GO", "GO", r"\d{7}", description="test family")
    data = tmp_path / "data"
    for split in SPLITS:  # real records, re-labelled as the new ontology
        (data / "goslim").mkdir(parents=True, exist_ok=True)
        shutil.copy(store.split_path("go", split), data / "goslim" / f"{split}.jsonl")
    (data / "manifest.json").write_text(json.dumps(
        {"terminologies": {"goslim": {"spec": term.to_dict()}}}), encoding="utf-8")
    out = tmp_path / "tasks"
    (out / "termnorm_goslim_obsolete_val.yaml").parent.mkdir(parents=True)
    (out / "termnorm_goslim_obsolete_val.yaml").write_text(f"# {taskgen.GENERATED_MARK}\ntask: x\n")
    (out / "termnorm-study_goslim_obsolete_val.yaml").write_text(f"# {taskgen.GENERATED_MARK}\ntask: y\n")
    (out / "mine.yaml").write_text("task: mine\n")
    written = taskgen.write_task_family([term], out, data_dir=data, umbrella=None)
    names = sorted(p.name for p in written)
    assert "_group_termnorm-goslim.yaml" in names and "_group_termnorm.yaml" not in names
    assert "_group_termnorm-study-goslim.yaml" in names and "_group_termnorm-study.yaml" not in names
    assert "termnorm-study_goslim_term2id_val.yaml" in names and taskgen.STUDY_TEMPLATE_FILE in names
    assert not (out / "termnorm_goslim_obsolete_val.yaml").exists()  # stale generated leaves removed
    assert not (out / "termnorm-study_goslim_obsolete_val.yaml").exists()
    assert (out / "mine.yaml").exists()  # other files untouched
    utils_text = (out / "utils.py").read_text()
    assert str(tmp_path) not in utils_text and '"../data"' in utils_text

    moved = tmp_path / "moved"  # the folder pair can move: the data path is relative
    shutil.copytree(tmp_path, moved, ignore=shutil.ignore_patterns("moved"))
    tm = TaskManager(include_path=str(moved / "tasks"), include_defaults=False)
    assert tm.match_tasks(["termnorm_*"]) == ["termnorm_goslim_id2term_train", "termnorm_goslim_id2term_val",
                                              "termnorm_goslim_term2id_train", "termnorm_goslim_term2id_val"]
    task = tm.load(["termnorm-goslim"])["tasks"]["termnorm_goslim_term2id_val"]
    doc = task.test_docs()[0]
    assert doc["terminology"] == "goslim" and doc["item_id"] == store.load_records("go", "val")[0]["id"]
    # the study family of the new ontology: its own data folder, the added-ontology prompt shape
    assert tm.match_tasks(["termnorm-study_*"]) == [
        "termnorm-study_goslim_id2term_train", "termnorm-study_goslim_id2term_val",
        "termnorm-study_goslim_term2id_train", "termnorm-study_goslim_term2id_val"]
    study = tm.load(["termnorm-study-goslim"])["tasks"]["termnorm-study_goslim_term2id_val"]
    ctx = study.fewshot_context(study.test_docs()[0], 0)
    name = store.load_records("go", "val")[0]["name"]
    assert ctx.startswith("You are a biomedical expert specializing in the GO ontology.")
    assert '"GO_ID": "<id_here>"' in ctx and ctx.endswith(f"GO Term: {name}")


def test_custom_dataset_accepts_harness_metadata() -> None:
    """lm-eval passes task metadata and model args as keywords; embedding_model reaches the docs."""
    from termnorm_eval.harness.dataset import load_task_dataset

    dd = load_task_dataset(terminology="go", direction="term2id", version=1.0, pretrained="some/model",
                           embedding_model="/models/mine")
    assert set(dd) == set(SPLITS)
    assert dd["val"][0]["embedding_model"] == "/models/mine"
    assert dd["train"][0]["item_id"] == store.load_records("go", "train")[0]["id"]
    plain = load_task_dataset(terminology="go", direction="term2id")
    assert plain["val"][0]["embedding_model"] == ""
    with pytest.raises(TermnormError, match="no direction 'sideways'"):
        load_task_dataset(terminology="go", direction="sideways")


def test_added_ontology_mention_tasks_follow_its_manifest(tmp_path: Path) -> None:
    """An added ontology has the mention tasks its manifest's mention_kinds lists, on the splits with
    forms; a rebuild without them removes their leaves and group; a key naming an umbrella group is
    refused."""
    from lm_eval.tasks import TaskManager

    from termnorm_eval.terminologies import ontology_terminology

    kinds = {"synonym": {"train": 313, "val": 0}}
    data = tmp_path / "data"
    (data / "goslim").mkdir(parents=True)
    for split in SPLITS:  # real records with their mentions, re-labelled as the new ontology
        shutil.copy(store.split_path("go", split), data / "goslim" / f"{split}.jsonl")
    spec = ontology_terminology("goslim", "GO", "GO", r"\d{7}").to_dict()
    (data / "manifest.json").write_text(json.dumps(
        {"terminologies": {"goslim": {"spec": spec, "mention_kinds": kinds}}}), encoding="utf-8")
    term = store.terminology("goslim", data)
    out = tmp_path / "tasks"
    taskgen.write_task_family([term], out, data_dir=data, umbrella=None)
    groups = {cfg["group"]: cfg["task"] for p in out.glob("_group_*.yaml") if (cfg := _yaml(p))}
    assert groups["termnorm-mentions-goslim"] == ["termnorm_goslim_synonym2id_train"]  # no val forms
    assert groups["termnorm-study-mentions-goslim"] == ["termnorm-study_goslim_synonym2id_train"]
    assert "termnorm_goslim_synonym2id_train" in groups["termnorm-goslim"]
    assert not (out / "termnorm_goslim_synonym2id_val.yaml").exists()
    tm = TaskManager(include_path=str(out), include_defaults=False)
    task = tm.load(["termnorm_goslim_synonym2id_train"])["tasks"]["termnorm_goslim_synonym2id_train"]
    docs = list(task.test_docs())
    records = [r for r in store.load_records("go", "train") if "synonym" in r["mentions"]]
    assert [d["source"] for d in docs] == [r["mentions"]["synonym"] for r in records]

    (data / "manifest.json").write_text(json.dumps({"terminologies": {"goslim": {"spec": spec}}}),
                                        encoding="utf-8")
    taskgen.write_task_family([store.terminology("goslim", data)], out, data_dir=data, umbrella=None)
    assert not list(out.glob("*synonym2id*")) and not list(out.glob("_group_*mentions*"))
    with pytest.raises(ValueError, match="would name the umbrella group termnorm-mentions"):
        taskgen.render_task_family([ontology_terminology("mentions", "M", "M")])


@pytest.mark.parametrize("name", [*taskgen.UMBRELLA_PARTS, "termnorm"])
def test_add_ontology_refuses_a_name_that_is_an_umbrella_group(name: str) -> None:
    from termnorm_eval.ontology.add import check_name

    with pytest.raises(TermnormError, match="clashes with a built-in terminology or group"):
        check_name(name)
