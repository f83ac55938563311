"""The release index: every identifier, name and symbol of a terminology's release, shipped compactly.

The splits hold 1,200 sampled records per terminology; whether an answer is a *real* identifier of
another concept, an obsolete one or an invented one needs the whole release. The build (and
``add-ontology``) writes ``<key>/index.tsv.gz`` beside the splits, from the same parsed sources:
one row per identifier, sorted, gzip with a zero timestamp (so a rebuild is byte-identical)::

    id <TAB> status <TAB> primary <TAB> aspect <TAB> names <TAB> symbols <TAB> other_symbols <TAB> parents
       <TAB> synonym_types <TAB> proteins

* ``status``: ``live``, ``obsolete`` (GO/HPO obsolete terms, withdrawn HGNC entries) or ``alt``
  (an alt_id; ``primary`` names the term it stands for; empty otherwise);
* ``aspect``: GO's BP/MF/CC, else empty;
* ``names``: the name and the EXACT synonyms (genes: the approved name), joined by U+001F;
* ``symbols`` (genes): the approved symbol; ``other_symbols``: ``+ALIAS`` (alias symbols, still in
  use) and ``-PREV`` (previous symbols), joined by U+001F;
* ``parents`` (live ontology terms): the ``is_a`` parents in the same release, joined by U+001F
  (genes: empty);
* ``synonym_types`` (live ontology terms): the OBO synonym type of each of ``names[1:]``, in order,
  joined by U+001F, ``""`` for an untyped synonym (e.g. ``layperson``, ``uk_spelling``,
  ``abbreviation``, ``plural_form``, ``obsolete_synonym``): as many as the row has synonyms, else
  the row is malformed; genes and non-live rows: empty;
* ``proteins`` (live genes): the UniProt protein name the GO annotations give the gene
  (``splits.candidates.protein_names``; one at most today), ambiguous ones kept (the records drop a
  protein name another gene has too; the index says what the release says); empty elsewhere.

Files written before a column existed still load: 7 columns (no parents), 8 (no synonym_types and
proteins); ``read_rows`` gives ``()`` for the cells they lack. ``load`` ignores the last two columns.

``load`` reads one file once per process (cached by file identity) into dictionaries the
validity classification (``harness.validity``) looks answers up in; ``ReleaseIndex.parents_of`` and
``ancestors`` answer the hierarchy questions (whether ``b`` is below ``a``: ``a in ancestors(b)``,
a few dozen terms, never the descendants of ``a``, which near a root are most of the ontology).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from termnorm_eval.errors import TermnormError
from termnorm_eval.sources.hgnc import HgncGene
from termnorm_eval.sources.obo import OboTerm
from termnorm_eval.splits.hierarchy import closure
from termnorm_eval.text import normalize_text

FILE_NAME = "index.tsv.gz"
COLUMNS = ("id", "status", "primary", "aspect", "names", "symbols", "other_symbols", "parents",
           "synonym_types", "proteins")
WIDTHS = (7, 8, len(COLUMNS))  # the files of earlier builds: before parents, before the last two
SEP = "\x1f"  # ASCII unit separator: never part of a name
STATUSES = ("live", "obsolete", "alt")

Owners = str | tuple[str, ...]
# (id, status, primary, aspect, names, symbols, other_symbols, parents, synonym_types, proteins)
Row = tuple[str, str, str, str, Sequence[str], Sequence[str], Sequence[str], Sequence[str], Sequence[str],
            Sequence[str]]


def _field(text: str) -> str:
    """A value safe inside one TSV cell (names never hold tabs or newlines; a broken file might)."""
    return " ".join(text.replace(SEP, " ").split())


def rows_from_obo(terms: Iterable[OboTerm], aspect_of: dict[str, str] | None = None) -> list[Row]:
    """Rows for the terms of an ontology (all of them: live, obsolete and their alt_ids)."""
    aspects = aspect_of or {}
    rows: dict[str, Row] = {}
    for t in terms:
        # the label first (a term without one is named by its first synonym), then each synonym's type
        named = [(n, ty) for n, ty in ((t.name, ""), *zip(t.synonyms, t.synonym_types, strict=True)) if n]
        aspect = aspects.get(t.id, "") if not t.obsolete else ""
        live = not t.obsolete
        rows[t.id] = (t.id, "live" if live else "obsolete", "", aspect, [n for n, _ in named], (), (),
                      t.parents if live else (), [ty for _, ty in named[1:]] if live else (), ())
    for t in terms:  # alt_ids second: a primary id that is also another term's alt_id stays primary
        for alt in t.alt_ids:
            if alt not in rows:
                aspect = aspects.get(t.id, "") if not t.obsolete else ""
                rows[alt] = (alt, "obsolete" if t.obsolete else "alt", t.id, aspect, (), (), (), (), (), ())
    return [rows[k] for k in sorted(rows)]


def rows_from_hgnc(genes: Iterable[HgncGene], proteins: Mapping[str, str]) -> list[Row]:
    """Rows for every HGNC entry, approved or withdrawn, of any locus type; ``proteins``: gene id -> its
    protein name (``splits.candidates.protein_names``), written for live genes."""
    rows: list[Row] = []
    for g in genes:
        status = "live" if g.status == "Approved" else "obsolete"
        others = [f"+{s}" for s in g.alias_symbols] + [f"-{s}" for s in g.prev_symbols]
        names, symbols = [g.name] if g.name else [], [g.symbol] if g.symbol else []
        protein = proteins.get(g.id) if status == "live" else None
        rows.append((g.id, status, "", "", names, symbols, others, (), (), [protein] if protein else ()))
    return sorted(rows, key=lambda r: r[0])


def compress(text: bytes) -> bytes:
    """gzip with mtime 0, so a rebuild is byte-identical. zlib lets other threads run meanwhile: the
    build compresses one terminology's index while it samples the next (``splits.build``)."""
    # level 6: 1.4% larger than 9 at 40% of its time (the build has a speed budget)
    return gzip.compress(text, compresslevel=6, mtime=0)


def render_text(rows: Iterable[Row]) -> bytes:
    """The uncompressed file content (UTF-8)."""
    lines = ["\t".join(COLUMNS) + "\n"]
    for id_, status, primary, aspect, *lists in rows:
        cells = [_field(id_), status, _field(primary), aspect,
                 *(SEP.join(_field(v) for v in values) for values in lists)]
        lines.append("\t".join(cells) + "\n")
    return "".join(lines).encode("utf-8")


def summary(rows: Sequence[Row]) -> dict[str, int]:
    """Counts for the manifest: identifiers by status, names, is_a links and typed synonyms (ontologies),
    protein names (genes)."""
    out = {s: 0 for s in STATUSES}
    for r in rows:
        out[r[1]] += 1
    out["names"] = sum(len(r[4]) for r in rows)
    if any(r[7] for r in rows):
        out["is_a"] = sum(len(r[7]) for r in rows)
    if any(r[5] for r in rows):  # genes
        out["protein_names"] = sum(len(r[9]) for r in rows)
    else:
        out["typed_synonyms"] = sum(1 for r in rows for ty in r[8] if ty)
    return out


@dataclass
class ReleaseIndex:
    """What a release holds, keyed for lookups of extracted answers."""

    path: Path
    digest: str  # sha256 of the file, first 16 hex digits: what documents name it by
    status: dict[str, str] = field(default_factory=dict)  # id -> live/obsolete/alt
    primary: dict[str, str] = field(default_factory=dict)  # alt id -> its term
    aspect: dict[str, str] = field(default_factory=dict)  # id -> BP/MF/CC
    # folded name/symbol -> its owner, or a tuple of owners (a plain str for the common single owner:
    # a set per name made the loaded index 3x larger)
    names: dict[str, Owners] = field(default_factory=dict)  # live ids named so (name or EXACT synonym)
    symbols: dict[str, Owners] = field(default_factory=dict)  # live genes with this approved/alias symbol
    previous: dict[str, Owners] = field(default_factory=dict)  # genes that had it (previous, withdrawn)
    # live term -> its is_a parents as the file has them (joined by SEP): split when asked, so that
    # loading stays cheap
    parents: dict[str, str] = field(default_factory=dict)

    def concept(self, identifier: str) -> str:
        """The term an identifier stands for (an alt_id's primary term; else itself)."""
        return self.primary.get(identifier, identifier)

    def parents_of(self, identifier: str) -> tuple[str, ...]:
        """The is_a parents of a term (an alt_id: of its term); () for a root, a gene or an unknown id."""
        found = self.parents.get(self.concept(identifier))
        return tuple(found.split(SEP)) if found else ()

    def ancestors(self, identifier: str) -> set[str]:
        """Every term above this one by is_a (a few dozen at most in GO and HPO: cheap per document)."""
        return closure(self.concept(identifier), self.parents_of)


def _as_tuple(found: Owners | None) -> tuple[str, ...]:
    return () if found is None else (found,) if isinstance(found, str) else found


def owners(table: dict[str, Owners], text: str) -> tuple[str, ...]:
    """The owners of a name or symbol in one of the index's tables (folded like the lenient score)."""
    return _as_tuple(table.get(normalize_text(text)))


def add_owner(table: dict[str, Owners], key: str, owner: str) -> None:
    """Record ``owner`` under ``key`` (a plain str while it is the only one)."""
    found = table.get(key)
    if found is None:
        table[key] = owner
    elif isinstance(found, str):
        if found != owner:
            table[key] = (found, owner)
    elif owner not in found:
        table[key] = (*found, owner)


def digest_of(path: Path) -> str:
    """What documents name the index by; hashed once per file content (every task load asks)."""
    p = Path(path).resolve()
    st = p.stat()
    return _digest(str(p), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))


@lru_cache(maxsize=64)
def _digest(path: str, _key: tuple[int, int, int, int]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def other_symbols(others: Iterable[str]) -> tuple[list[str], list[str]]:
    """A gene row's other symbols (``+alias``, ``-previous``, as ``rows_from_hgnc`` writes them) as
    (alias symbols, previous symbols)."""
    others = list(others)
    return [s[1:] for s in others if s[:1] == "+"], [s[1:] for s in others if s[:1] == "-"]


def _untyped(cells: list[str]) -> str | None:
    """What is wrong with a row's synonym_types cell, if anything: it types exactly the synonyms
    (``names[1:]``) of a live row (``""`` is one untyped synonym), and is empty on any other row."""
    synonyms = cells[4].count(SEP) if cells[1] == "live" else 0
    if (cells[8].count(SEP) == synonyms - 1) if synonyms else not cells[8]:
        return None
    return f"synonym_types: {cells[8].count(SEP) + 1} entries for {synonyms} synonyms"


def _table(path: Path, data: bytes) -> tuple[int, Iterator[list[str]]]:
    """The number of columns of an index file (``WIDTHS``) and the cells of each row, padded to all
    ``COLUMNS`` with empty cells (a file of an earlier build lacks the last ones)."""
    try:
        text = gzip.decompress(data).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise TermnormError(f"{path}: not a release index ({type(e).__name__}: {e})") from None
    lines = text.split("\n")
    header = lines[0].split("\t")
    if header not in [list(COLUMNS[:w]) for w in WIDTHS]:
        raise TermnormError(f"{path}:1: not a release index header (expected {', '.join(COLUMNS)})")
    width = len(header)

    def rows() -> Iterator[list[str]]:
        for lineno, line in enumerate(lines[1:], start=2):
            if not line:
                continue
            cells = line.split("\t")
            if len(cells) != width or cells[1] not in STATUSES:
                raise TermnormError(f"{path}:{lineno}: malformed release index row")
            if width == len(COLUMNS) and (wrong := _untyped(cells)):
                raise TermnormError(f"{path}:{lineno}: malformed release index row ({wrong})")
            yield cells + [""] * (len(COLUMNS) - width)

    return width, rows()


def parse(path: Path, data: bytes) -> ReleaseIndex:
    index = ReleaseIndex(path=path, digest=hashlib.sha256(data).hexdigest()[:16])
    for cells in _table(path, data)[1]:
        id_, status, primary, aspect, names, symbols, others, parents = cells[:8]
        index.status[id_] = status
        if parents:
            index.parents[id_] = parents
        if primary:
            index.primary[id_] = primary
        if aspect:
            index.aspect[id_] = aspect
        if status == "live":
            for n in names.split(SEP) if names else ():
                add_owner(index.names, normalize_text(n), id_)
        # A withdrawn gene's approved symbol is a previous symbol now.
        for s in symbols.split(SEP) if symbols else ():
            add_owner(index.symbols if status == "live" else index.previous, normalize_text(s), id_)
        for s in others.split(SEP) if others else ():
            kind, sym = s[:1], s[1:]
            target = index.symbols if kind == "+" and status == "live" else index.previous
            add_owner(target, normalize_text(sym), id_)
    return index


def read_rows(path: str | Path) -> list[Row]:
    """Every row of an index file as written, in file order: what ``load`` folds away (which name is
    the label, which symbol the approved one, the synonyms' types, the protein names), for ``termnorm
    add-mentions`` and the retrievers. A file of an earlier build gives ``()`` for the cells it lacks."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise TermnormError(f"{p}: cannot read the release index ({e.strerror})") from None
    width, rows = _table(p, data)

    def listed(cell: str) -> tuple[str, ...]:
        return tuple(cell.split(SEP)) if cell else ()

    def types(c: list[str]) -> tuple[str, ...]:  # "" is one untyped synonym, not none
        return tuple(c[8].split(SEP)) if width > 8 and c[1] == "live" and SEP in c[4] else ()

    return [(c[0], c[1], c[2], c[3], listed(c[4]), listed(c[5]), listed(c[6]), listed(c[7]), types(c),
             listed(c[9])) for c in rows]


@lru_cache(maxsize=16)
def _load(path: str, _key: tuple[int, int, int, int]) -> ReleaseIndex:
    p = Path(path)
    return parse(p, p.read_bytes())


def load(path: str | Path) -> ReleaseIndex:
    """The index in ``path``, read once per process and content (a rebuild is seen at once)."""
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError:
        raise TermnormError(f"{p}: release index not found") from None
    return _load(str(p), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
