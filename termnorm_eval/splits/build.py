"""Build the benchmark splits from real source files and write them atomically.

``build_splits`` reads the sources (the OBO files with ``sources.obo``, then the annotation and
gene tables), turns them into candidate records, draws popularity-balanced samples, checks the
invariants and hands everything to ``write_build``, which replaces the target in one step
(``termnorm_eval.atomic``): a failed or interrupted build never leaves a half-written data folder,
and a previous build stays intact until the new one is complete.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from termnorm_eval import atomic
from termnorm_eval.errors import TermnormError
from termnorm_eval.sources import obo
from termnorm_eval.sources.fetch import FETCH_MANIFEST  # written by `termnorm data fetch` beside the files
from termnorm_eval.sources.gaf import read_gaf
from termnorm_eval.sources.hgnc import read_hgnc
from termnorm_eval.sources.hpoa import read_hpoa
from termnorm_eval.sources.mirrors import sha256_file
from termnorm_eval.sources.obo import OboResult
from termnorm_eval.splits.balance import balanced_sample, check_seed
from termnorm_eval.splits.candidates import (
    Candidates,
    check_capacity,
    gene_candidates,
    go_aspect,
    ontology_candidates,
)
from termnorm_eval.splits.checks import check_split
from termnorm_eval.splits.store import MANIFEST
from termnorm_eval.terminologies import BUILTIN, SPLITS, Terminology

FORMAT_VERSION = 1

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
POPULARITY = {
    "go": "distinct human genes (GAF column 3) annotated directly to the term or one of its alt_ids; "
          "NOT-qualified rows excluded",
    "hpo": "distinct diseases (phenotype.hpoa database_id) annotated to the term or one of its alt_ids; "
           "NOT-qualified rows excluded",
    "gene": "distinct PubMed IDs in the references (GAF column 6) of the gene's GO annotations, joined by "
            "UniProt accession or symbol; NOT-qualified rows excluded",
}


@dataclass
class BuiltTerminology:
    spec: Terminology
    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)  # candidates, excluded, bins, ...


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
) -> BuiltTerminology:
    """Balanced train/val records for one terminology, checked for leakage (reusable by add-ontology).

    ``strata`` balances each bin over the records' ``aspect``; ``popularity`` says in words what the
    popularity number counts (it goes into the manifest and the data card). ``own_prefix_only=False``
    lets ids of other prefixes through the checks (add-ontology --include-imported).
    """
    split = balanced_sample(
        list(cands.records), cands.popularity, bins=bins, per_bin=per_bin, seed=seed,
        strata=cands.strata() if strata else None, label=spec.key,
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for name, chosen in (("train", split.train), ("val", split.val)):
        out[name] = [{**cands.records[i], "bin": b} for i, b in sorted(chosen.items())]
    gene = spec.kind == "gene"
    check_split(spec.key, out["train"], out["val"], gene=gene,
                id_prefix=spec.id_prefix if own_prefix_only else None)
    stats = {
        "candidates": len(cands.records),
        "excluded": dict(sorted(cands.excluded.items())),
        "notes": dict(sorted(cands.notes.items())),
        "popularity": popularity or POPULARITY.get(spec.key, ""),
        "bins": split.bins,
    }
    return BuiltTerminology(spec, out["train"], out["val"], stats)


def _sample(
    key: str, cands: Candidates, bins: int, per_bin: int, seed: int, strata: bool
) -> BuiltTerminology:
    return sample_terminology(BUILTIN[key], cands, bins, per_bin, seed, strata, POPULARITY[key])


def build_splits(
    sources_dir: str | Path,
    keys: Sequence[str] = ("go", "hpo", "gene"),
    bins: int = 20,
    per_bin: int = 30,
    seed: int = 0,
    progress: Progress = _noop,
) -> tuple[dict[str, BuiltTerminology], dict[str, dict[str, Any]], list[str]]:
    """Built terminologies, source provenance (by file name) and warnings, from a sources folder."""
    unknown = [k for k in keys if k not in NEEDS]
    if unknown:
        raise TermnormError(f"unknown terminology {unknown[0]!r} (known: {', '.join(NEEDS)})")
    if bins < 1 or per_bin < 1:
        raise TermnormError(f"bins and per-bin must be >= 1 (got {bins}, {per_bin})")
    keys = [k for k in NEEDS if k in keys]  # canonical order
    files = locate_sources(sources_dir, keys)
    check_seed(seed)
    for key in keys:  # a design no source file could fill fails now, not after the parse
        check_capacity(key, files[NEEDS[key][0]], bins, per_bin, obo=key != "gene")
    with _cyclic_gc_paused():
        return _read_and_sample(files, keys, bins, per_bin, seed, progress)


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


def _read_and_sample(
    files: dict[str, Path], keys: Sequence[str], bins: int, per_bin: int, seed: int, progress: Progress
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
    annotated: dict[str, Mapping[str, set[str]]] = {}
    gaf = read_gaf(files["go_gaf"]) if "go_gaf" in files else None
    if gaf is not None:
        versions["go_gaf"] = gaf.data_version
        annotated["go"] = gaf.term_genes
    if "hpo_hpoa" in files:
        hpoa = read_hpoa(files["hpo_hpoa"])
        versions["hpo_hpoa"] = hpoa.data_version
        annotated["hpo"] = hpoa.term_diseases
    hgnc = read_hgnc(files["hgnc"]) if "hgnc" in files else None
    if hgnc is not None:
        versions["hgnc"] = hgnc.data_version
    built: dict[str, BuiltTerminology] = {}
    for key in obo_keys:
        progress(f"sampling {key}")
        aspect = go_aspect if key == "go" else None
        cands = ontology_candidates(ontologies.pop(key), annotated[key], aspect)
        built[key] = _sample(key, cands, bins, per_bin, seed, strata=key == "go")
    if "gene" in keys:
        progress("sampling gene")
        assert gaf is not None and hgnc is not None
        built["gene"] = _sample("gene", gene_candidates(hgnc.genes, gaf), bins, per_bin, seed, strata=False)
    progress("recording sources")
    sources = {
        files[role].name: {"role": role, **source_provenance(files[role], versions.get(role))}
        for role in sorted(files, key=lambda r: files[r].name)
    }
    return built, sources, warnings


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


def holds_build(path: Path) -> bool:
    """True when ``path`` holds a build this tool wrote: our manifest, not just any ``manifest.json``."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return (isinstance(manifest, dict) and manifest.get("format") == FORMAT_VERSION
            and isinstance(manifest.get("terminologies"), dict)
            and isinstance(manifest.get("parameters"), dict))


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
    extra_files: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The files of a build: ``manifest.json``, ``<key>/{train,val}.jsonl`` and ``extra_files``."""
    # (spec, train, val, stats) tuples are accepted too
    built = {k: b if isinstance(b, BuiltTerminology) else BuiltTerminology(*b) for k, b in built.items()}
    files = {f"{key}/{split}.jsonl": _jsonl(getattr(b, split))
             for key, b in built.items() for split in SPLITS}
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
    extra_files: Mapping[str, str] | None = None,
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
