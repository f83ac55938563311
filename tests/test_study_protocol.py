"""The study-protocol family (termnorm-study_*): prompts, the study's JSON parsing, the filter's output,
the system prompt through the harness's description in both prompt modes, and real lm_eval runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import study_protocol as sp
from termnorm_eval.harness import taskgen, validity_names
from termnorm_eval.harness.dataset import build_docs
from termnorm_eval.harness.scoring import ExtractedAnswer, score_document
from termnorm_eval.splits import store
from termnorm_eval.terminologies import BUILTIN, SPLITS, ontology_terminology

F = taskgen.FILTER_NAME
GO_SYSTEM = ("You are a biomedical expert specializing in Gene Ontology (GO). Always respond in valid "
             "JSON format with only the requested information.")


@pytest.fixture(scope="module")
def docs() -> dict[tuple[str, str], dict[str, Any]]:
    """The first val document of every built-in terminology x direction (real shipped splits)."""
    return {(t.key, d.name): build_docs(t.key, d.name, "val")[0]
            for t in BUILTIN.values() for d in t.all_directions}


# --- the study's parser, hand-picked responses ------------------------------------------------------

@pytest.mark.parametrize(("response", "value"), [
    ('{"GO_ID": "GO:0005634"}', "GO:0005634"),  # valid JSON
    ('  {\n  "GO_ID": " GO:0005634 "\n}\n', "GO:0005634"),  # pretty-printed, value trimmed
    ('{"GO_ID": "GO:0005634", "term": "nucleus", "confidence": 0.9}', "GO:0005634"),  # extra keys
    ('Here you go:\n```json\n{"GO_ID": "GO:0005634"}\n```\nHope this helps.', "GO:0005634"),  # fence
    ('```\n{"GO_ID": "GO:0005634"}\n```', "GO:0005634"),  # fence without a language
    ('The answer is {"GO_ID": "GO:0005634"} as requested.', "GO:0005634"),  # object inside prose
    ('[{"GO_ID": "GO:0005634"}]', "GO:0005634"),  # a list is no object; the {...} inside is
    ('{"GO_ID": "None"}', "None"),  # the study's refusal
    ('{"GO_ID": null}', "None"),  # JSON null: a refusal, never an answer
    ('{"GO_ID": 5634}', "5634"),  # not a string: its str(), as the study compared
    ('{"GO_ID": "GO:0005634",}', "GO:0005634"),  # broken JSON: the "KEY": "value" regex
    ('{"GO_ID": "GO:0005634"', "GO:0005634"),  # cut off before the closing brace
    ("GO_ID: GO:0005634 (nucleus)", "GO:0005634"),  # KEY: value, its first token only
    ("{'GO_ID': 'GO:0005634'}", "GO:0005634"),  # Python dict syntax: the bare-key regex
    ("No matching GO term exists.", "None"),  # reads like a refusal
    ("The term was not found.", "None"),
    ("GO:0005634", None),  # a bare identifier is a parse error under this protocol
    ('"GO:0005634"', None),  # so is a bare JSON string
    ('{"go_id": "GO:0005634"}', None),  # keys are case-sensitive, as in the study
    ("I think it is the nucleus, GO:0005634.", None),
    ("", None),
])
def test_parse_study_value(response: str, value: str | None) -> None:
    assert sp.parse_study_value(response, "GO_ID") == value


def test_parse_names_keep_the_whole_value_only_in_json() -> None:
    assert sp.parse_study_value('{"hpo_term": "Generalized seizure"}', "hpo_term") == "Generalized seizure"
    # the study's last regex takes one token: a name outside JSON loses its other words
    assert sp.parse_study_value("hpo_term: Generalized seizure", "hpo_term") == "Generalized"
    # the refusal pattern is the study's, a plain substring test: "Abnormal bone" has no "none"
    assert sp.parse_study_value("Abnormal bone density", "hpo_term") is None
    assert sp.parse_study_value("None of these.", "hpo_term") == "None"


def test_parse_is_bounded_on_hostile_input() -> None:
    import time

    hostile = "```json {" + "}" * 200_000
    start = time.perf_counter()
    assert sp.parse_study_value(hostile, "GO_ID") is None
    assert time.perf_counter() - start < 2.0


# --- the filter's output and the unchanged scores ------------------------------------------------

def _study_rule(gold: str, value: str | None, kind: str) -> float:
    """The study notebooks' match, written out: str(gold).strip() == str(pred).strip()."""
    if value is None:
        return 0.0
    a, b = str(gold).strip(), str(value).strip()
    return float(a.lower() == b.lower() if kind == "name" else a == b)


def test_study_answer_fields(docs: dict) -> None:
    doc = docs[("go", "term2id")]
    gold = doc["answer"]
    local = gold.split(":")[1]
    ok = sp.study_answer(f'{{"GO_ID": "{gold}"}}', doc, "GO_ID")
    assert (str(ok), ok.raw, ok.parse_error) == (gold, gold, False)
    spelled = sp.study_answer(f'{{"GO_ID": "GO_{local}"}}', doc, "GO_ID")
    assert (str(spelled), spelled.raw, spelled.parse_error) == (gold, f"GO_{local}", False)
    bare = sp.study_answer(f"The GO ID is {gold}.", doc, "GO_ID")
    # parse error: nothing for the strict score, the extracted identifier for the lenient one
    assert (str(bare), bare.raw, bare.parse_error) == (gold, "", True)
    refusal = sp.study_answer('{"GO_ID": null}', doc, "GO_ID")
    assert (str(refusal), refusal.raw, refusal.parse_error) == ("", "None", False)
    assert isinstance(ok, ExtractedAnswer)


@pytest.mark.parametrize("direction", [("go", "term2id"), ("go", "id2term"), ("gene", "symbol2name"),
                                       ("gene", "name2symbol"), ("hpo", "id2term")])
def test_strict_score_is_the_study_rule_on_the_parsed_value(docs: dict, direction: tuple[str, str]) -> None:
    doc = docs[direction]
    term = BUILTIN[direction[0]]
    key = sp.study_prompt(term, direction[1]).key
    gold = doc["answer"]
    responses = [
        json.dumps({key: gold}), json.dumps({key: f"  {gold} "}), json.dumps({key: gold.upper()}),
        json.dumps({key: gold.lower()}), f"```json\n{json.dumps({key: gold}, indent=2)}\n```",
        json.dumps({key: gold + "."}), json.dumps({key: None}), gold, f"{key}: {gold}", "no idea",
    ]
    for response in responses:
        value = sp.parse_study_value(response, key)
        scores = score_document(doc, sp.study_answer(response, doc, key))
        assert scores["exact_match"] == _study_rule(gold, value, doc["answer_kind"]), response
        assert scores["lenient_match"] >= scores["exact_match"], response


def test_scoring_reports_parse_errors_of_study_answers_only(docs: dict) -> None:
    doc = docs[("hpo", "term2id")]
    if validity_names.PARSE_ERROR not in score_document(doc, ExtractedAnswer("", "", True)):
        pytest.skip("scoring.score_document does not emit parse_error yet (another change)")
    assert score_document(doc, sp.study_answer("HP:0001250", doc, "HPO_ID"))["parse_error"] == 1.0
    assert score_document(doc, sp.study_answer('{"HPO_ID": "x"}', doc, "HPO_ID"))["parse_error"] == 0.0
    assert "parse_error" not in score_document(doc, "HP:0001250")  # the plain tasks: no JSON asked


# --- prompts ---------------------------------------------------------------------------------------

def test_every_builtin_direction_has_a_study_prompt() -> None:
    keys = {}
    for term in BUILTIN.values():
        assert sp.system_prompt(term).startswith("You are a biomedical expert specializing in ")
        assert sp.system_prompt(term).endswith(
            ". Always respond in valid JSON format with only the requested information.")
        for d in term.all_directions:
            prompt = sp.study_prompt(term, d.name)
            keys[(term.key, d.name)] = prompt.key
            assert prompt.template.count(sp.SOURCE) >= 1 and f'"{prompt.key}"' in prompt.template
            assert '"None"' in prompt.template  # the study's answer for an invalid or unknown term
            assert prompt.origin == "ours" or prompt.origin.startswith("study: notebooks/")
    assert sp.system_prompt(BUILTIN["go"]) == GO_SYSTEM
    assert keys == {("go", "term2id"): "GO_ID", ("go", "id2term"): "go_term", ("hpo", "term2id"): "HPO_ID",
                    ("hpo", "id2term"): "hpo_term", ("gene", "name2symbol"): "gene_symbol",
                    ("gene", "symbol2name"): "gene_name", ("gene", "name2id"): "HGNC_ID",
                    ("gene", "id2name"): "gene_name", ("gene", "protein2symbol"): "gene_symbol",
                    ("go", "synonym2id"): "GO_ID", ("hpo", "synonym2id"): "HPO_ID",
                    ("hpo", "lay2id"): "HPO_ID",
                    ("gene", "alias2symbol"): "gene_symbol", ("gene", "prev2symbol"): "gene_symbol"}
    assert sp.study_prompt(BUILTIN["go"], "term2id").render("nucleus").endswith("\n\nGO Term: nucleus")
    # an ontology's mention is asked with the study's term->ID prompt, the form as the term
    for key, direction in (("go", "synonym2id"), ("hpo", "synonym2id"), ("hpo", "lay2id")):
        assert sp.study_prompt(BUILTIN[key], direction) is sp.study_prompt(BUILTIN[key], "term2id")
    alias = sp.study_prompt(BUILTIN["gene"], "alias2symbol").render("RH50A")
    assert alias.startswith('Given the human gene alias symbol "RH50A"')
    assert alias.endswith("Alias Symbol: RH50A")
    prev = sp.study_prompt(BUILTIN["gene"], "prev2symbol").render("RH50A")
    assert prev.startswith('Given the previous human gene symbol "RH50A"') and prev.endswith(
        "Previous Symbol: RH50A")


def test_added_ontology_prompts() -> None:
    term = ontology_terminology("cl", "CL", "CL", r"\d{7}")
    assert sp.system_prompt(term).startswith("You are a biomedical expert specializing in the CL ontology.")
    assert sp.study_prompt(term, "term2id").key == "CL_ID"
    assert sp.study_prompt(term, "id2term").key == "cl_term"
    assert "CL:1234567" in sp.study_prompt(term, "term2id").template
    # an added ontology keyed like a built-in one is not taken for it
    fake_go = ontology_terminology("go", "XO", "XO")
    assert sp.study_prompt(fake_go, "term2id").key == "XO_ID"
    with pytest.raises(TermnormError, match="no study-protocol prompt for direction 'sideways'"):
        sp.study_prompt(term, "sideways")
    with_forms = ontology_terminology("cl", "CL", "CL", r"\d{7}",
                                      mention_kinds={"synonym": {"train": 3, "val": 2}})
    assert sp.study_prompt(with_forms, "synonym2id") == sp.study_prompt(with_forms, "term2id")


def test_question_source_recovers_every_records_source() -> None:
    for term in BUILTIN.values():
        for d in term.all_directions:
            for split in SPLITS:
                records = [r for r in store.load_records(term.key, split) if d.applies_to(r)]
                got = [sp.question_source(doc["question"], term, d)
                       for doc in build_docs(term.key, d.name, split)]
                assert got == [str(d.source_value(r)) for r in records], (term.key, d.name, split)
    with pytest.raises(TermnormError, match="not rendered from this direction's prompt"):
        sp.question_source("What is TP53?", BUILTIN["gene"], BUILTIN["gene"].direction("name2symbol"))


def test_hooks(docs: dict) -> None:
    hooks = sp.make_study_hooks(None)
    doc = docs[("gene", "protein2symbol")]
    record = next(r for r in store.load_records("gene", "val") if r["id"] == doc["item_id"])
    text = hooks.doc_to_text(doc)
    assert text.startswith(f'Given the protein name "{record["protein_name"]}", provide the corresponding')
    assert text.endswith(f"Protein Name: {record['protein_name']}")
    assert json.loads(hooks.fewshot_target(doc)) == {"gene_symbol": doc["answer"]}
    lone = "\ud800"
    resps = [[f'{{"gene_symbol": "{doc["answer"]}"}}'], [f"no JSON here {lone}"]]
    out = hooks.extract_responses(resps, [doc, doc])
    assert [(str(a), a.raw, a.parse_error) for a in out] == [
        (doc["answer"], doc["answer"], False), ("JSON", "", True)]
    assert resps[1][0] == "no JSON here \ufffd"  # cleaned in place: the samples writer logs it


# --- the task objects: description as system message, prompt in both modes -------------------------

@pytest.fixture(scope="module")
def study_tasks(repo_root: Path) -> dict:
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(repo_root / "tasks"), include_defaults=False)
    return tm.load(["termnorm-study_go_term2id_val", "termnorm-study_hpo_id2term_train"])["tasks"]


def test_context_without_chat_template(study_tasks: dict) -> None:
    task = study_tasks["termnorm-study_go_term2id_val"]
    doc = task.test_docs()[0]
    ctx = task.fewshot_context(doc, 0)
    assert ctx == GO_SYSTEM + "\n\n" + sp.make_study_hooks(None).doc_to_text(doc)
    go = BUILTIN["go"]
    assert ctx.endswith(f"GO Term: {sp.question_source(doc['question'], go, go.direction('term2id'))}")
    shots = task.fewshot_context(doc, 2)
    train_ids = {r["id"] for r in store.load_records("go", "train")}
    answers = [json.loads(line) for line in shots.splitlines() if line.startswith('{"GO_ID"')]
    assert len(answers) == 2 and all(a["GO_ID"] in train_ids for a in answers)
    assert shots.count(GO_SYSTEM) == 1 and shots.startswith(GO_SYSTEM)


def test_context_with_chat_template(study_tasks: dict) -> None:
    task = study_tasks["termnorm-study_hpo_id2term_train"]
    doc = task.test_docs()[0]
    seen: list[list[dict]] = []

    def chat_template(messages: list[dict], add_generation_prompt: bool = True) -> str:
        seen.append(messages)
        return "rendered"

    assert task.fewshot_context(doc, 0, apply_chat_template=True, chat_template=chat_template) == "rendered"
    (messages,) = seen
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"].strip() == sp.system_prompt(BUILTIN["hpo"])
    assert messages[1]["content"] == sp.make_study_hooks(None).doc_to_text(doc)
    assert f'HPO ID: "{doc["item_id"]}"' in messages[1]["content"]
    assert task.config.generation_kwargs == {"until": list(taskgen.STUDY_UNTIL), "max_gen_toks": 128,
                                             "do_sample": False}
    assert "\n" not in taskgen.STUDY_UNTIL  # a pretty-printed JSON object is never cut


# --- real lm_eval runs with the tiny model ------------------------------------------------------------

def _run(tiny_model: Path, repo_root: Path, tasks: list[str], chat: bool) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(repo_root / "tasks"), include_defaults=False)
    return lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={tiny_model},dtype=float32", tasks=tasks, task_manager=tm,
        limit=2, apply_chat_template=chat, device="cpu", log_samples=True, bootstrap_iters=0,
    )


def _scoring_emits_parse_error() -> bool:
    doc = build_docs("hpo", "term2id", "val")[0]
    return validity_names.PARSE_ERROR in score_document(doc, ExtractedAnswer("", "", True))


def _check_samples(res: dict, task_names: list[str]) -> bool:
    """Every sample: filtered answer = the study filter on the response, and (once scoring emits it)
    parse_error as the filter says. Returns whether scoring emits parse_error."""
    hooks = sp.make_study_hooks(None)
    emits = _scoring_emits_parse_error()
    for name in task_names:
        for sample in res["samples"][name]:
            doc, response = sample["doc"], sample["resps"][0][0]
            expected = hooks.extract_responses([[response]], [doc])[0]
            assert sample["filtered_resps"][0] == str(expected), name
            if emits:
                assert sample[validity_names.PARSE_ERROR] == float(expected.parse_error), name
    return emits


def test_lm_eval_run_plain_prompt(tiny_model: Path, repo_root: Path) -> None:
    names = ["termnorm-study_go_term2id_val", "termnorm-study_gene_symbol2name_train"]
    res = _run(tiny_model, repo_root, names, chat=False)
    for name in names:
        prompt = res["samples"][name][0]["arguments"][0][0]
        system = sp.system_prompt(BUILTIN[name.split("_")[1]])
        assert prompt.startswith(system + "\n\n") and "<|system|>" not in prompt
        assert res["configs"][name]["generation_kwargs"]["until"] == list(taskgen.STUDY_UNTIL)
        row = res["results"][name]
        assert 0.0 <= row[f"exact_match,{F}"] <= row[f"lenient_match,{F}"] <= 1.0
        assert res["higher_is_better"][name] == taskgen.STUDY_HIGHER_IS_BETTER
    if _check_samples(res, names):
        for name in names:
            assert 0.0 <= res["results"][name][f"parse_error,{F}"] <= 1.0


def test_lm_eval_run_chat_template_group(tiny_model: Path, repo_root: Path) -> None:
    res = _run(tiny_model, repo_root, ["termnorm-study-hpo"], chat=True)
    names = sorted(taskgen.study_task_name("hpo", d.name, s)
                   for d in BUILTIN["hpo"].all_directions for s in SPLITS)
    assert sorted(res["results"]) == sorted([*names, "termnorm-study-hpo"])
    for name in names:
        prompt = res["samples"][name][0]["arguments"][0][0]
        assert prompt.startswith("<|system|>" + sp.system_prompt(BUILTIN["hpo"]))
        assert "<|user|>" in prompt and prompt.endswith("<|assistant|>")
    group = res["groups"]["termnorm-study-hpo"]
    for metric in ("exact_match", "lenient_match"):
        values = [res["results"][n][f"{metric},{F}"] for n in names]
        assert group[f"{metric},{F}"] == pytest.approx(sum(values) / len(values))
    if _check_samples(res, names):
        values = [res["results"][n][f"parse_error,{F}"] for n in names]
        assert group[f"parse_error,{F}"] == pytest.approx(sum(values) / len(values))
