"""Build the benchmark splits from real source files and write them atomically.

``build_splits`` reads the sources (the OBO files with ``sources.obo``, then the annotation and
gene tables), turns them into candidate records, draws popularity-balanced samples, checks the
invariants and hands everything to ``write_build``, which replaces the target in one step
(``termnorm_eval.atomic``): a failed or interrupted build never leaves a half-written data folder,
and a previous build stays intact until the new one is complete.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import gc
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from termnorm_eval import atomic
from termnorm_eval.errors import TermnormError
from termnorm_eval.sources import obo
from termnorm_eval.sources.fetch import FETCH_MANIFEST  # written by `termnorm data fetch` beside the files
from termnorm_eval.sources.gaf import read_gaf, read_whole
from termnorm_eval.sources.hgnc import read_hgnc
from termnorm_eval.sources.hpoa import read_hpoa
from termnorm_eval.sources.mirrors import sha256_file
from termnorm_eval.sources.obo import OboResult
from termnorm_eval.sources.popularity import read_popularity_table
from termnorm_eval.splits import mentions, release_index
from termnorm_eval.splits.balance import UNANNOTATED, balanced_sample, check_seed
from termnorm_eval.splits.candidates import (
    MAX_GENES_PER_REFERENCE,
    Candidates,
    check_capacity,
    gene_candidates,
    go_aspect,
    ontology_candidates,
    protein_names,
)
from termnorm_eval.splits.checks import check_split
from termnorm_eval.splits.hierarchy import descendants
from termnorm_eval.splits.store import MANIFEST
from termnorm_eval.terminologies import BUILTIN, GENE_KINDS, ONTOLOGY_KINDS, SPLITS, Terminology

FORMAT_VERSION = 1
T = TypeVar("T")

# Role -> accepted file names in a sources folder (exactly one of them must be there).
SOURCE_NAMES: dict[str, tuple[str, ...]] = {
    "go_obo": ("go.obo", "go-basic.obo"),
    "go_gaf": ("goa_human.gaf.gz", "goa_human.gaf"),
    "hpo_obo": ("hp.obo",),
    "hpo_hpoa": ("phenotype.hpoa",),
    "hgnc": ("hgnc_complete_set.txt", "hgnc_complete_set.tsv"),
}
NEEDS: dict[str, tuple[str, ...]] = {
    "go": ("go_obo", "go_gaf"),
    "hpo": ("hpo_obo", "hpo_hpoa"),
    "gene": ("hgnc", "go_gaf"),
}
PHENOTYPIC_ABNORMALITY = "HP:0000118"  # the HPO pool: its descendants (the study's HPO terms are all there)
# What each terminology's two popularity numbers count (the primary ranks, the secondary breaks ties).
POPULARITY = {
    "go": "distinct human genes (GAF column 3) annotated directly to the term or one of its alt_ids; "
          "NOT-qualified rows excluded",
    "hpo": "distinct diseases (phenotype.hpoa database_id) annotated to the term or one of its alt_ids; "
           "NOT-qualified rows excluded",
    "gene": "distinct PubMed IDs among the references (GAF column 6) of the gene's GO annotations, joined "
            "by UniProt accession or symbol, counting only papers cited for at most {max_genes} genes "
            "(a screen or a mass annotation says nothing about one gene); NOT-qualified rows excluded",
}
SECONDARY = {
    "go": "distinct PubMed IDs among the references of the term's annotations (GAF column 6)",
    "hpo": "distinct PubMed IDs among the references of the term's annotations (phenotype.hpoa reference)",
    "gene": "distinct GO terms annotated to the gene (GAF column 5)",
}
# Who may enter the ranked pool, besides having popularity >= 1.
POOL = {
    "go": "live GO terms with at least one (non-NOT) human annotation; ranked and binned within each aspect",
    "hpo": f"live HPO terms below Phenotypic abnormality ({PHENOTYPIC_ABNORMALITY}) with at least one "
           "disease annotation",
    "gene": "approved protein-coding genes with at least one PubMed reference cited for at most "
            "{max_genes} genes",
}


@dataclass
class BuiltTerminology:
    spec: Terminology
    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)  # candidates, excluded, bins, ...
    index: bytes | None = None  # the release index (``release_index``), written as <key>/index.tsv.gz

    def with_index(self, rows: Sequence[release_index.Row], background: Background | None = None
                   ) -> BuiltTerminology:
        """This terminology with the release index of ``rows`` (counted in the manifest); with
        ``background``, compressed there (``index`` is set by ``background.finish()``)."""
        text = release_index.render_text(rows)
        if background is None:
            self.index = release_index.compress(text)
        else:
            background.run(lambda: setattr(self, "index", release_index.compress(text)))
        self.stats["release_index"] = release_index.summary(rows)
        return self


class Background:
    """One worker thread for the build's C-speed work (sha256 of the sources, gzip of the indexes):
    hashlib and zlib let the Python parsing go on meanwhile, on another core. ``finish`` waits for
    all of it and raises what any job raised."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="termnorm-build")
        self._jobs: list[concurrent.futures.Future[Any]] = []

    def run(self, job: Callable[[], T]) -> concurrent.futures.Future[T]:
        future = self._pool.submit(job)
        self._jobs.append(future)
        return future

    def finish(self) -> None:
        for job in self._jobs:
            job.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


Progress = Callable[[str], None]


def _noop(_: str) -> None:
    pass


def locate_sources(sources_dir: str | Path, keys: Sequence[str]) -> dict[str, Path]:
    """Role -> file for the terminologies ``keys``; a missing file is an error naming it."""
    root = Path(sources_dir)
    if not root.is_dir():
        raise TermnormError(f"{root}: sources folder not found (run `termnorm data fetch` first)")
    found: dict[str, Path] = {}
    for key in keys:
        for role in NEEDS[key]:
            present = [root / n for n in SOURCE_NAMES[role] if (root / n).is_file()]
            if not present:
                names = " or ".join(SOURCE_NAMES[role])
                raise TermnormError(f"{root / SOURCE_NAMES[role][0]}: file not found (need {names} "
                                    f"for {key}; run `termnorm data fetch`)")
            if len(present) > 1:
                # e.g. a mirrored go.obo next to a downloaded go-basic.obo: never guess which one
                both = " and ".join(p.name for p in present)
                raise TermnormError(f"{root}: holds both {both}; remove the one you don't want")
            found[role] = present[0]
    return found


def source_provenance(path: Path, data_version: str | None, digest: str | None = None) -> dict[str, Any]:
    """sha256 and data-version of a source file, plus where it came from if `fetch` recorded that."""
    digest = digest or sha256_file(path)
    info: dict[str, Any] = {}
    fetched = path.parent / FETCH_MANIFEST
    if fetched.is_file():
        try:
            recorded = json.loads(fetched.read_text(encoding="utf-8")).get("files", {}).get(path.name)
        except json.JSONDecodeError as e:
            raise TermnormError(f"{fetched}:{e.lineno}: not valid JSON ({e.msg})") from None
        if recorded and recorded.get("sha256") == digest:
            info.update(recorded)
    info["sha256"] = digest
    info["data_version"] = data_version
    return info


def sample_terminology(
    spec: Terminology,
    cands: Candidates,
    bins: int = 20,
    per_bin: int = 30,
    seed: int = 0,
    strata: bool = False,
    popularity: str = "",
    own_prefix_only: bool = True,
    *,
    secondary: str = "",
    pool: str = "",
    include_unannotated: bool = False,
    ranked: bool = True,
) -> BuiltTerminology:
    """Balanced train/val records for one terminology, checked for leakage (reusable by add-ontology).

    ``strata`` ranks and bins each ``aspect`` on its own; ``popularity``, ``secondary`` and ``pool``
    say in words what the two popularity numbers count and who may be ranked (they go into the
    manifest and the data card). ``include_unannotated`` adds the items of popularity 0 as bin 0;
    ``ranked=False`` draws from all candidates as one bin (no popularity at all).
    ``own_prefix_only=False`` lets ids of other prefixes through the checks (add-ontology
    --include-imported).
    """
    split = balanced_sample(
        list(cands.records), cands.popularity, bins=bins, per_bin=per_bin, seed=seed,
        strata=cands.strata() if strata else None, label=spec.key, secondary=cands.secondary,
        include_unannotated=include_unannotated, ranked=ranked,
    )

    gene = spec.kind == "gene"
    out: dict[str, list[dict[str, Any]]] = {}
    dropped: dict[str, Counter[str]] = {}  # per split: owned forms not asked (mentions.usable)
    for name, chosen in (("train", split.train), ("val", split.val)):
        counts = dropped[name] = Counter()
        out[name] = [{**cands.records[i], "bin": b} for i, b in sorted(chosen.items())]
        for r in out[name]:
            owned = cands.owned.get(r["id"], {}) if gene else None
            r["mentions"] = mentions.of_record(r, owned, seed, counts)
    check_split(spec.key, out["train"], out["val"], gene=gene,
                id_prefix=spec.id_prefix if own_prefix_only else None)
    stats = {
        "candidates": len(cands.records),
        "excluded": dict(sorted(cands.excluded.items())),
        "notes": dict(sorted(cands.notes.items())),
        "popularity": popularity or POPULARITY.get(spec.key, ""),
        "popularity_secondary": secondary,
        "pool": pool,
        "binning": split.binning,
        "bins": split.bins,
    }
    if cands.facts:
        stats["popularity_facts"] = dict(cands.facts)
    kinds = GENE_KINDS if gene else ONTOLOGY_KINDS
    summary = mentions.summary(kinds, out, dropped, seed, n_bins=len(split.bins))
    stats["mentions"] = summary
    stats["mention_kinds"] = mentions.mention_kinds(summary)
    return BuiltTerminology(spec, out["train"], out["val"], stats)


@dataclass
class PopularityTables:
    """``--popularity`` tables: id -> count (all tables together) and what each one holds."""

    counts: dict[str, int] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # id -> file name
    files: list[Path] = field(default_factory=list)

    @classmethod
    def read(cls, paths: Sequence[str | Path]) -> PopularityTables:
        """Every table read and checked now, before any parsing (its errors name file and line)."""
        out = cls()
        for p in map(Path, paths):
            table = read_popularity_table(p)
            for ident, count in table.counts.items():
                if ident in out.counts:
                    raise TermnormError(f"{p}: {ident[:40]} is also in {out.origin[ident]}; give each id "
                                        "in one --popularity table only")
                out.counts[ident] = count
                out.origin[ident] = p.name
            out.files.append(p)
        return out

    def apply(self, key: str, cands: Candidates) -> str | None:
        """Replace the primary popularity of ``cands`` if a table lists any of them; the table's name."""
        listed = [i for i in cands.records if i in self.counts]
        if not listed:
            return None
        for i, r in cands.records.items():
            r["popularity"] = self.counts.get(i, 0)
        names = sorted({self.origin[i] for i in listed})
        cands.facts["popularity_table"] = {"files": names, "listed": len(listed),
                                           "not_listed": len(cands.records) - len(listed)}
        return ", ".join(names)

    def provenance(self, built: Mapping[str, Candidates]) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Sources entries of the tables, and one warning per table with ids no candidate has."""
        known = {i for c in built.values() for i in c.records}
        sources: dict[str, dict[str, Any]] = {}
        warnings: list[str] = []
        for p in self.files:
            ids = [i for i, f in self.origin.items() if f == p.name]
            unknown = sum(1 for i in ids if i not in known)
            used = {k: sum(1 for i in ids if i in c.records) for k, c in built.items()}
            sources[p.name] = {"role": "popularity", "sha256": sha256_file(p), "data_version": None,
                               "rows": len(ids), "used": {k: n for k, n in used.items() if n},
                               "unknown_ids": unknown}
            if unknown:
                warnings.append(f"{p}: {unknown} of {len(ids)} ids are no candidate of "
                                f"{', '.join(built)} (counted, left out)")
        return sources, warnings


def build_splits(
    sources_dir: str | Path,
    keys: Sequence[str] = ("go", "hpo", "gene"),
    bins: int = 20,
    per_bin: int = 30,
    seed: int = 0,
    progress: Progress = _noop,
    *,
    include_unannotated: bool = False,
    popularity_tables: Sequence[str | Path] = (),
    max_genes_per_reference: int = MAX_GENES_PER_REFERENCE,
) -> tuple[dict[str, BuiltTerminology], dict[str, dict[str, Any]], list[str]]:
    """Built terminologies, source provenance (by file name) and warnings, from a sources folder.

    ``popularity_tables`` (id<TAB>count files) replace the primary popularity of every terminology
    whose candidates they list; ``max_genes_per_reference`` is the gene popularity's paper limit.
    """
    unknown = [k for k in keys if k not in NEEDS]
    if unknown:
        raise TermnormError(f"unknown terminology {unknown[0]!r} (known: {', '.join(NEEDS)})")
    if bins < 1 or per_bin < 1:
        raise TermnormError(f"bins and per-bin must be >= 1 (got {bins}, {per_bin})")
    if max_genes_per_reference < 1:
        raise TermnormError(f"--max-genes-per-reference {max_genes_per_reference}: must be >= 1")
    keys = [k for k in NEEDS if k in keys]  # canonical order
    files = locate_sources(sources_dir, keys)
    check_seed(seed)
    tables = PopularityTables.read(popularity_tables)  # a broken table fails before the parse
    for key in keys:  # a design no source file could fill fails now, not after the parse
        check_capacity(key, files[NEEDS[key][0]], bins, per_bin, obo=key != "gene")
    background = Background()
    try:
        gaf = files.get("go_gaf")
        gaf_data = background.run(functools.partial(read_whole, gaf)) if gaf is not None else None
        digests = {role: background.run(functools.partial(sha256_file, path)) for role, path in files.items()}
        with _cyclic_gc_paused():
            out = _read_and_sample(files, keys, bins, per_bin, seed, progress,
                                   _Options(include_unannotated, tables, max_genes_per_reference, background,
                                            digests, gaf_data))
        background.finish()
        return out
    finally:
        background.close()


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The build makes millions of objects (term records, annotation sets) and no reference cycles:
    the cyclic collector would only re-scan them, 0.8 s of a 3.1 s build (benchmarks/bench_build.py)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class _Options:
    include_unannotated: bool
    tables: PopularityTables
    max_genes_per_reference: int
    background: Background
    digests: Mapping[str, concurrent.futures.Future[str]]  # role -> sha256 of its file, being computed
    gaf_data: concurrent.futures.Future[bytes | None] | None  # the GAF's content, being read (gaf.read_whole)


def _read_and_sample(
    files: dict[str, Path], keys: Sequence[str], bins: int, per_bin: int, seed: int, progress: Progress,
    options: _Options,
) -> tuple[dict[str, BuiltTerminology], dict[str, dict[str, Any]], list[str]]:
    warnings: list[str] = []
    versions: dict[str, str | None] = {}
    obo_keys = [k for k in ("go", "hpo") if k in keys]
    ontologies: dict[str, OboResult] = {}
    for key in obo_keys:  # the OBO files first: a broken one is named before the tables are read
        role = f"{key}_obo"
        progress(f"parsing {files[role].name}")
        ontologies[key] = obo.read_obo(files[role], prefix=BUILTIN[key].id_prefix)
        versions[role] = ontologies[key].data_version
        warnings.extend(ontologies[key].warnings)
    progress("reading annotation tables" + (" and genes" if "gene" in keys else ""))
    annotated: dict[str, tuple[Mapping[str, set[str]], Mapping[str, set[str]]]] = {}
    gaf = read_gaf(files["go_gaf"], options.gaf_data.result()) if options.gaf_data is not None else None
    if gaf is not None:
        versions["go_gaf"] = gaf.data_version
        annotated["go"] = gaf.term_genes, gaf.term_pmids
    if "hpo_hpoa" in files:
        hpoa = read_hpoa(files["hpo_hpoa"])
        versions["hpo_hpoa"] = hpoa.data_version
        annotated["hpo"] = hpoa.term_diseases, hpoa.term_pmids
    hgnc = read_hgnc(files["hgnc"]) if "hgnc" in files else None
    if hgnc is not None:
        versions["hgnc"] = hgnc.data_version
    candidates: dict[str, Candidates] = {}
    index_rows: dict[str, list[release_index.Row]] = {}
    for key in obo_keys:
        primary, secondary = annotated[key]
        terms = ontologies[key].terms
        aspects = {t.id: a for t in terms if (a := go_aspect(t))} if key == "go" else None
        index_rows[key] = release_index.rows_from_obo(terms, aspects)
        if key == "go":
            candidates[key] = ontology_candidates(ontologies.pop(key), primary, go_aspect, secondary)
        else:
            within = descendants(terms, PHENOTYPIC_ABNORMALITY)
            candidates[key] = ontology_candidates(ontologies.pop(key), primary, None, secondary, within,
                                                  outside="not_phenotypic_abnormality")
    if "gene" in keys:
        assert gaf is not None and hgnc is not None
        proteins = protein_names(hgnc.genes, gaf)  # every approved gene's: the index lists them all
        candidates["gene"] = gene_candidates(hgnc.genes, gaf, options.max_genes_per_reference, proteins)
        index_rows["gene"] = release_index.rows_from_hgnc(hgnc.genes, proteins)
    built: dict[str, BuiltTerminology] = {}
    limit = {"max_genes": options.max_genes_per_reference}
    for key, cands in candidates.items():
        progress(f"sampling {key}")
        table = options.tables.apply(key, cands)
        popularity = POPULARITY[key].format(**limit)
        pool = POOL[key].format(**limit)
        if table is not None:  # the table's count ranks; the annotation count is recorded, unused
            popularity = f"the count given for the id in {table} (id<TAB>count); replaces: {popularity}"
            pool += f"; ranked by {table}: only ids with a count >= 1 there"
        if options.include_unannotated:
            pool += f"; items with popularity 0 form bin 0 ({UNANNOTATED})"
        built[key] = sample_terminology(
            BUILTIN[key], cands, bins, per_bin, seed, strata=key == "go", popularity=popularity,
            secondary=SECONDARY[key], pool=pool, include_unannotated=options.include_unannotated
        ).with_index(index_rows.pop(key), options.background)
        built[key].stats["popularity_source"] = f"table {table}" if table else "annotations"
    progress("recording sources")
    sources = {
        files[role].name: {"role": role, **source_provenance(files[role], versions.get(role),
                                                             options.digests[role].result())}
        for role in sorted(files, key=lambda r: files[r].name)
    }
    table_sources, table_warnings = options.tables.provenance(candidates)
    sources.update(table_sources)
    warnings.extend(table_warnings)
    return built, sources, warnings


def build_parameters(bins: int = 20, per_bin: int = 30, seed: int = 0, include_unannotated: bool = False,
                     popularity_tables: Sequence[str | Path] = (),
                     max_genes_per_reference: int = MAX_GENES_PER_REFERENCE) -> dict[str, Any]:
    """The manifest's ``parameters`` of a built-in build: everything a rebuild needs to repeat it."""
    return {"bins": bins, "per_bin": per_bin, "seed": seed, "include_unannotated": include_unannotated,
            "popularity_tables": [Path(p).name for p in popularity_tables],
            "max_genes_per_reference": max_genes_per_reference}


def manifest_for(
    built: Mapping[str, BuiltTerminology], parameters: Mapping[str, Any], sources: Mapping[str, Any]
) -> dict[str, Any]:
    terminologies = {}
    for key, b in built.items():
        terminologies[key] = {
            "spec": b.spec.to_dict(),
            "counts": {"train": len(b.train), "val": len(b.val)},
            **b.stats,
        }
    return {
        "format": FORMAT_VERSION,
        "parameters": dict(parameters),
        "sources": dict(sources),
        "terminologies": terminologies,
    }


def _jsonl(records: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records)


def _manifest(path: Path) -> dict[str, Any]:
    """The ``manifest.json`` object in folder ``path``; {} when there is none or it is not one."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def holds_build(path: Path) -> bool:
    """True when ``path`` holds a build this tool wrote: our manifest, not just any ``manifest.json``."""
    manifest = _manifest(path)
    return (manifest.get("format") == FORMAT_VERSION and isinstance(manifest.get("terminologies"), dict)
            and isinstance(manifest.get("parameters"), dict))


def made_by(command: str) -> Callable[[Path], bool]:
    """Whether a folder holds an output of ``command`` (its manifest's ``parameters.made_by``, as
    add-ontology and add-mentions write it): the ``owned`` test of their ``check_target``."""
    def owned(path: Path) -> bool:
        parameters = _manifest(path).get("parameters")
        return isinstance(parameters, dict) and parameters.get("made_by") == command

    return owned


def check_target(out: Path, force: bool, protected: Iterable[Path] = (), option: str = "--out",
                 owned: Callable[[Path], bool] = holds_build, what: str = "build") -> None:
    """Refuse an ``out`` whose replacement would lose anything but an earlier output of ours.

    ``owned`` says whether a folder is such an output (``what`` names it in messages). Called
    before the work starts and again right before the final move.
    """
    if not out.exists() and not out.is_symlink():
        return
    atomic.check_replaceable(out, option, protected)
    if not out.is_dir():
        raise TermnormError(f"{option} {out}: exists and is not a folder")
    if not any(out.iterdir()):
        return
    if not owned(out):
        raise TermnormError(f"{option} {out}: folder is not empty and holds no termnorm {what}; choose a new "
                            f"folder" + (f" (--force only replaces an earlier {what})" if force else ""))
    if not force:
        article = "an" if what[0] in "aeiou" else "a"
        raise TermnormError(f"{option} {out}: already holds {article} {what} (use --force to replace it)")


def build_files(
    built: Mapping[str, BuiltTerminology],
    parameters: Mapping[str, Any],
    sources: Mapping[str, Any],
    extra_files: Mapping[str, str | bytes] | None = None,
) -> dict[str, str | bytes]:
    """The files of a build: ``manifest.json``, ``<key>/{train,val}.jsonl``, ``<key>/index.tsv.gz``
    (when built with one) and ``extra_files``."""
    # (spec, train, val, stats) tuples are accepted too
    built = {k: b if isinstance(b, BuiltTerminology) else BuiltTerminology(*b) for k, b in built.items()}
    files: dict[str, str | bytes] = {f"{key}/{split}.jsonl": _jsonl(getattr(b, split))
             for key, b in built.items() for split in SPLITS}
    files.update({f"{key}/{release_index.FILE_NAME}": b.index
                  for key, b in built.items() if b.index is not None})
    files.update(extra_files or {})
    manifest = manifest_for(built, parameters, sources)
    files[MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return files


def write_build(
    out_dir: str | Path,
    built: Mapping[str, BuiltTerminology],
    parameters: Mapping[str, Any],
    sources: Mapping[str, Any],
    force: bool = False,
    extra_files: Mapping[str, str | bytes] | None = None,
    protected: Iterable[Path] = (),
) -> Path:
    """Write a build into ``out_dir``, replacing it in one step (``termnorm_eval.atomic``).

    An ``out_dir`` that holds a build is replaced only with ``force``; a non-empty folder that is
    not a build of ours is never replaced, nor are the folders ``atomic.check_replaceable`` protects
    (``protected``: the sources). The caller holds ``atomic.output_lock(out_dir)`` if other
    processes may write there too (the CLI does, for the whole run).
    """
    out = Path(out_dir)
    check_target(out, force, protected)
    files = build_files(built, parameters, sources, extra_files)
    atomic.write_folder(out, files, before_commit=lambda: check_target(out, force, protected))
    return out
