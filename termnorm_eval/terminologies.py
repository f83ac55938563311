"""The terminologies, their mapping directions and the prompts: the contract every stage shares.

Splits store one JSON record per concept (see ``splits.store``); a *direction* says which field of
that record is asked about and which field is the gold answer. Harness tasks, fine-tuning data and
the lexicalization analysis all render items from the same ``Direction`` so that what is trained is
exactly what is scored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

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
# answer owned by another concept). ``termnorm report`` refuses to compare scores across versions.
TASK_VERSION = 2.0


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


@dataclass(frozen=True)
class Direction:
    """One way of asking: ``source`` field of a record in, ``target`` field out."""

    name: str  # e.g. "term2id"; part of the task name
    source: str  # record field shown in the question
    target: str  # record field holding the gold answer
    answer_kind: AnswerKind  # "id": case-sensitive identifier; "name": case-insensitive text
    templates: tuple[str, ...]  # templates[0] is the evaluation prompt; all are used for training
    lenient_fields: tuple[str, ...] = ()  # record fields whose values also count as correct (lenient)

    def prompt(self, record: dict[str, Any], terminology: Terminology, variant: int = 0) -> str:
        template = self.templates[variant % len(self.templates)]
        return template.format(
            source=record[self.source],
            label=terminology.label,
            example=terminology.id_example,
        )

    def answer(self, record: dict[str, Any]) -> str:
        return str(record[self.target])

    def alternatives(self, record: dict[str, Any]) -> list[str]:
        """Gold answer plus everything the lenient score accepts (synonyms, alt_ids, ...)."""
        out = [self.answer(record)]
        for f in self.lenient_fields:
            out.extend(str(v) for v in record.get(f) or [] if v)
        return list(dict.fromkeys(out))

    def applies_to(self, record: dict[str, Any]) -> bool:
        """A record takes part in this direction only when both sides are present."""
        return bool(record.get(self.source)) and bool(record.get(self.target))


@dataclass(frozen=True)
class Terminology:
    key: str  # lower-case short name, used in task names: termnorm_<key>_<direction>_<split>
    label: str  # how prompts name it: "GO", "HPO", "HGNC"
    id_prefix: str  # CURIE prefix of its identifiers: "GO", "HP", "HGNC"
    id_local: str  # regex of the local part: r"\d{7}"
    id_example: str  # a well-formed identifier shown in prompts (not a real term on purpose)
    directions: tuple[Direction, ...]
    description: str = ""
    kind: TerminologyKind = "ontology"

    @property
    def id_regex(self) -> re.Pattern[str]:
        """Finds an identifier in free text in any of its common spellings (see ``id_pattern``)."""
        return id_pattern(self.id_prefix, self.id_local)

    def canonical_id(self, local: str) -> str:
        return f"{self.id_prefix}:{local}"

    def direction(self, name: str) -> Direction:
        for d in self.directions:
            if d.name == name:
                return d
        known = ", ".join(d.name for d in self.directions)
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


GO = Terminology(
    key="go",
    label="GO",
    id_prefix="GO",
    id_local=r"\d{7}",
    id_example="GO:1234567",
    directions=_ontology_directions(),
    description="Gene Ontology, all three aspects (BP, MF, CC)",
)

HPO = Terminology(
    key="hpo",
    label="HPO",
    id_prefix="HP",
    id_local=r"\d{7}",
    id_example="HP:1234567",
    directions=_ontology_directions(),
    description="Human Phenotype Ontology, Phenotypic abnormality subtree (HP:0000118)",
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
)

BUILTIN: dict[str, Terminology] = {t.key: t for t in (GO, HPO, GENE)}
SPLITS = ("train", "val")  # train: what fine-tuning sees (memorization); val: held out


def ontology_terminology(
    key: str, label: str, id_prefix: str, id_local: str = r"\d+", id_example: str | None = None,
    description: str = "",
) -> Terminology:
    """A terminology for any OBO ontology (used by add-ontology): term->ID and ID->term."""
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
    )


def terminology_from_dict(spec: dict[str, Any]) -> Terminology:
    """Inverse of ``Terminology.to_dict`` (built-in keys return the built-in definition)."""
    if spec.get("key") in BUILTIN:
        return BUILTIN[spec["key"]]
    return ontology_terminology(
        key=spec["key"],
        label=spec["label"],
        id_prefix=spec["id_prefix"],
        id_local=spec.get("id_local", r"\d+"),
        id_example=spec.get("id_example"),
        description=spec.get("description", ""),
    )
