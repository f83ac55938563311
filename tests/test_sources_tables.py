"""GAF, HPOA and HGNC readers on the real releases, both HGNC column sets, and broken tables."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources import mirrors
from termnorm_eval.sources.gaf import read_gaf, read_whole
from termnorm_eval.sources.hgnc import read_hgnc
from termnorm_eval.sources.hpoa import read_hpoa


@pytest.fixture(scope="module")
def gaf_path() -> Path:
    return mirrors.extract("goa_human.gaf.gz")[0]


@pytest.fixture(scope="module")
def gaf(gaf_path: Path):
    return read_gaf(gaf_path)


@pytest.fixture(scope="module")
def hgnc_path() -> Path:
    return mirrors.extract("hgnc_complete_set.txt")[0]


# --- GAF -----------------------------------------------------------------------------------------

def test_gaf_release(gaf) -> None:
    assert gaf.data_version == "2019-01-14 09:47"
    assert gaf.rows == 475402
    assert gaf.not_rows == 1187  # qualifier NOT, NOT|colocalizes_with, NOT|contributes_to
    assert len(gaf.term_genes["GO:0005634"]) == 5527  # nucleus: distinct genes
    assert "TP53" in gaf.term_genes["GO:0005634"]
    assert gaf.symbol_names["TP53"].most_common(1)[0][0] == "Cellular tumor antigen p53"
    assert len(gaf.symbol_pmids["TP53"]) == 370
    assert all(p.startswith("PMID:") for p in gaf.symbol_pmids["TP53"])
    # the tie-breaking counts: papers per term, GO terms per gene
    assert gaf.term_pmids["GO:0005634"] and all(p.startswith("PMID:") for p in gaf.term_pmids["GO:0005634"])
    assert gaf.term_pmids["GO:0005634"] <= set().union(*gaf.accession_pmids.values())
    assert "GO:0005634" in gaf.symbol_terms["TP53"] and len(gaf.symbol_terms["TP53"]) > 100


def test_gaf_genes_per_paper(gaf) -> None:
    """The mass-annotation paper of the issue: PMID 21873635 (phylogenetic annotation) is cited for
    11,198 gene symbols; a focused paper for a few."""
    assert gaf.pmid_genes["PMID:21873635"] == 11198
    assert max(gaf.pmid_genes.values()) == 11198
    assert sum(1 for n in gaf.pmid_genes.values() if n >= 1000) == 5
    assert sum(1 for n in gaf.pmid_genes.values() if n <= 100) == 36188
    assert len(gaf.pmid_genes) == 36232
    tp53_only = [p for p in gaf.symbol_pmids["TP53"] if gaf.pmid_genes[p] == 1]
    assert len(tp53_only) == 52  # papers about TP53 alone


def test_gaf_not_rows_are_not_counted(tmp_path: Path, gaf_path: Path) -> None:
    with gzip.open(gaf_path, "rt", encoding="utf-8") as fh:
        rows = [line for _, line in zip(range(200), fh, strict=False) if not line.startswith("!")]
    cols = rows[0].rstrip("\n").split("\t")
    negated = cols.copy()
    negated[3], negated[4] = "NOT", "GO:9999999"
    p = tmp_path / "mini.gaf"  # plain text, not gzip: both must work
    p.write_text("!gaf-version: 2.1\n" + "".join(rows) + "\t".join(negated) + "\n", encoding="utf-8")
    mini = read_gaf(p)
    assert mini.rows == len(rows) + 1 and mini.not_rows == 1
    assert "GO:9999999" not in mini.term_genes
    assert cols[2] in mini.term_genes[cols[4]]


def test_gaf_wrong_column_count_names_line(tmp_path: Path, gaf_path: Path) -> None:
    with gzip.open(gaf_path, "rt", encoding="utf-8") as fh:
        head = [line for _, line in zip(range(20), fh, strict=False)]
    bad = "\t".join(head[-1].split("\t")[:12]) + "\n"
    p = tmp_path / "bad.gaf"
    p.write_text("".join(head) + bad, encoding="utf-8")
    with pytest.raises(TermnormError, match=rf"bad\.gaf:{len(head) + 1}: 12 tab-separated columns"):
        read_gaf(p)


def test_gaf_truncated_gzip(tmp_path: Path, gaf_path: Path) -> None:
    p = tmp_path / "cut.gaf.gz"
    p.write_bytes(gaf_path.read_bytes()[:200_000])
    with pytest.raises(TermnormError, match=r"cut\.gaf\.gz:\d+: cannot read"):
        read_gaf(p)


def test_gaf_read_whole_on_another_thread_gives_the_same_annotations(gaf, gaf_path: Path,
                                                                     tmp_path: Path) -> None:
    """The build decompresses the GAF on a worker thread (``read_whole``) while it parses the OBO
    files: the same annotations; a broken file gives None, and read_gaf then names its line."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        data = pool.submit(read_whole, gaf_path).result()
    assert data is not None and read_gaf(gaf_path, data) == gaf
    cut = tmp_path / "cut.gaf.gz"
    cut.write_bytes(gaf_path.read_bytes()[:200_000])
    assert read_whole(cut) is None


def test_build_names_the_line_of_a_cut_gaf(tmp_path: Path, gaf_path: Path) -> None:
    from termnorm_eval.splits.build import build_splits

    term = "[Term]\nid: GO:0008150\nname: biological_process\nnamespace: biological_process\n"
    (tmp_path / "go.obo").write_text("format-version: 1.2\n\n" + term, encoding="utf-8")
    (tmp_path / "goa_human.gaf.gz").write_bytes(gaf_path.read_bytes()[:200_000])
    with pytest.raises(TermnormError) as cut:
        read_gaf(tmp_path / "goa_human.gaf.gz")
    with pytest.raises(TermnormError) as built:
        build_splits(tmp_path, ["go"])
    assert str(built.value) == str(cut.value) and ": cannot read" in str(cut.value)


def test_gaf_missing(tmp_path: Path) -> None:
    with pytest.raises(TermnormError, match=r"goa_human\.gaf\.gz: file not found"):
        read_gaf(tmp_path / "goa_human.gaf.gz")


# --- HPOA ----------------------------------------------------------------------------------------

def test_hpoa_release() -> None:
    hpoa = read_hpoa(mirrors.extract("phenotype.hpoa")[0])
    assert hpoa.data_version == "2025-01-16"
    assert hpoa.rows == 271702 and hpoa.not_rows == 711
    assert len(hpoa.term_diseases["HP:0001250"]) == 2439  # Seizure: distinct diseases
    assert all(":" in d for d in hpoa.term_diseases["HP:0001250"])
    # references such as "PMID:21519361;PMID:19890111": the PMIDs only, split at ";"
    pmids = hpoa.term_pmids["HP:0001250"]
    assert len(pmids) > 100 and all(p.startswith("PMID:") and ";" not in p for p in pmids)


def test_hpoa_wrong_column_count(tmp_path: Path) -> None:
    real = mirrors.extract("phenotype.hpoa")[0]
    with real.open(encoding="utf-8") as fh:
        head = [line for _, line in zip(range(10), fh, strict=False)]
    p = tmp_path / "bad.hpoa"
    p.write_text("".join(head) + "OMIM:1\tsome disease\t\tHP:0001250\n", encoding="utf-8")
    with pytest.raises(TermnormError, match=r"bad\.hpoa:11: 4 tab-separated columns, expected 12"):
        read_hpoa(p)


# --- HGNC ----------------------------------------------------------------------------------------

def test_hgnc_custom_download_columns(hgnc_path: Path) -> None:
    table = read_hgnc(hgnc_path)
    assert len(table.genes) == 49013
    assert sum(g.protein_coding for g in table.genes) == 19281
    tp53 = next(g for g in table.genes if g.id == "HGNC:11998")
    assert (tp53.symbol, tp53.name) == ("TP53", "tumor protein p53")
    assert tp53.alias_symbols == ("p53", "LFS1")
    assert tp53.uniprot_ids == ("P04637",)
    assert table.columns["id"] == "HGNC ID"
    assert "date_modified" in table.missing_optional  # this export has no release date
    # no alias or previous *names*: this export lacks them, so nothing reads them (data card)
    assert not any("name" in c and c != "name" for c in table.columns)


OFFICIAL_HEADER = ("hgnc_id\tsymbol\tname\tlocus_group\tlocus_type\tstatus\tprev_symbol\talias_symbol"
                   "\talias_name\tprev_name\tuniprot_ids\tdate_modified")


def test_hgnc_official_column_set(tmp_path: Path) -> None:
    p = tmp_path / "hgnc_complete_set.txt"
    p.write_text(
        OFFICIAL_HEADER + "\n"
        'HGNC:11998\tTP53\ttumor protein p53\tprotein-coding gene\tgene with protein product\tApproved'
        '\t\t"p53|LFS1"\t\t\tP04637\t2024-05-01\n'
        'HGNC:5\tA1BG\talpha-1-B glycoprotein\tprotein-coding gene\tgene with protein product\tApproved'
        '\t"A1B|ABG"\t\t"alpha 1B-glycoprotein, plasma|GAB"\t"prev, with comma"\tP04217\t2023-01-01\n',
        encoding="utf-8",
    )
    table = read_hgnc(p)
    tp53, a1bg = table.genes
    assert tp53.alias_symbols == ("p53", "LFS1") and tp53.protein_coding
    assert a1bg.prev_symbols == ("A1B", "ABG")
    assert not hasattr(a1bg, "alias_names") and not hasattr(a1bg, "prev_names")
    assert table.data_version == "2024-05-01"


def test_hgnc_missing_required_column(tmp_path: Path, hgnc_path: Path) -> None:
    lines = hgnc_path.read_text(encoding="utf-8").splitlines()[:5]
    cut = ["\t".join(c for i, c in enumerate(line.split("\t")) if i != 11) for line in lines]  # Locus type
    p = tmp_path / "hgnc.tsv"
    p.write_text("\n".join(cut) + "\n", encoding="utf-8")
    with pytest.raises(TermnormError, match=r"hgnc\.tsv:1: required column 'locus_type' or 'Locus type'"):
        read_hgnc(p)


def test_hgnc_ragged_row(tmp_path: Path, hgnc_path: Path) -> None:
    lines = hgnc_path.read_text(encoding="utf-8").splitlines()[:4]
    lines[3] = "\t".join(lines[3].split("\t")[:5])
    p = tmp_path / "hgnc.tsv"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(TermnormError, match=r"hgnc\.tsv:4: 5 tab-separated columns, the header has 13"):
        read_hgnc(p)
