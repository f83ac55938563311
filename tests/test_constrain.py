"""Constrained decoding (issue 23, hf): answers that can only be live answers of the asked terminology.

The prefix tree spells exactly the live identifiers (labels, symbols) of the release index; through the
harness a model that answers nonsense when free (the tiny random Llama repeats ':') answers only live
identifiers, symbols and labels when constrained (RAG: the shown candidates), with and without a chat
template; SmolLM2 stays greedy; plain lm-eval users get the model through ``python -m
termnorm_eval.harness.constrained_lm`` or ``simple_evaluate``; bad inputs are one line and write nothing.
"""

from __future__ import annotations

import gzip
import json
import shutil
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from termnorm_cli import one_line_error

from termnorm_eval.cli import main
from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import constrain, taskgen
from termnorm_eval.harness.constrain import AnswerSet, Constrainer
from termnorm_eval.harness.dataset import build_docs, load_task_dataset
from termnorm_eval.splits import release_index as ri
from termnorm_eval.splits import store
from termnorm_eval.terminologies import BUILTIN
from termnorm_eval.text import normalize_text

REPO = Path(__file__).resolve().parent.parent
LIMIT = 4
# identifier, mention, symbol, name and retrieval-augmented tasks of the three terminologies
TASKS = ["termnorm_go_term2id_val", "termnorm_hpo_lay2id_val", "termnorm_gene_name2symbol_val",
         "termnorm_hpo_id2term_val", "termnorm-rag_go_term2id_val"]


def live(key: str, fmt: str) -> set[str]:
    """The live answers of a format, read from the release index independently of ``constrain``."""
    rows = [r for r in ri.read_rows(store.index_path(key)) if r[1] == "live"]
    column = {"curie": lambda r: [r[0]], "symbol": lambda r: r[5][:1], "name": lambda r: r[4][:1]}[fmt]
    return {a for r in rows for a in column(r)}


def spec_of(key: str, direction: str, data_dir: Path | None = None) -> AnswerSet:
    doc = build_docs(key, direction, "val", data_dir=data_dir)[0]
    return constrain.answer_set(doc, taskgen.task_name(key, direction, "val"))


def char_tokenizer(missing: str) -> Any:
    """A character tokenizer over printable ASCII less ``missing`` (anything else is an unknown token,
    which decoding drops): one that cannot spell every answer."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in string.printable if c not in "\t\n\r\x0b\x0c" + missing]
    vocab = {t: i for i, t in enumerate(["<|endoftext|>", "<|pad|>", "[UNK]", "\n", *chars])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                   unk_token="[UNK]")


def smollm2_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from termnorm_eval import models

    path = models.prepared_path()
    if not models.is_prepared():
        pytest.skip("the default model is not prepared (termnorm model path)")
    return AutoTokenizer.from_pretrained(path)


def paths(tree: constrain.Tree) -> list[list[int]]:
    """Every token sequence the tree spells (depth first)."""
    out: list[list[int]] = []
    stack: list[tuple[int, list[int]]] = [(0, [])]
    while stack:
        node, seq = stack.pop()
        if tree.terminal[node]:
            out.append(seq)
        lo, hi = int(tree.offsets[node]), int(tree.offsets[node + 1])
        stack.extend((int(tree.targets[e]), [*seq, int(tree.tokens[e])]) for e in range(lo, hi))
    return out


# --- the tree ---------------------------------------------------------------------------------------


def test_a_rag_document_may_answer_exactly_its_shown_candidates() -> None:
    tok = smollm2_tokenizer()
    doc = next(d for d in load_task_dataset("go", "term2id", rag=True)["val"] if len(d["candidates"]) > 5)
    spec = constrain.answer_set(doc, "termnorm-rag_go_term2id_val")
    tree = Constrainer(tok).tree(spec)
    spelled = tok.batch_decode(paths(tree), skip_special_tokens=True)
    assert sorted(s.strip() for s in spelled) == sorted(doc["candidates"] * 2)  # bare and after a space
    assert tree.answers == len(doc["candidates"]) and not tree.terminal[0]
    other = next(i for i in sorted(live("go", "curie")) if i not in doc["candidates"])
    assert not tree.accepts(tok.encode(other, add_special_tokens=False))


@pytest.mark.slow
@pytest.mark.parametrize("which", ["smollm2", "tiny"])
def test_the_go_tree_spells_exactly_the_live_go_identifiers(which: str, tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = smollm2_tokenizer() if which == "smollm2" else AutoTokenizer.from_pretrained(tiny_model)
    ids = live("go", "curie")
    tree = Constrainer(tok).tree(spec_of("go", "term2id"))
    assert (tree.answers, tree.unreachable) == (len(ids), ())
    spelled = [s.strip() for s in tok.batch_decode(paths(tree), skip_special_tokens=True)]
    assert sorted(spelled) == sorted([*ids, *ids])  # every live id, bare and after a space, and nothing else
    for i in sorted(ids)[::97]:  # as the tokenizer writes it bare and after a space
        assert tree.accepts(tok.encode(i, add_special_tokens=False))
        assert tree.accepts(tok.encode(f" {i}", add_special_tokens=False))
    index = ri.load(store.index_path("go"))
    obsolete = next(i for i, s in index.status.items() if s == "obsolete")
    alt = next(iter(index.primary))
    gold = sorted(ids)[0]
    for wrong in (obsolete, alt, "HP:0001250", "", gold[:-1], gold + "0"):
        assert not tree.accepts(tok.encode(wrong, add_special_tokens=False)), wrong


@pytest.mark.slow
def test_labels_and_symbols_trees_spell_the_live_labels_and_symbols() -> None:
    tok = smollm2_tokenizer()
    for key, direction, fmt in (("hpo", "id2term", "name"), ("gene", "name2symbol", "symbol")):
        tree = Constrainer(tok).tree(spec_of(key, direction))
        spelled = {s.strip() for s in tok.batch_decode(paths(tree), skip_special_tokens=True)}
        assert spelled == live(key, fmt) and tree.answers == len(spelled), key


@pytest.mark.slow
def test_answers_the_tokenizer_cannot_spell_are_counted_and_never_allowed(
        capsys: pytest.CaptureFixture[str]) -> None:
    tok = char_tokenizer(missing="9")
    ids = live("go", "curie")
    tree = Constrainer(tok, "no-nines").tree(spec_of("go", "term2id"))
    without = {i for i in ids if "9" not in i}
    assert set(tree.unreachable) == ids - without and tree.answers == len(without)
    line = capsys.readouterr().err.strip()
    assert line == (f"termnorm: constrained decoding: the tokenizer of no-nines cannot spell "
                    f"{len(ids) - len(without):,} of the {len(ids):,} live go identifiers "
                    f"(e.g. {min(ids - without)!r}); no answer can be one of them")
    spelled = {s.strip() for s in tok.batch_decode(paths(tree), skip_special_tokens=True)}
    assert spelled == without


def test_a_tokenizer_that_can_spell_none_is_refused() -> None:
    tok = char_tokenizer(missing="H")  # HP:... never
    ids = live("hpo", "curie")
    first = min(ids)
    with pytest.raises(TermnormError) as e:
        Constrainer(tok, "no-h").tree(spec_of("hpo", "term2id"))
    assert str(e.value) == (f"tokenizer of no-h: cannot spell any of the {len(ids):,} live hpo "
                            f"identifiers (e.g. {first!r} decodes as {first[1:]!r}); constrained decoding "
                            "needs a tokenizer that can write them")


def _data_copy(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(store.shipped_data_dir(), data)
    return data


def test_a_stale_or_empty_release_index_is_named(tmp_path: Path) -> None:
    data = _data_copy(tmp_path)
    index = data / "hpo" / ri.FILE_NAME
    text = gzip.decompress(index.read_bytes()).decode()
    # an index of its own (the shipped one, byte-identical, would still answer for the copy's digest)
    index.write_bytes(gzip.compress(text.rsplit("\n", 2)[0].encode() + b"\n"))
    spec = spec_of("hpo", "term2id", data)
    assert spec.release == ri.digest_of(index)
    index.write_bytes(gzip.compress(text.rsplit("\n", 3)[0].encode() + b"\n"))  # rebuilt: a row less
    with pytest.raises(TermnormError, match=f"^hpo: the documents name release index {spec.release}, which "
                                            "is not the index there now \\(stale"):
        constrain.live_answers(spec)
    index.write_bytes(gzip.compress(text.split("\n", 1)[0].encode() + b"\n"))  # no row at all
    with pytest.raises(TermnormError, match=f"^{index}: no live hpo identifiers in the release index"):
        constrain.live_answers(spec_of("hpo", "term2id", data))
    index.unlink()
    with pytest.raises(TermnormError, match=r"its documents name no release index .*hpo/index\.tsv\.gz"):
        spec_of("hpo", "term2id", data)


def test_a_stop_string_inside_an_answer_is_refused() -> None:
    spec = spec_of("hpo", "id2term")
    constrain.check_stops(spec, ("\n", "<|im_end|>"), "t")
    inside = sorted(a for a in live("hpo", "name") if " of " in a)
    with pytest.raises(TermnormError) as e:
        constrain.check_stops(spec, ("\n", " of "), "t")
    assert str(e.value) == (f"task t: the stop string ' of ' occurs in {len(inside):,} of the live hpo "
                            f"labels (e.g. {inside[0]!r}), which generation would cut there; leave it out "
                            "of until")


# --- termnorm eval --constrain: refused inputs before anything runs ---------------------------------


@pytest.mark.parametrize("argv, expected", [
    (["--engine", "vllm"], "--constrain --engine vllm: constrained decoding runs on --engine hf only"),
    (["--engine", "vllm-server", "--base-url", "http://127.0.0.1:9/v1", "--served-model", "m"],
     "--constrain --engine vllm-server: constrained decoding runs on --engine hf only"),
    (["--model", "local-chat-completions", "--model-args", "model=m"],
     "--constrain --model local-chat-completions: only the hf backend can constrain"),
])
def test_constrain_with_a_backend_that_cannot_is_one_line(argv: list[str], expected: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    one_line_error(["eval", "--constrain", "--tasks", "termnorm_go_term2id_val", "--limit", "1",
                    "--output-path", str(out), *argv], capsys, expected)
    assert not out.exists()


# --- through the harness ----------------------------------------------------------------------------


def _samples(out: Path, task: str) -> list[dict[str, Any]]:
    (path,) = out.rglob(f"samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _eval(model: Path, out: Path, tasks: list[str], *extra: str, limit: int = LIMIT) -> dict[str, Any]:
    try:
        main(["eval", "--model-args", f"pretrained={model},dtype=float32", "--tasks", ",".join(tasks),
              "--limit", str(limit), "--device", "cpu", "--batch-size", "4", "--output-path", str(out),
              "--log-samples", *extra])
    except SystemExit as e:
        assert not e.code, e.code
    (path,) = out.rglob("results_*.json")
    return json.loads(path.read_text(encoding="utf-8"))


def allowed(doc: dict[str, Any]) -> set[str]:
    """What a constrained answer of ``doc`` may be: a live answer of its terminology and format (of
    its prefix, for identifiers), and one of the shown candidates where it has any."""
    fmt = doc["answer_format"]
    answers = live(doc["terminology"], fmt)
    if fmt == "curie":
        answers = {a for a in answers if a.startswith(f"{doc['id_prefix']}:")}
    if doc.get("candidates"):
        answers &= set(doc["candidates"])
    return answers


def _extracted(sample: dict[str, Any]) -> str:
    value = sample["filtered_resps"]
    return str(value[0] if isinstance(value, list) else value)


def _check_constrained(out: Path, tasks: list[str], limit: int = LIMIT) -> None:
    """Every response of ``tasks`` is an allowed answer, and so is what the extraction reads in it."""
    for task in tasks:
        samples = _samples(out, task)
        assert len(samples) == limit, task
        for s in samples:
            response, answer, doc = s["resps"][0][0].strip(), _extracted(s), s["doc"]
            assert response in allowed(doc), (task, s["resps"])
            if doc["answer_format"] == "name":  # the extraction drops a label's final period
                assert normalize_text(answer) == normalize_text(response), (task, s["resps"])
            else:
                assert answer == response, (task, s["resps"])


@pytest.fixture(scope="module")
def runs(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("constrain")
    free = _eval(tiny_model, root / "free", TASKS)
    constrained = _eval(tiny_model, root / "constrained", TASKS, "--constrain")
    return {"root": root, "free": free, "constrained": constrained}


@pytest.mark.slow
def test_free_the_tiny_model_answers_nothing_valid(runs: dict[str, Any]) -> None:
    """The premise: without the constraint its answers are no live answer at all."""
    for task in TASKS:
        answers = [(_extracted(s), allowed(s["doc"])) for s in _samples(runs["root"] / "free", task)]
        assert not any(a in ok for a, ok in answers), task


@pytest.mark.slow
def test_constrained_every_answer_is_a_live_answer_of_the_asked_terminology(runs: dict[str, Any]) -> None:
    _check_constrained(runs["root"] / "constrained", TASKS)
    config = runs["constrained"]["config"]
    assert config["model"] == constrain.MODEL_NAME
    sets = config["termnorm_constrain"]["answer_sets"]
    assert sets["go curie GO"]["answers"] == len(live("go", "curie"))
    assert sets["hpo name"]["answers"] == len(live("hpo", "name"))
    assert config["termnorm_constrain"]["rag_documents"] == LIMIT


@pytest.mark.slow
def test_constrained_with_a_chat_template_too(tiny_model: Path, tmp_path: Path) -> None:
    tasks = ["termnorm_gene_id2name_val", "termnorm-rag_hpo_term2id_val"]
    _eval(tiny_model, tmp_path / "chat", tasks, "--constrain", "--apply-chat-template")
    _check_constrained(tmp_path / "chat", tasks)


@pytest.mark.slow
def test_constrained_smollm2_stays_greedy(tmp_path: Path) -> None:
    """Where SmolLM2's free answer is already a live answer, the constrained one is the same response."""
    from termnorm_eval import models

    smollm2_tokenizer()  # skips when the model is not prepared
    model, limit = models.prepared_path(), 8
    # with the candidates shown, SmolLM2 answers some of these with a bare symbol (RPL17, RPL7A)
    tasks = ["termnorm-rag_gene_name2symbol_val"]
    _eval(model, tmp_path / "free", tasks, limit=limit)
    _eval(model, tmp_path / "constrained", tasks, "--constrain", limit=limit)
    _check_constrained(tmp_path / "constrained", tasks, limit)
    same = 0
    for task in tasks:
        pairs = zip(_samples(tmp_path / "free", task), _samples(tmp_path / "constrained", task), strict=True)
        for free, con in pairs:
            if free["resps"][0][0].strip() in allowed(free["doc"]):
                assert con["resps"][0][0] == free["resps"][0][0], task
                same += 1
    assert same >= 2  # the property was tested on some documents


# --- plain lm-eval users ----------------------------------------------------------------------------


@pytest.mark.slow
def test_plain_lm_eval_through_the_module_command(tiny_model: Path, tmp_path: Path) -> None:
    """The README's command: lm-eval's own ``run`` options, with termnorm-hf registered."""
    out = tmp_path / "out"
    task = "termnorm_hpo_term2id_val"
    proc = subprocess.run(
        [sys.executable, "-m", "termnorm_eval.harness.constrained_lm", "run", "--model", "termnorm-hf",
         "--model_args", f"pretrained={tiny_model},dtype=float32", "--tasks", task, "--include_path",
         str(REPO / "tasks"), "--limit", "2", "--device", "cpu", "--output_path", str(out), "--log_samples"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples = _samples(out, task)
    assert len(samples) == 2 and all(_extracted(s) in live("hpo", "curie") for s in samples)


@pytest.mark.slow
def test_plain_lm_eval_through_simple_evaluate(tiny_model: Path) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    import termnorm_eval.harness.constrained_lm  # noqa: F401  (registers termnorm-hf)

    task = "termnorm_gene_name2id_val"
    res = lm_eval.simple_evaluate(
        model="termnorm-hf", model_args=f"pretrained={tiny_model},dtype=float32", tasks=[task],
        task_manager=TaskManager(include_path=str(REPO / "tasks"), include_defaults=False), limit=2,
        device="cpu", log_samples=True)
    assert res is not None
    answers = [str(s["filtered_resps"][0]) for s in res["samples"][task]]
    assert len(answers) == 2 and set(answers) <= live("gene", "curie"), answers


@pytest.mark.slow
def test_plain_lm_eval_alone_does_not_know_termnorm_hf() -> None:
    """What the README says: lm-eval 0.4.13 reads no model entry points."""
    code = ("import lm_eval.models; from lm_eval.api.registry import model_registry; "
            "print('hf' in model_registry, 'termnorm-hf' in model_registry)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.stdout.split() == ["True", "False"], proc.stderr[-2000:]


# --- bad inputs during the run: one line, exit 2, nothing written ------------------------------------


def _termnorm(argv: list[str]) -> tuple[int, list[str], str]:
    """A real ``termnorm`` process (lm-eval's log handlers bound to its own stderr)."""
    proc = subprocess.run([sys.executable, "-c", "from termnorm_eval.cli import main; main()", *argv],
                          capture_output=True, text=True, timeout=600)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("termnorm: error:")]
    return proc.returncode, errors, proc.stderr


def _spell_none_model(tiny: Path, out: Path) -> Path:
    """The tiny model's weights with a tokenizer that cannot write 'G'."""
    out.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(tiny / name, out / name)
    char_tokenizer(missing="G").save_pretrained(out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", ["unspellable", "empty index", "no index", "study task"])
def test_bad_inputs_are_one_line_and_write_nothing(case: str, tiny_model: Path, tmp_path: Path) -> None:
    model, task, include = tiny_model, "termnorm_go_term2id_val", []
    expected = ""
    if case == "unspellable":
        model = _spell_none_model(tiny_model, tmp_path / "model")
        ids = live("go", "curie")
        expected = (f"cannot spell any of the {len(ids):,} live go identifiers (e.g. {min(ids)!r} decodes as "
                    f"{min(ids)[1:]!r})")
    elif case == "study task":
        task = "termnorm-study_go_term2id_val"
        expected = "task termnorm-study_go_term2id_val: the study family answers in JSON"
    else:
        data = _data_copy(tmp_path)
        index = data / "go" / ri.FILE_NAME
        if case == "empty index":
            index.write_bytes(gzip.compress(("\t".join(ri.COLUMNS) + "\n").encode()))
            expected = f"{index}: no live go identifiers in the release index"
        else:
            index.unlink()
            expected = "task termnorm_go_term2id_val: its documents name no release index"
        taskgen.write_task_family([BUILTIN["go"]], tmp_path / "tasks", data_dir=data, umbrella=None)
        include = ["--include-path", str(tmp_path / "tasks")]
    out = tmp_path / "out"
    code, errors, err = _termnorm(["eval", "--constrain", "--model-args", f"pretrained={model},dtype=float32",
                                   "--tasks", task, "--limit", "1", "--device", "cpu", "--output-path",
                                   str(out), "--log-samples", *include])
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert expected in errors[0], errors[0]
    assert not out.exists()
