"""The terminologies, their mapping directions and the prompts: the contract every stage shares.

Splits store one JSON record per concept (see ``splits.store``); a *direction* says which field of
that record is asked about and which field is the gold answer. Harness tasks, fine-tuning data and
the lexicalization analysis all render items from the same ``Direction`` so that what is trained is
exactly what is scored.

Two sorts of direction (issue 21):

* **label directions** (``Terminology.directions``): the study's questions about a concept's own
  label, symbol or identifier (term2id, name2symbol, ...). What fine-tuning trains on by default
  and what the study runs.
* **mention directions** (``Terminology.mention_directions``): the same records asked through
  another of the concept's words, the one form ``mentions.<kind>`` the split build chose for it
  (``splits.mentions``): ``synonym2id`` and ``lay2id`` (ontologies), ``alias2symbol`` and
  ``prev2symbol`` (genes). Each ``mirrors`` a label direction: the same gold answer and lenient
  answers (minus the asked form itself), the same prompts with the form in place of the label
  (ontologies) or prompts that say what the symbol is (genes). ``Direction.mention`` is the kind,
  None for label directions.

``Terminology.all_directions`` is both, the tasks; ``Terminology.direction(name)`` finds either.

A user's own mention table (``termnorm add-mentions``) is a terminology of its own
(``user_mentions_terminology``): ``mentions_of`` names the terminology whose release scores it, and
its one mention direction (``mention2id``, ``mention2symbol``) asks ``mentions.user`` on the
``test`` split only.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from termnorm_eval.text import normalize_text

AnswerKind = Literal["id", "name"]
# "gene": HGNC-style records (symbol, name, protein name; gene checks when building); "ontology":
# an OBO ontology's terms (GO, HPO, every ontology added with add-ontology).
TerminologyKind = Literal["ontology", "gene"]

# How a question becomes the model's input text, shared by the harness (doc_to_text) and the
# fine-tuning data so that training and scoring see the same string. Without a chat template the
# harness appends TARGET_DELIMITER before the answer; generation stops at the first newline.
ANSWER_CUE = "\nAnswer:"
TARGET_DELIMITER = " "

# The version of every termnorm task (harness ``metadata.version``). 2.0: the benchmark v2 splits
# (annotated pools, tie-respecting bins, gene popularity without mass-annotation papers, no lenient
# answer owned by another concept). 3.0: the mention tasks (synonym2id, lay2id, alias2symbol,
# prev2symbol) join the groups termnorm, termnorm-<key>, termnorm-train/-val, and every document
# says whether its prompt shows its answer (answer_in_prompt; exact_match_shown/_hidden). The label
# tasks' documents and scores are unchanged, but the group rows are not.
# ``termnorm report`` refuses to compare scores across versions.
TASK_VERSION = 3.0
SPLITS = ("train", "val")  # train: what fine-tuning sees (memorization); val: held out
# A user's own mentions (``termnorm add-mentions``) are all test items: no training split, no few-shot
# examples drawn from them, and no claim that their concepts were held out of training.
TEST_SPLIT = "test"
ALL_SPLITS = (*SPLITS, TEST_SPLIT)  # every split a task may be named by, in report order


def input_text(question: str) -> str:
    """The exact text the model reads for a question (harness ``doc_to_text``)."""
    return question + ANSWER_CUE


@lru_cache(maxsize=64)
def id_pattern(id_prefix: str, id_local: str) -> re.Pattern[str]:
    """An identifier with this prefix and local-part regex, in any of its common spellings (cached).

    ``GO:0005634``, ``GO_0005634``, ``go:0005634``, ``GO: 0005634`` and ``GO0005634`` all match;
    group 1 is the local part (``Terminology.canonical_id`` gives ``GO:0005634``).

    The separator is ``\\s*(?:[:_]\\s*)?``, not the obvious ``\\s*[:_]?\\s*``: without a ``:`` or
    ``_`` the two ``\\s*`` of that form split a whitespace run in every way, quadratic in its length
    ("GO" + 32,000 spaces took 17 s). Both are the same language and try the same end positions in
    the same order, so the first match and its group are the same.
    """
    return re.compile(
        rf"(?<![A-Za-z0-9]){re.escape(id_prefix)}\s*(?:[:_]\s*)?({id_local})(?![0-9])", re.IGNORECASE
    )


def field_value(record: dict[str, Any], field: str) -> Any:
    """A record's value of ``field``; a dotted field reads inside an object (``mentions.synonym``).
    None when absent."""
    value: Any = record
    for part in field.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True)
class Direction:
    """One way of asking: ``source`` field of a record in, ``target`` field out."""

    name: str  # e.g. "term2id"; part of the task name
    source: str  # record field shown in the question; dotted for a mention ("mentions.synonym")
    target: str  # record field holding the gold answer
    answer_kind: AnswerKind  # "id": case-sensitive identifier; "name": case-insensitive text
    templates: tuple[str, ...]  # templates[0] is the evaluation prompt; all are used for training
    lenient_fields: tuple[str, ...] = ()  # record fields whose values also count as correct (lenient)
    # The mention kind asked ("synonym", "lay", "alias", "prev": the record's mentions.<kind>); None
    # for a label direction.
    mention: str | None = None
    # A mention direction: the label direction whose question it asks through another form (same
    # target and lenient answers); None for a label direction.
    mirrors: str | None = None
    # The splits that have documents (an added ontology may have no usable form in one split).
    splits: tuple[str, ...] = SPLITS

    @property
    def label_direction(self) -> str:
        """The label direction this one is (itself) or mirrors: what pairs a mention cell with its label
        cell in a report."""
        return self.mirrors or self.name

    def source_value(self, record: dict[str, Any]) -> Any:
        """What the question shows of ``record`` (the label, identifier, symbol or mention form)."""
        return field_value(record, self.source)

    def prompt(self, record: dict[str, Any], terminology: Terminology, variant: int = 0) -> str:
        template = self.templates[variant % len(self.templates)]
        return template.format(
            source=self.source_value(record),
            label=terminology.label,
            example=terminology.id_example,
        )

    def answer(self, record: dict[str, Any]) -> str:
        return str(record[self.target])

    def alternatives(self, record: dict[str, Any]) -> list[str]:
        """Gold answer plus everything the lenient score accepts (synonyms, alt_ids, ...).

        A mention direction accepts what its label direction accepts except the asked form itself,
        compared as the lenient score compares: echoing the previous symbol asked about is no answer.
        """
        out = [self.answer(record)]
        for f in self.lenient_fields:
            out.extend(str(v) for v in record.get(f) or [] if v)
        if self.mention is not None:
            asked = normalize_text(str(self.source_value(record)))
            out = out[:1] + [a for a in out[1:] if normalize_text(a) != asked]
        return list(dict.fromkeys(out))

    def applies_to(self, record: dict[str, Any]) -> bool:
        """A record takes part in this direction only when both sides are present (a mention
        direction: when the record has a form of its kind)."""
        return bool(self.source_value(record)) and bool(record.get(self.target))


@dataclass(frozen=True)
class Terminology:
    key: str  # lower-case short name, used in task names: termnorm_<key>_<direction>_<split>
    label: str  # how prompts name it: "GO", "HPO", "HGNC"
    id_prefix: str  # CURIE prefix of its identifiers: "GO", "HP", "HGNC"
    id_local: str  # regex of the local part: r"\d{7}"
    id_example: str  # a well-formed identifier shown in prompts (not a real term on purpose)
    directions: tuple[Direction, ...]  # the label directions (what the study trains and asks)
    description: str = ""
    kind: TerminologyKind = "ontology"
    # The mention directions (``Direction.mention`` set), each mirroring one of ``directions``.
    mention_directions: tuple[Direction, ...] = ()
    # A user's mentions (add-mentions): the key of the terminology whose release they are scored
    # against (its prompts, identifiers and index); None for every other terminology.
    mentions_of: str | None = None

    @property
    def all_directions(self) -> tuple[Direction, ...]:
        """Label directions, then mention directions: every task of the terminology."""
        return self.directions + self.mention_directions

    def mirroring(self, directions: Iterable[str]) -> tuple[Direction, ...]:
        """The mention directions that ask the concepts of the label ``directions`` (names) through
        another form."""
        names = set(directions)
        return tuple(m for m in self.mention_directions if m.mirrors in names)

    @property
    def id_regex(self) -> re.Pattern[str]:
        """Finds an identifier in free text in any of its common spellings (see ``id_pattern``)."""
        return id_pattern(self.id_prefix, self.id_local)

    def canonical_id(self, local: str) -> str:
        return f"{self.id_prefix}:{local}"

    def direction(self, name: str) -> Direction:
        """A label or mention direction by name."""
        for d in self.all_directions:
            if d.name == name:
                return d
        known = ", ".join(d.name for d in self.all_directions)
        raise KeyError(f"terminology {self.key!r} has no direction {name!r} (known: {known})")

    def to_dict(self) -> dict[str, Any]:
        """The spec as stored in a split manifest, so added ontologies travel with their data."""
        return {
            "key": self.key,
            "label": self.label,
            "id_prefix": self.id_prefix,
            "id_local": self.id_local,
            "id_example": self.id_example,
            "kind": self.kind,
            "description": self.description,
            **({"mentions_of": self.mentions_of} if self.mentions_of else {}),
        }


def _ontology_directions(term_word: str = "term") -> tuple[Direction, ...]:
    """term->ID and ID->term, used by GO, HPO and every ontology added with add-ontology."""
    term2id = Direction(
        name="term2id",
        source="name",
        target="id",
        answer_kind="id",
        templates=(
            'What is the {label} identifier for the {label} ' + term_word + ' "{source}"? '
            "Answer with the {label} identifier only, e.g. {example}.",
            'Give the {label} ID of the {label} ' + term_word + ' "{source}". '
            "Reply with the identifier only, e.g. {example}.",
            'Which {label} identifier does the ' + term_word + ' "{source}" have? '
            "Answer with the identifier only.",
            'Map the {label} ' + term_word + ' "{source}" to its {label} identifier. '
            "Answer with the identifier only.",
            '"{source}" is a {label} ' + term_word + ". What is its identifier? "
            "Answer with the identifier only, e.g. {example}.",
        ),
        lenient_fields=("alt_ids",),
    )
    id2term = Direction(
        name="id2term",
        source="id",
        target="name",
        answer_kind="name",
        templates=(
            "What is the name of the {label} " + term_word + " {source}? "
            "Answer with the " + term_word + " name only.",
            "Give the name of the {label} " + term_word + " with identifier {source}. "
            "Reply with the name only.",
            "Which {label} " + term_word + " has the identifier {source}? Answer with its name only.",
            "Map the {label} identifier {source} to its " + term_word + " name. "
            "Answer with the name only.",
            "{source} is a {label} identifier. What is the name of the " + term_word + "? "
            "Answer with the name only.",
        ),
        lenient_fields=("synonyms",),
    )
    return (term2id, id2term)


def _mention_of(label: Direction, name: str, kind: str, templates: tuple[str, ...] | None = None,
                splits: tuple[str, ...] = SPLITS) -> Direction:
    """A mention direction mirroring ``label``: the record's ``mentions.<kind>`` asked instead of
    its label, for the same gold and lenient answers (``templates``: the label's when None)."""
    return Direction(name=name, source=f"mentions.{kind}", target=label.target, answer_kind=label.answer_kind,
                     templates=label.templates if templates is None else templates,
                     lenient_fields=label.lenient_fields, mention=kind, mirrors=label.name, splits=splits)


# Every mention kind (``splits.mentions``) and the direction that asks it: the one map, which the
# build's manifest, fine-tuning's ``train_forms`` values and the tasks read. Ontologies: exact
# synonyms (not lay), lay terms (HPO's ``layperson`` synonym type); genes: alias and previous symbols.
MENTION_DIRECTIONS = {"synonym": "synonym2id", "lay": "lay2id",
                      "alias": "alias2symbol", "prev": "prev2symbol"}
ONTOLOGY_KINDS = ("synonym", "lay")
GENE_KINDS = ("alias", "prev")
# The ontology mention directions' prompts are term2id's with the form in place of the label, so only
# the words asked about change between a label task and its mention tasks.
ONTOLOGY_MENTIONS = {k: MENTION_DIRECTIONS[k] for k in ONTOLOGY_KINDS}


def _ontology_mention_directions(kinds: dict[str, tuple[str, ...]]) -> tuple[Direction, ...]:
    """The mention directions of an ontology whose records have forms of ``kinds`` (kind -> the splits
    that have any), in ``ONTOLOGY_MENTIONS`` order."""
    term2id = _ontology_directions()[0]
    return tuple(_mention_of(term2id, name, kind, splits=kinds[kind])
                 for kind, name in ONTOLOGY_MENTIONS.items() if kinds.get(kind))


GO = Terminology(
    key="go",
    label="GO",
    id_prefix="GO",
    id_local=r"\d{7}",
    id_example="GO:1234567",
    directions=_ontology_directions(),
    description="Gene Ontology, all three aspects (BP, MF, CC)",
    mention_directions=_ontology_mention_directions({"synonym": SPLITS}),
)

HPO = Terminology(
    key="hpo",
    label="HPO",
    id_prefix="HP",
    id_local=r"\d{7}",
    id_example="HP:1234567",
    directions=_ontology_directions(),
    description="Human Phenotype Ontology, Phenotypic abnormality subtree (HP:0000118)",
    mention_directions=_ontology_mention_directions({"synonym": SPLITS, "lay": SPLITS}),
)

_GENE_DIRECTIONS = (
    Direction(
        name="name2symbol",
        source="name",
        target="symbol",
        answer_kind="id",
        templates=(
            'What is the official HGNC gene symbol of the human gene "{source}"? '
            "Answer with the gene symbol only.",
            'Give the HGNC symbol of the human gene "{source}". Reply with the symbol only.',
            'Which gene symbol does HGNC approve for "{source}"? Answer with the symbol only.',
            'Map the human gene name "{source}" to its HGNC symbol. Answer with the symbol only.',
            '"{source}" is a human gene. What is its official symbol? Answer with the symbol only.',
        ),
        lenient_fields=("prev_symbols",),
    ),
    Direction(
        name="symbol2name",
        source="symbol",
        target="name",
        answer_kind="name",
        templates=(
            "What is the approved HGNC name of the human gene {source}? "
            "Answer with the gene name only.",
            "Give the full approved name of the human gene with symbol {source}. "
            "Reply with the name only.",
            "Which gene name does HGNC approve for the symbol {source}? Answer with the name only.",
            "Map the HGNC gene symbol {source} to its approved gene name. Answer with the name only.",
            "{source} is a human gene symbol. What is the gene's approved name? "
            "Answer with the name only.",
        ),
    ),
    Direction(
        name="name2id",
        source="name",
        target="id",
        answer_kind="id",
        templates=(
            'What is the HGNC identifier of the human gene "{source}"? '
            "Answer with the HGNC identifier only, e.g. {example}.",
            'Give the HGNC ID of the human gene "{source}". Reply with the identifier only, '
            "e.g. {example}.",
            'Which HGNC identifier does the gene "{source}" have? Answer with the identifier only.',
            'Map the human gene name "{source}" to its HGNC identifier. '
            "Answer with the identifier only.",
            '"{source}" is a human gene. What is its HGNC identifier? '
            "Answer with the identifier only, e.g. {example}.",
        ),
    ),
    Direction(
        name="id2name",
        source="id",
        target="name",
        answer_kind="name",
        templates=(
            "What is the approved name of the human gene with HGNC identifier {source}? "
            "Answer with the gene name only.",
            "Give the approved gene name for {source}. Reply with the name only.",
            "Which human gene has the HGNC identifier {source}? Answer with its approved name only.",
            "Map the HGNC identifier {source} to its approved gene name. "
            "Answer with the name only.",
            "{source} is an HGNC identifier. What is the gene's approved name? "
            "Answer with the name only.",
        ),
    ),
    Direction(
        name="protein2symbol",
        source="protein_name",
        target="symbol",
        answer_kind="id",
        templates=(
            'What is the HGNC symbol of the gene that encodes the human protein "{source}"? '
            "Answer with the gene symbol only.",
            'Give the HGNC gene symbol for the human protein "{source}". '
            "Reply with the symbol only.",
            'Which human gene encodes the protein "{source}"? Answer with the gene symbol only.',
            'Map the UniProt protein name "{source}" to its HGNC gene symbol. '
            "Answer with the symbol only.",
            '"{source}" is a human protein. What is the symbol of its gene? '
            "Answer with the symbol only.",
        ),
        lenient_fields=("prev_symbols",),
    ),
)

# Gene mentions: an alias symbol, a previous symbol, asked for the approved symbol (name2symbol's
# answers). The prompts say which kind of symbol is shown: "the gene <symbol>" would read as a
# question about a symbol that is already approved.
_GENE_MENTION_DIRECTIONS = (
    _mention_of(_GENE_DIRECTIONS[0], MENTION_DIRECTIONS["alias"], "alias", (
        'What is the official HGNC gene symbol of the human gene with the alias symbol "{source}"? '
        "Answer with the gene symbol only.",
        'Give the HGNC symbol of the human gene also known by the alias "{source}". '
        "Reply with the symbol only.",
        'Which gene symbol does HGNC approve for the gene with the alias symbol "{source}"? '
        "Answer with the symbol only.",
        'Map the human gene alias "{source}" to the gene\'s approved HGNC symbol. '
        "Answer with the symbol only.",
        '"{source}" is an alias symbol of a human gene. What is its official symbol? '
        "Answer with the symbol only.",
    )),
    _mention_of(_GENE_DIRECTIONS[0], MENTION_DIRECTIONS["prev"], "prev", (
        'What is the current official HGNC gene symbol of the human gene whose previous symbol is '
        '"{source}"? Answer with the gene symbol only.',
        'Give the current HGNC symbol of the human gene formerly symbolized "{source}". '
        "Reply with the symbol only.",
        'Which gene symbol does HGNC now approve for the gene with the previous symbol "{source}"? '
        "Answer with the symbol only.",
        'Map the previous human gene symbol "{source}" to the gene\'s current HGNC symbol. '
        "Answer with the symbol only.",
        '"{source}" is a previous symbol of a human gene. What is its current official symbol? '
        "Answer with the symbol only.",
    )),
)

GENE = Terminology(
    key="gene",
    label="HGNC",
    id_prefix="HGNC",
    id_local=r"\d{1,6}",
    id_example="HGNC:12345",
    directions=_GENE_DIRECTIONS,
    description="Approved protein-coding human genes: HGNC symbol, approved name, HGNC ID, "
    "UniProt protein name",
    kind="gene",
    mention_directions=_GENE_MENTION_DIRECTIONS,
)

BUILTIN: dict[str, Terminology] = {t.key: t for t in (GO, HPO, GENE)}


# A user's own mentions (``termnorm add-mentions``): one direction per terminology kind, asked with
# its label direction's prompts (the mention in place of the label) for the same answers, on the
# records' ``mentions.user``, all in the test split.
USER_KIND = "user"
USER_DIRECTIONS: dict[str, tuple[str, str]] = {  # terminology kind -> (direction, label direction)
    "ontology": ("mention2id", "term2id"),
    "gene": ("mention2symbol", "name2symbol"),
}


def user_mentions_terminology(key: str, of: Terminology, description: str = "") -> Terminology:
    """The terminology of a user's mention table ``key`` scored against ``of``'s release: no label
    direction, one mention direction (``USER_DIRECTIONS``) on the test split."""
    if of.mentions_of is not None:
        raise ValueError(f"{of.key!r} is itself a user's mention table")
    name, label = USER_DIRECTIONS[of.kind]
    mention = _mention_of(of.direction(label), name, USER_KIND, splits=(TEST_SPLIT,))
    return Terminology(key=key, label=of.label, id_prefix=of.id_prefix, id_local=of.id_local,
                       id_example=of.id_example, directions=(), kind=of.kind,
                       description=description or f"a user's mentions of {of.label} concepts",
                       mention_directions=(mention,), mentions_of=of.key)


MentionKinds = dict[str, dict[str, int]]  # a manifest's mention_kinds: kind -> split -> concepts with a form


def _mention_splits(mention_kinds: MentionKinds | None) -> dict[str, tuple[str, ...]]:
    """kind -> the splits with forms of it, from a manifest's ``mention_kinds``; a kind no ontology
    has is a ValueError."""
    if mention_kinds is not None and not isinstance(mention_kinds, dict):
        raise ValueError("mention_kinds must be an object (kind -> split -> concepts with a form)")
    out: dict[str, tuple[str, ...]] = {}
    for kind, counts in (mention_kinds or {}).items():
        if kind not in ONTOLOGY_MENTIONS:
            raise ValueError(f"mention_kinds: {kind!r} is no ontology mention kind "
                             f"({', '.join(ONTOLOGY_MENTIONS)})")
        if not isinstance(counts, dict):
            raise ValueError(f"mention_kinds.{kind} must be an object of counts per split")
        out[kind] = tuple(s for s in SPLITS if counts.get(s))
    return out


def ontology_terminology(
    key: str, label: str, id_prefix: str, id_local: str = r"\d+", id_example: str | None = None,
    description: str = "", mention_kinds: MentionKinds | None = None,
) -> Terminology:
    """A terminology for any OBO ontology (used by add-ontology): term->ID and ID->term, and the
    mention directions of the kinds ``mention_kinds`` (a manifest's: kind -> split -> concepts with a
    form) lists, each on the splits that have a form (none: no mention directions)."""
    if not re.fullmatch(r"[a-z][a-z0-9]*", key):
        raise ValueError(f"ontology short name {key!r} must be lower-case letters and digits")
    return Terminology(
        key=key,
        label=label,
        id_prefix=id_prefix,
        id_local=id_local,
        id_example=id_example or f"{id_prefix}:1234567",
        directions=_ontology_directions(),
        description=description,
        mention_directions=_ontology_mention_directions(_mention_splits(mention_kinds)),
    )


def with_mention_kinds(term: Terminology, mention_kinds: MentionKinds) -> Terminology:
    """An added ontology with the mention directions its build found forms for (the manifest's
    ``mention_kinds``); a built-in terminology is returned as it is."""
    if BUILTIN.get(term.key) == term:
        return term
    return dataclasses.replace(
        term, mention_directions=_ontology_mention_directions(_mention_splits(mention_kinds)))


_TEXT_FIELDS = ("key", "label", "id_prefix", "id_local", "id_example", "description", "kind", "mentions_of")
_JSON_KINDS = {list: "a list", dict: "an object", bool: "a boolean", int: "a number", float: "a number"}


def terminology_from_dict(spec: dict[str, Any], mention_kinds: MentionKinds | None = None) -> Terminology:
    """Inverse of ``Terminology.to_dict`` (built-in keys return the built-in definition); an added
    ontology's mention directions come from its manifest entry's ``mention_kinds``. A field of another
    type (a hand-edited manifest) is a ValueError naming it."""
    for name in _TEXT_FIELDS:
        value = spec.get(name)
        if value is not None and not isinstance(value, str):
            what = "a terminology key (a string)" if name == "mentions_of" else "a string"
            kind = _JSON_KINDS.get(type(value), type(value).__name__)
            raise ValueError(f"{name} must be {what}, not {kind}")
    if spec.get("key") in BUILTIN:
        return BUILTIN[spec["key"]]
    if spec.get("mentions_of"):  # a user's mentions: the spec's fields are its terminology's
        of = BUILTIN.get(spec["mentions_of"]) or terminology_from_dict({**spec, "key": spec["mentions_of"],
                                                                         "mentions_of": None})
        if of.kind != spec.get("kind", of.kind):
            raise ValueError(f"mentions_of {of.key!r} is a terminology of kind {of.kind}, the spec says "
                             f"{spec.get('kind')}")
        return user_mentions_terminology(spec["key"], of, spec.get("description", ""))
    return ontology_terminology(
        key=spec["key"],
        label=spec["label"],
        id_prefix=spec["id_prefix"],
        id_local=spec.get("id_local", r"\d+"),
        id_example=spec.get("id_example"),
        description=spec.get("description", ""),
        mention_kinds=mention_kinds,
    )
