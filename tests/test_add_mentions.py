"""`termnorm add-mentions` (issue 21, item 8): a user's own mention<TAB>identifier table becomes a
task family scored against the terminology's release; unknown, obsolete, ambiguous and duplicate rows
are counted and listed, never scored. Real data: HPO lay terms and gene aliases of the shipped
records, the shipped release indexes, the real Cell Ontology added with add-ontology; hand-written
rows only for what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from termnorm_cli import one_line_error, run

from termnorm_eval.harness import taskgen
from termnorm_eval.harness.dataset import build_docs, load_task_dataset
from termnorm_eval.harness.scoring import score_document
from termnorm_eval.harness.study_protocol import study_prompt, system_prompt
from termnorm_eval.splits import release_index, store
from termnorm_eval.terminologies import BUILTIN, HPO, SPLITS, TEST_SPLIT, terminology_from_dict
from termnorm_eval.user_mentions import table as table_mod
from termnorm_eval.user_mentions.add import AddMentionsResult, add_mentions

N_LAY = 24  # HPO lay terms of the shipped val records (each a usable form: owned by its concept alone)


def hpo_lay_rows() -> list[tuple[str, str]]:
    """(lay term, HPO id) of the first val records that have a lay mention: real words of patients."""
    recs = [r for r in store.load_records("hpo", "val") if "lay" in r["mentions"]]
    return [(r["mentions"]["lay"], r["id"]) for r in recs[:N_LAY]]


def hpo_table(tmp_path: Path) -> Path:
    """Real lay terms plus one row of each problem, with a header, a blank line and CRLF line ends."""
    index = release_index.load(store.index_path("hpo"))
    obsolete = sorted(i for i, s in index.status.items() if s == "obsolete")[0]  # HP:0000057
    alt = "HP:0000038"  # a real alt_id of HP:0000054 (Micropenis)
    assert index.status[alt] == "alt" and index.primary[alt] == "HP:0000054"
    assert "HP:9999999" not in index.status
    lay = hpo_lay_rows()
    rows = [("mention", "identifier"), *lay[:-1],
            (lay[-1][0], lay[-1][1].replace(":", "_")),  # respelled identifier, still scored
            ("  Absent  kidney\x1b ", "HP:0000104"),  # a train concept's lay term, cleaned
            ("Micropenis", alt),  # the alt_id's term's own label: mapped, form label
            ("Headache of my own", "HP:9999999"),  # unknown
            ("An obsolete thing", obsolete),  # obsolete
            (lay[0][0].upper(), lay[0][1]),  # duplicate of the first row (case folded)
            (lay[1][0], lay[1][1]),  # exact duplicate
            ("Wobbly walk", "HP:0001251"), ("wobbly walk", "HP:0002317"),  # ambiguous in the file
            ("Seizure", "HP:0000104")]  # the label of HP:0001250: ambiguous in the release
    lines = ["\t".join(r) for r in rows]
    text = "\r\n".join(lines[:5]) + "\r\n\r\n" + "\n".join(lines[5:])
    path = tmp_path / "corpus.tsv"
    path.write_text(text + "\n", encoding="utf-8")
    return path


HPO_OUTCOMES = {"scored": N_LAY + 2, "unknown": 1, "obsolete": 1, "duplicate": 2, "ambiguous_in_file": 2,
                "ambiguous_in_release": 1}


@pytest.fixture(scope="module")
def hpo_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AddMentionsResult]:
    tmp = tmp_path_factory.mktemp("hpo-mentions")
    return tmp / "out", add_mentions(hpo_table(tmp), "hpo", "mycorpus", tmp / "out")


def test_hpo_table_every_row_counted_once(hpo_out: tuple[Path, AddMentionsResult]) -> None:
    out, r = hpo_out
    assert r.outcomes == HPO_OUTCOMES
    assert r.rows == sum(HPO_OUTCOMES.values()) == 33
    assert r.notes == {"header": 1, "blank_lines": 1, "respelled": 1, "mention_cleaned": 1,
                       "alt_mapped": 1}
    assert r.forms == {"synonym": N_LAY + 1, "label": 1}
    # HP:0000104 is a shipped training concept, the lay terms' concepts are val ones
    assert r.in_splits == {"train": 1, "val": N_LAY}
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    entry = manifest["terminologies"]["mycorpus"]
    assert entry["user_mentions"]["outcomes"] == HPO_OUTCOMES
    assert entry["counts"] == {"test": N_LAY + 2} and entry["popularity"] == "none (a user's mentions)"
    assert entry["spec"]["mentions_of"] == "hpo"
    assert manifest["parameters"]["made_by"] == "termnorm add-mentions"
    card = (out / "DATA_CARD.md").read_text(encoding="utf-8")
    assert "| 1 | identifier not in the release: left out |" in card


def test_hpo_left_out_rows_name_line_and_reason(hpo_out: tuple[Path, AddMentionsResult]) -> None:
    out, _ = hpo_out
    lines = (out / "mycorpus" / "left_out.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "line\tmention\tidentifier\toutcome\tdetail"
    got = [line.split("\t") for line in lines[1:]]
    assert [(g[0], g[3]) for g in got] == [
        ("29", "unknown"), ("30", "obsolete"), ("31", "duplicate"), ("32", "duplicate"),
        ("33", "ambiguous_in_file"), ("34", "ambiguous_in_file"), ("35", "ambiguous_in_release")]
    assert got[2][4] == "repeats line 2" and got[3][4] == "repeats line 3"
    assert got[4][4] == "line 34: HP:0002317 (Unsteady gait)"
    assert got[6][4] == "also names HP:0001250 (Seizure)"


def test_hpo_records_are_the_scored_rows(hpo_out: tuple[Path, AddMentionsResult]) -> None:
    out, _ = hpo_out
    recs = [json.loads(x) for x in (out / "mycorpus" / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    lay = hpo_lay_rows()
    assert [(r["mentions"]["user"], r["id"]) for r in recs[:N_LAY]] == lay
    assert recs[N_LAY - 1]["identifier"] == lay[-1][1].replace(":", "_")
    kidney, micropenis = recs[N_LAY], recs[N_LAY + 1]
    assert kidney["mentions"] == {"user": "Absent kidney"} and kidney["name"] == "Renal agenesis"
    assert micropenis["id"] == "HP:0000054" and micropenis["identifier"] == "HP:0000038"
    assert "HP:0000038" in micropenis["alt_ids"] and micropenis["form"] == "label"
    assert all(r["popularity"] is None and r["bin"] is None for r in recs)
    assert len({r["item_id"] for r in recs}) == len(recs)
    # the release index is the shipped one, byte for byte: documents name the same release
    assert (out / "mycorpus" / "index.tsv.gz").read_bytes() == store.index_path("hpo").read_bytes()


def test_hpo_tasks_and_documents(hpo_out: tuple[Path, AddMentionsResult]) -> None:
    out, r = hpo_out
    assert r.tasks == ["termnorm_mycorpus_mention2id_test"]
    assert r.study_tasks == ["termnorm-study_mycorpus_mention2id_test"]
    term = store.terminology("mycorpus", out)
    assert term.mentions_of == "hpo" and [d.splits for d in term.all_directions] == [(TEST_SPLIT,)]
    docs = build_docs("mycorpus", "mention2id", TEST_SPLIT, out)
    assert len(docs) == N_LAY + 2
    first = docs[0]
    assert first["source"] == hpo_lay_rows()[0][0] and first["answer"] == hpo_lay_rows()[0][1]
    assert first["question"] == HPO.direction("term2id").prompt({"name": first["source"]}, HPO)
    assert first["stratum"] == store.NO_STRATUM and first["popularity"] is None
    assert set(load_task_dataset("mycorpus", "mention2id", out)) == {TEST_SPLIT}
    # a wrong but live answer is classed against the concept, though item_id names the document
    parent = release_index.load(store.index_path("hpo")).parents_of(first["answer"])[0]
    scores = score_document(first, parent)
    assert scores["validity_wrong_parent"] == 1.0 and scores["hierarchy_credit"] == 0.5
    # no popularity, no stratum metric (exact_match_low/mid/high, nor a made-up one)
    assert {k for k in scores if k.startswith("exact_match")} == {"exact_match", "exact_match_hidden"}
    leaf = (out / "termnorm_mycorpus_mention2id_test.yaml").read_text(encoding="utf-8")
    assert "fewshot_split: null" in leaf and "sampler: !function utils.NoFewshotSampler" in leaf
    assert "test_split: test" in leaf


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("mentions_of", ["hpo"], "mentions_of must be a terminology key (a string), not a list"),
    ("mentions_of", {"key": "hpo"}, "mentions_of must be a terminology key (a string), not an object"),
    ("description", ["x"], "description must be a string, not a list"),
])
def test_hand_edited_manifest_spec_is_one_line(hpo_out: tuple[Path, AddMentionsResult], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], field: str, value: object,
                                               expected: str) -> None:
    """A hand-edited spec of another shape names the manifest and the field, not an unhashable type."""
    out, _ = hpo_out
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["terminologies"]["mycorpus"]["spec"][field] = value
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(store.SplitDataError) as e:
        store.terminology("mycorpus", tmp_path)
    assert str(e.value) == f"{tmp_path / 'manifest.json'}: terminologies.mycorpus: {expected}"


def test_user_terminology_round_trip_and_study_prompt() -> None:
    from termnorm_eval.terminologies import user_mentions_terminology

    for of in BUILTIN.values():
        user = user_mentions_terminology("mine", of)
        assert terminology_from_dict(user.to_dict()) == user
        (d,) = user.all_directions
        label = of.direction(d.mirrors or "")
        assert d.templates == label.templates and d.lenient_fields == label.lenient_fields
        # the study family asks the terminology's own study question
        assert study_prompt(user, d.name) == study_prompt(of, label.name)
        assert system_prompt(user) == system_prompt(of)
    genes = user_mentions_terminology("g", BUILTIN["gene"])
    assert [d.name for d in genes.all_directions] == ["mention2symbol"]


def test_builtin_leaves_keep_their_few_shot_split() -> None:
    files = taskgen.render_task_family(BUILTIN.values())
    assert not any("NoFewshotSampler" in t for n, t in files.items() if n.endswith(".yaml"))


# --- genes ---------------------------------------------------------------------------------------

def test_gene_table_aliases_ids_and_symbols(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recs = [r for r in store.load_records("gene", "val") if "alias" in r["mentions"]][:6]
    rows = [(r["mentions"]["alias"], r["id"]) for r in recs[:3]]  # HGNC IDs
    rows += [(r["mentions"]["alias"], r["symbol"]) for r in recs[3:5]]  # approved symbols
    rows += [(recs[5]["mentions"]["alias"], recs[5]["symbol"].lower())]  # a symbol's case: respelled
    rows += [("ribonuclease/angiogenin inhibitor 1", "RNH"),  # previous symbol of RNH1 alone: mapped
             ("some withdrawn locus", "HGNC:1"),  # withdrawn
             ("B-cell lymphoma 7A", "SMARCJ1"),  # an alias of BCL7A used as identifier
             ("made-up gene", "NOTAGENE9")]  # unknown
    path = tmp_path / "genes.tsv"
    path.write_text("".join(f"{m}\t{i}\n" for m, i in rows), encoding="utf-8")
    out = tmp_path / "out"
    code, text, err = run(["add-mentions", str(path), "--terminology", "gene", "--name", "mygenes",
                           "--out", str(out)], capsys)
    assert code == 0, err
    assert "        7  rows scored (one document each)" in text
    assert "        1  gene symbol that is only an alias, or a symbol of several genes" in text
    assert "        1  identifier obsolete in the release (genes: withdrawn): left out" in text
    assert "        1  identifier not in the release: left out" in text
    assert ("forms     of the scored mentions: 6 an alias symbol of the gene, 1 the gene's approved name"
            in text)
    assert "tasks termnorm_mygenes_mention2symbol_test" in text
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    notes = manifest["terminologies"]["mygenes"]["user_mentions"]["notes"]
    assert notes == {"respelled": 1, "alt_mapped": 1}
    docs = build_docs("mygenes", "mention2symbol", TEST_SPLIT, out)
    assert [d["answer"] for d in docs] == [r["symbol"] for r in recs] + ["RNH1"]
    assert docs[-1]["alternatives"] == ["RNH1", "RNH"]  # its previous symbol, owned by it alone
    assert docs[0]["question"] == BUILTIN["gene"].direction("name2symbol").prompt(
        {"name": recs[0]["mentions"]["alias"]}, BUILTIN["gene"])


def _resolved(tmp_path: Path, key: str, rows: list[tuple[str, str]]) -> AddMentionsResult:
    path = tmp_path / "t.tsv"
    path.write_text("".join(f"{m}\t{i}\n" for m, i in rows), encoding="utf-8")
    return add_mentions(path, key, "t", tmp_path / "out")


def test_gene_record_lenient_answers_are_the_shipped_records(tmp_path: Path) -> None:
    """A user's record of a shipped gene gets the shipped record's previous symbols as lenient answers
    (one ownership rule, ``mentions.GeneOwners``): RPGR's CRD, RP3 and COD1 are other genes' aliases,
    not their symbols or previous symbols, so they stay."""
    shipped = {r["symbol"]: r for s in SPLITS for r in store.load_records("gene", s)}
    genes = ("RPGR", "SDHB", "SULT1A1", "RHAG")
    r = _resolved(tmp_path, "gene", [(next(iter(shipped[g]["mentions"].values())), g) for g in genes])
    recs = [json.loads(x) for x in r.test_file.read_text(encoding="utf-8").splitlines()]
    assert [x["symbol"] for x in recs] == list(genes)
    for rec in recs:
        assert rec["prev_symbols"] == shipped[rec["symbol"]]["prev_symbols"], rec["symbol"]
    assert "CRD" in recs[0]["prev_symbols"]


def test_notes_count_the_scored_rows_only(tmp_path: Path) -> None:
    """alt_mapped says "scored as the concept's primary identifier": a left-out row is not counted."""
    lay = hpo_lay_rows()
    r = _resolved(tmp_path, "hpo", [
        ("Micropenis", "HP:0000038"),  # an alt_id: mapped and scored
        ("MICROPENIS", "HP:0000038"),  # its duplicate: left out
        ("Seizure", "HP:0000038"),  # an alt_id, but the mention is another concept's label: left out
        ("Headache of my own", "HP_9999999"),  # respelled, but unknown: left out
        (lay[0][0], lay[0][1].replace(":", "_")),  # respelled and scored
        (lay[0][0].lower(), lay[0][1].replace(":", "_")),  # respelled, a duplicate: left out
    ])
    assert r.outcomes["scored"] == 2
    assert r.notes == {"alt_mapped": 1, "respelled": 1}


def test_a_duplicate_of_a_left_out_row_is_left_out_for_the_same_reason(tmp_path: Path) -> None:
    """Nothing is "scored once" when the first row is not scored: the repeat shares its outcome."""
    r = _resolved(tmp_path, "hpo", [
        *hpo_lay_rows()[:2],
        ("Wobbly walk", "HP:0001251"), ("wobbly walk", "HP:0002317"),  # ambiguous in the file
        ("WOBBLY WALK", "HP:0001251"),  # a repeat of line 3
        ("Seizure", "HP:0000104"), ("seizure", "HP:0000104"),  # ambiguous in the release, twice
    ])
    assert r.outcomes == {"scored": 2, "unknown": 0, "obsolete": 0, "duplicate": 0, "ambiguous_in_file": 3,
                          "ambiguous_in_release": 2}
    got = [line.split("\t") for line in r.left_out_file.read_text(encoding="utf-8").splitlines()[1:]]
    assert [(g[0], g[3]) for g in got] == [("3", "ambiguous_in_file"), ("4", "ambiguous_in_file"),
                                           ("5", "ambiguous_in_file"), ("6", "ambiguous_in_release"),
                                           ("7", "ambiguous_in_release")]
    assert got[2][4].startswith("repeats line 3: ") and got[4][4].startswith("repeats line 6: ")


def test_a_symbol_that_is_previous_symbol_and_alias_of_one_gene_maps_to_it(tmp_path: Path) -> None:
    """PGY1 is both a previous symbol and an alias of ABCB1 alone: an identifier of ABCB1."""
    r = _resolved(tmp_path, "gene", [("P-glycoprotein of my corpus", "PGY1")])
    assert r.outcomes["scored"] == 1 and r.notes == {"alt_mapped": 1}
    (rec,) = [json.loads(x) for x in r.test_file.read_text(encoding="utf-8").splitlines()]
    assert rec["symbol"] == "ABCB1" and "PGY1" in rec["prev_symbols"] and "PGY1" in rec["alias_symbols"]


# --- an added ontology ----------------------------------------------------------------------------

def test_added_ontology_mentions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from termnorm_eval.ontology import add_ontology
    from termnorm_eval.sources.mirrors import extract

    cl, _ = extract("cl.obo")
    onto = tmp_path / "cl"
    add_ontology(cl, "cl", onto, per_bin=5)
    recs = [r for r in store.load_records("cl", "train", onto) if "synonym" in r["mentions"]][:5]
    path = tmp_path / "cells.tsv"
    rows = [f"{r['mentions']['synonym']}\t{r['id']}\n" for r in recs] + ["a cell\tCL:9999999\n"]
    path.write_text("".join(rows), encoding="utf-8")
    one_line_error(["add-mentions", str(path), "--terminology", "cl", "--name", "mycells", "--out",
                    str(tmp_path / "x")], capsys, "--terminology cl: not built in", "--data-dir")
    out = tmp_path / "out"
    code, text, err = run(["add-mentions", str(path), "--terminology", "cl", "--name", "mycells", "--out",
                           str(out), "--data-dir", str(onto)], capsys)
    assert code == 0, err
    assert "        5  rows scored" in text and "        1  identifier not in the release" in text
    assert "concepts  5 distinct; 5 in the cl train split, 0 in the cl val split" in text
    docs = build_docs("mycells", "mention2id", TEST_SPLIT, out)
    assert [d["answer"] for d in docs] == [r["id"] for r in recs]
    assert docs[0]["question"].startswith('What is the CL identifier for the CL term "')
    assert not (onto / "mycells").exists()  # nothing written into the ontology's data folder
    one_line_error(["add-mentions", str(path), "--terminology", "mycells", "--name", "again", "--out",
                    str(tmp_path / "y"), "--data-dir", str(out)], capsys, "is itself a user's mention table")


# --- bad input: one line naming file and line, exit 2, nothing written ---------------------------

@pytest.mark.parametrize(("content", "expected"), [
    (b"Seizure HP:0001250\n", ":1: no tab; each line is MENTION<TAB>IDENTIFIER"),
    (b"Seizure\tHP:0001250\nFits\tHP:0001250\textra\n", ":2: 3 tab-separated fields"),
    (b"Seizure\tHP:0001250\n \tHP:0001250\n", ":2: empty mention"),
    (b"Seizure\t \n", ":1: empty identifier"),
    (b"Seizure\tHP:0001250\nConvuls\xe9ions\tHP:0001250\n", ":2: not UTF-8 text (byte 0xe9)"),
    (b"Seizure\tGO:0008150\n", ":1: identifier 'GO:0008150' is no HPO identifier (like HP:1234567); "
     "is --terminology right?"),
    (b"Seizure\tHP:12\n", ":1: identifier 'HP:12' is no HPO identifier"),
    (b"x" * 1001 + b"\tHP:0001250\n", ":1: mention of 1001 characters; at most 1000"),
    (b"", "empty file"),
    (b"mention\tidentifier\n\n", "no mention<TAB>identifier row (only a header and blank lines)"),
    (b"Fits\tHP:9999999\nOld\tHP:0000057\n", "no row left to score (unknown 1, obsolete 1)"),
])
def test_bad_table_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes,
                               expected: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    out = tmp_path / "out"
    line = one_line_error(["add-mentions", str(path), "--terminology", "hpo", "--name", "bad", "--out",
                           str(out)], capsys, expected)
    assert str(path) in line
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.tsv"]


def test_gene_identifier_with_spaces_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "g.tsv"
    path.write_text("breast cancer 1\tBRCA 1\n", encoding="utf-8")
    one_line_error(["add-mentions", str(path), "--terminology", "gene", "--name", "g", "--out",
                    str(tmp_path / "out")], capsys, f"{path}:1: identifier 'BRCA 1' is no HGNC ID")


def test_size_bounds(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
                     ) -> None:
    path = tmp_path / "big.tsv"
    path.write_text("Seizure\tHP:0001250\nFits\tHP:0001250\nConvulsions\tHP:0001250\n", encoding="utf-8")
    argv = ["add-mentions", str(path), "--terminology", "hpo", "--name", "big", "--out", str(tmp_path / "o")]
    monkeypatch.setattr(table_mod, "MAX_ROWS", 2)
    one_line_error(argv, capsys, f"{path}:3: more than 2 rows; split the table")
    monkeypatch.setattr(table_mod, "MAX_BYTES", 40)
    one_line_error(argv, capsys, f"{path}: 0.0 MiB; a mention table may hold at most")


@pytest.mark.parametrize(("argv", "expected"), [
    (["--terminology", "mesh"], "--terminology mesh: not built in (go, hpo, gene)"),
    (["--name", "hpo"], "--name 'hpo': clashes with a built-in terminology"),
    (["--name", "Bad-Name"], "--name 'Bad-Name': use lower-case letters and digits"),
])
def test_bad_options_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                  expected: str) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("Seizure\tHP:0001250\n", encoding="utf-8")
    opts = {"--terminology": "hpo", "--name": "ok", "--out": str(tmp_path / "out")}
    opts.update(dict(zip(argv[::2], argv[1::2], strict=True)))
    one_line_error(["add-mentions", str(path), *(x for kv in opts.items() for x in kv)], capsys, expected)


def test_output_folder_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("Seizure\tHP:0001250\n", encoding="utf-8")
    base = ["add-mentions", str(path), "--terminology", "hpo", "--name", "mine", "--out"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine", encoding="utf-8")
    one_line_error([*base, str(foreign), "--force"], capsys, "folder is not empty and holds no termnorm "
                   "add-mentions output")
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "mine"
    one_line_error([*base, str(store.shipped_data_dir() / "mine")], capsys, "inside the data folder")
    one_line_error([*base, str(tmp_path)], capsys, "holds", "an input of this run")
    out = tmp_path / "out"
    assert run([*base, str(out)], capsys)[0] == 0
    one_line_error([*base, str(out)], capsys, "already holds an add-mentions output (use --force")
    path.write_text("Fits\tHP:0001250\n", encoding="utf-8")
    assert run([*base, str(out), "--force"], capsys)[0] == 0
    record = json.loads((out / "mine" / "test.jsonl").read_text(encoding="utf-8"))
    assert record["mentions"] == {"user": "Fits"}
