"""The study's own evaluation protocol, as the ``termnorm-study_*`` task family.

The 2025 study (arXiv 2510.19036; notebooks in the public repository
``clslabMSU/Finetuning-LLMs-for-Biomedical-Ontologies-Bidirectional-Mapping``) did not ask for a bare
answer. It sent a chat request with

* a system prompt "You are a biomedical expert specializing in <terminology>. Always respond in valid
  JSON format with only the requested information." (``system_prompt``);
* a user message with instructions, the JSON object to answer with (``{"GO_ID": "<go_id_here>"}``)
  and "None" for an invalid or unknown term (``study_prompt``);
* temperature 0.05 (Llama, fine-tuned) or 0.1 (GPT-4o), at most 128 tokens, a JSON response format;

then parsed the value of the asked key -- the whole response as JSON, a JSON object in a markdown
fence, any ``{...}`` holding the key, then two regular expressions, then "None" when the text reads
like a refusal, else a parse error (``parse_study_value``) -- and scored
``str(gold).strip() == str(pred).strip()`` (names case-insensitively), so "None" and parse errors
are wrong.

The plugin's tasks keep that order exactly: the study filter (``extract_study_responses``) hands the
*parsed value* to the unchanged strict ``exact_match`` as the raw response, so the strict score is
the study's score; ``lenient_match``, the validity metrics and ``alignment`` see the plugin's
``answer_of()`` of that value (of the whole response when parsing failed), and ``parse_error`` says
which documents failed to parse.

Where the wording comes from (``StudyPrompt.origin``): the study's notebooks for GO term->ID, HPO
term->ID (the fine-tuned Llama notebooks), GO ID->term (the GPT-4o notebook), HPO ID->term (the
Llama 70B notebook) and protein name->gene symbol (the fine-tuned Llama notebook); the plugin's own
wording, in the same shape, for the gene directions no notebook of the repository shows (the gene
mention directions alias2symbol and prev2symbol included) and for ontologies added with
add-ontology. An ontology's mention directions (synonym2id, lay2id) use its term->ID prompt with the
synonym or lay term as the term, keys unchanged. The notebooks' prompts are triple-quoted strings inside
functions; they are reproduced dedented, without the trailing spaces of a few lines.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness.scoring import ExtractedAnswer, answer_of
from termnorm_eval.terminologies import BUILTIN, Direction, Terminology
from termnorm_eval.text import clean_text

# What a refusal parses to (the study's "None"), and what the study logged for an unparseable one.
NONE_ANSWER = "None"
# The study's system prompt names the terminology; the fine-tuned notebooks' wording per terminology.
SPECIALTIES: dict[str, str] = {
    "go": "Gene Ontology (GO)",
    "hpo": "Human Phenotype Ontology (HPO)",
    "gene": "gene nomenclature and protein names",
}
SYSTEM_PROMPT = ("You are a biomedical expert specializing in {specialty}. "
                 "Always respond in valid JSON format with only the requested information.")
# Parsing looks at this much of a response: the study's lazy fence pattern backtracks over every "}"
# after a fence, so an unbounded API response could cost quadratic time. Real answers are far
# shorter (128 tokens).
_HEAD = 20_000
SOURCE = "{source}"  # where a prompt puts the document's source value (str.replace, not format: JSON braces)

STUDY_REPO = "clslabMSU/Finetuning-LLMs-for-Biomedical-Ontologies-Bidirectional-Mapping"


@dataclass(frozen=True)
class StudyPrompt:
    """The user message of one terminology x direction, and the JSON key whose value is the answer."""

    key: str
    template: str  # contains SOURCE once
    origin: str  # "study: <notebook>" or "ours"

    def render(self, source: str) -> str:
        return self.template.replace(SOURCE, source)


# --- the study's prompts (notebooks of the study's repository) --------------------------------------

_GO_TERM2ID = StudyPrompt("GO_ID", """\
Given the Gene Ontology term "{source}", provide the corresponding GO ID.

Instructions:
- Provide the EXACT official GO ID as it appears in the Gene Ontology database
- Choose the most direct, standard GO ID for the term
- Avoid overly specific or complex variations (e.g., prefer primary GO terms over highly specific subterms)
- Return the primary, commonly used GO ID
- GO IDs follow the format: GO:XXXXXXX (where X are 7 digits)
- Examples: GO:0008150, GO:0003674, GO:0005575
- If the term is invalid or unknown, respond with "None"
- Use this exact JSON format:

{
  "GO_ID": "<go_id_here>"
}

GO Term: {source}""", "study: notebooks/Llama 70Bterm-id.ipynb (fine-tuned, GO term->ID)")

_HPO_TERM2ID = StudyPrompt("HPO_ID", """\
Given the Human Phenotype Ontology term "{source}", provide the corresponding HPO ID.

Instructions:
- Provide the EXACT official HPO ID as it appears in the Human Phenotype Ontology database
- Choose the most direct, standard HPO ID for the term
- Avoid overly specific or complex variations (e.g., prefer primary phenotype IDs over highly specific subphenotypes)
- Return the primary, commonly used HPO ID
- HPO IDs follow the format: HP:XXXXXXX (where X are 7 digits)
- Examples:
  - "All" → HP:0000001
  - "Phenotypic abnormality" → HP:0000118
  - "Growth abnormality" → HP:0001507
- If the term is invalid or unknown, respond with "None"
- Use this exact JSON format:

{
  "HPO_ID": "<hpo_id_here>"
}

HPO Term: {source}""", "study: notebooks/HPO-8B-Term-id.ipynb (fine-tuned, HPO term->ID)")  # noqa: E501

_GO_ID2TERM = StudyPrompt("go_term", """\
Your task is to identify the correct GO (Gene Ontology) term for a given GO ID.
Respond in the following structured JSON format:
{
    "go_term": "<best matching GO term>"
}
If no relevant GO term is found, return:
{
    "go_term": "None"
}

Guidelines for GO terms:
- Provide the exact official GO term name
- Use standard Gene Ontology nomenclature
- Include the complete term name as it appears in the GO database
- Do not abbreviate or modify the official term

Only use valid GO terms from the official Gene Ontology database. Do not guess or make up terms.
GO ID: "{source}\"""", "study: notebooks/Gpt4.ipynb (GPT-4o, GO ID->term)")

_HPO_ID2TERM = StudyPrompt("hpo_term", """\
Your task is to identify the correct HPO term for this Human Phenotype Ontology ID.

HPO ID: "{source}"

IMPORTANT: You must respond in this exact JSON format with no other text:
{
  "hpo_term": "<best matching HPO term>"
}

If no relevant HPO ID or term exists, respond with:
{
  "hpo_term": "None"
}

Guidelines for HPO terms:
- Provide the exact official HPO term name
- Use standard Human Phenotype Ontology nomenclature
- Include the complete term name as it appears in the HPO database
- Do not abbreviate or modify the official term
- Focus on phenotypic descriptions and clinical features

Only use valid HPO terms from the official Human Phenotype Ontology database.
Do not invent or guess HPO terms. Your response must be valid JSON.""",
                           "study: notebooks/Llama 70B.ipynb (Llama 70B, HPO ID->term)")

_PROTEIN2SYMBOL = StudyPrompt("gene_symbol", """\
Given the protein name "{source}", provide the corresponding gene symbol.

Instructions:
- Provide the EXACT official gene symbol (HUGO Gene Nomenclature Committee approved symbol)
- Choose the most direct, standard gene symbol for the protein
- Avoid gene aliases or alternative names (e.g., prefer "TP53" over "P53")
- Return the primary, commonly used gene symbol
- Gene symbols are typically short, uppercase abbreviations
- Examples:
  - "p53" → "TP53"
  - "Breast cancer type 1 susceptibility protein" → "BRCA1"
  - "Insulin" → "INS"
- If the protein name is invalid or unknown, respond with "None"
- Use this exact JSON format:

{
  "gene_symbol": "<gene_symbol_here>"
}

Protein Name: {source}""", "study: notebooks/FT-PN-GN-8b.ipynb (fine-tuned, protein name->gene symbol)")

# --- our wording, in the study's shape, where no notebook of the repository shows the direction -----

_NAME2SYMBOL = StudyPrompt("gene_symbol", """\
Given the human gene name "{source}", provide the corresponding gene symbol.

Instructions:
- Provide the EXACT official gene symbol (HUGO Gene Nomenclature Committee approved symbol)
- Avoid gene aliases or previous symbols
- Return the primary, commonly used gene symbol
- If the gene name is invalid or unknown, respond with "None"
- Use this exact JSON format:

{
  "gene_symbol": "<gene_symbol_here>"
}

Gene Name: {source}""", "ours")

_SYMBOL2NAME = StudyPrompt("gene_name", """\
Given the HUGO Gene Symbol "{source}", provide the corresponding approved gene name.

Instructions:
- Provide the EXACT approved gene name (HUGO Gene Nomenclature Committee)
- Do not abbreviate or modify the approved name
- If the gene symbol is invalid or unknown, respond with "None"
- Use this exact JSON format:

{
  "gene_name": "<gene_name_here>"
}

Gene Symbol: {source}""", "ours")

_NAME2ID = StudyPrompt("HGNC_ID", """\
Given the human gene name "{source}", provide the corresponding HGNC ID.

Instructions:
- Provide the EXACT official HGNC ID as it appears in the HGNC database
- HGNC IDs follow the format: HGNC:N (where N is a number of 1 to 6 digits)
- If the gene name is invalid or unknown, respond with "None"
- Use this exact JSON format:

{
  "HGNC_ID": "<hgnc_id_here>"
}

Gene Name: {source}""", "ours")

_ID2NAME = StudyPrompt("gene_name", """\
Given the HGNC ID "{source}", provide the corresponding approved gene name.

Instructions:
- Provide the EXACT approved gene name (HUGO Gene Nomenclature Committee)
- Do not abbreviate or modify the approved name
- If the HGNC ID is invalid or unknown, respond with "None"
- Use this exact JSON format:

{
  "gene_name": "<gene_name_here>"
}

HGNC ID: {source}""", "ours")

# The gene mention directions: name2symbol's shape and JSON key, saying which kind of symbol is given.
_ALIAS2SYMBOL = StudyPrompt("gene_symbol", """\
Given the human gene alias symbol "{source}", provide the corresponding gene symbol.

Instructions:
- Provide the EXACT official gene symbol (HUGO Gene Nomenclature Committee approved symbol)
- The alias is another symbol of the gene: do not repeat it, avoid other aliases or previous symbols
- Return the primary, commonly used gene symbol
- If the alias is invalid or unknown, respond with "None"
- Use this exact JSON format:

{
  "gene_symbol": "<gene_symbol_here>"
}

Alias Symbol: {source}""", "ours")

_PREV2SYMBOL = StudyPrompt("gene_symbol", """\
Given the previous human gene symbol "{source}", provide the corresponding current gene symbol.

Instructions:
- Provide the EXACT current official gene symbol (HUGO Gene Nomenclature Committee approved symbol)
- The previous symbol is no longer approved: do not repeat it, avoid aliases or other previous symbols
- Return the primary, commonly used gene symbol
- If the symbol is invalid or unknown, respond with "None"
- Use this exact JSON format:

{
  "gene_symbol": "<gene_symbol_here>"
}

Previous Symbol: {source}""", "ours")

_BUILTIN_PROMPTS: dict[tuple[str, str], StudyPrompt] = {
    ("go", "term2id"): _GO_TERM2ID,
    ("go", "id2term"): _GO_ID2TERM,
    ("hpo", "term2id"): _HPO_TERM2ID,
    ("hpo", "id2term"): _HPO_ID2TERM,
    ("gene", "name2symbol"): _NAME2SYMBOL,
    ("gene", "symbol2name"): _SYMBOL2NAME,
    ("gene", "name2id"): _NAME2ID,
    ("gene", "id2name"): _ID2NAME,
    ("gene", "protein2symbol"): _PROTEIN2SYMBOL,
    ("gene", "alias2symbol"): _ALIAS2SYMBOL,
    ("gene", "prev2symbol"): _PREV2SYMBOL,
}


def _key_part(label: str) -> str:
    """A label as part of a JSON key (``CL`` -> ``CL``; anything but letters, digits, _ -> ``_``)."""
    return re.sub(r"\W", "_", label, flags=re.ASCII) or "ID"


def _ontology_prompt(term: Terminology, direction: str) -> StudyPrompt:
    """term->ID / ID->term of an added ontology: the GO/HPO prompts' shape, with its label."""
    label, part = term.label, _key_part(term.label)
    if direction == "term2id":
        key = f"{part}_ID"
        return StudyPrompt(key, f"""\
Given the {label} ontology term "{SOURCE}", provide the corresponding {label} ID.

Instructions:
- Provide the EXACT official {label} ID as it appears in the {label} ontology
- Choose the most direct, standard {label} ID for the term
- Return the primary, commonly used {label} ID
- {label} IDs follow the format of {term.id_example}
- If the term is invalid or unknown, respond with "None"
- Use this exact JSON format:

{{
  "{key}": "<id_here>"
}}

{label} Term: {SOURCE}""", "ours")
    if direction == "id2term":
        key = f"{part.lower()}_term"
        return StudyPrompt(key, f"""\
Your task is to identify the correct {label} term for this {label} ontology ID.

{label} ID: "{SOURCE}"

IMPORTANT: You must respond in this exact JSON format with no other text:
{{
  "{key}": "<best matching {label} term>"
}}

If no relevant {label} ID or term exists, respond with:
{{
  "{key}": "None"
}}

Guidelines for {label} terms:
- Provide the exact official {label} term name
- Include the complete term name as it appears in the {label} ontology
- Do not abbreviate or modify the official term

Only use valid {label} terms from the official {label} ontology.
Do not invent or guess {label} terms. Your response must be valid JSON.""", "ours")
    raise TermnormError(f"terminology {term.key!r}: no study-protocol prompt for direction {direction!r}")


def study_prompt(term: Terminology, direction: str) -> StudyPrompt:
    """The study-protocol user message of one task (built-in wording, or the added-ontology shape).

    An ontology's mention direction (synonym2id, lay2id) asks with its label direction's prompt, the
    form in place of the term, as its plain prompt does; the gene mention directions have their own.
    """
    if term.mentions_of is not None:  # a user's mentions: its terminology's label question
        of = BUILTIN.get(term.mentions_of) or dataclasses.replace(term, mentions_of=None)
        try:
            return study_prompt(of, term.direction(direction).label_direction)
        except KeyError:
            raise TermnormError(f"terminology {term.key!r}: no study-protocol prompt for direction "
                                f"{direction!r}") from None
    builtin = BUILTIN.get(term.key) == term
    if builtin and (term.key, direction) in _BUILTIN_PROMPTS:
        return _BUILTIN_PROMPTS[(term.key, direction)]
    if term.kind != "gene":
        # a mention direction asks its label direction's question (an unknown name stays unknown)
        direction = {d.name: d.label_direction for d in term.all_directions}.get(direction, direction)
        if builtin and (term.key, direction) in _BUILTIN_PROMPTS:
            return _BUILTIN_PROMPTS[(term.key, direction)]
        return _ontology_prompt(term, direction)
    raise TermnormError(f"terminology {term.key!r}: no study-protocol prompt for direction {direction!r}")


def system_prompt(term: Terminology) -> str:
    """The study's system prompt for a terminology (an added ontology is named by its label; a user's
    mentions by the terminology they are scored against)."""
    key = term.mentions_of or term.key
    specialty = SPECIALTIES.get(key) if term.mentions_of in BUILTIN or BUILTIN.get(key) == term else None
    return SYSTEM_PROMPT.format(specialty=specialty or f"the {term.label} ontology")


# --- parsing the response, as the study's notebooks do ----------------------------------------------

_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)
_REFUSAL = re.compile(r"[Nn]o(ne| relevant| matching)")


@lru_cache(maxsize=64)
def _key_patterns(key: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    k = re.escape(key)
    return (
        re.compile(r'(\{[^{]*?"' + k + r'"[^}]*?\})', re.DOTALL),  # any object holding the key
        re.compile(r'"' + k + r'"[\s:]*"([^"]+)"'),  # "KEY": "value" in broken JSON
        re.compile(k + r'["\':\s]+([^"\'}\s,]+)'),  # KEY: value, first token only (the study's rule)
    )


def _value_of(candidate: str, key: str) -> tuple[bool, Any]:
    """(True, value) when ``candidate`` is a JSON object with ``key``."""
    try:
        obj = json.loads(candidate)
    except (ValueError, RecursionError):
        return False, None
    if isinstance(obj, dict) and key in obj:
        return True, obj[key]
    return False, None


def _as_text(value: Any) -> str:
    # The study stored the JSON value and compared str(value).strip(); JSON null is its "None" (a
    # refusal, never an answer), whatever else is not a string is compared as its str().
    if value is None:
        return NONE_ANSWER
    return (value if isinstance(value, str) else str(value)).strip()


def parse_study_value(text: str, key: str) -> str | None:
    """The value of ``key`` the study's parser reads in a response; None for its parse error.

    In the study's order: the whole response as JSON; a JSON object in a markdown fence; the first
    ``{...}`` holding ``"key"`` (no nested braces); ``"key": "value"``; ``key: value`` (its first
    token); "None" when the text reads like a refusal ("None", "no relevant", "no matching", "not
    found"). Only JSON objects count (a bare JSON string or list is no answer, as in the study).
    """
    head = text[:_HEAD]
    found, value = _value_of(head.strip(), key)
    if found:
        return _as_text(value)
    fence = _FENCE.search(head)
    if fence:
        found, value = _value_of(fence.group(1), key)
        if found:
            return _as_text(value)
    anywhere, quoted, bare = _key_patterns(key)
    m = anywhere.search(head)
    if m:
        found, value = _value_of(m.group(1), key)
        if found:
            return _as_text(value)
    for pattern in (quoted, bare):
        m = pattern.search(head)
        if m:
            return m.group(1).strip()
    if _REFUSAL.search(head) or "not found" in head.lower():
        return NONE_ANSWER
    return None


def study_answer(response: str, doc: dict[str, Any], key: str, shown: str | None = None) -> ExtractedAnswer:
    """The study filter's output for one response.

    ``raw`` (what the strict score compares) is the parsed value, '' on a parse error (never equal
    to a gold answer: the study scored parse errors wrong); the answer is ``answer_of()`` of the parsed
    value, or of the whole response when parsing failed (so the lenient score and the validity
    categories still see an identifier given outside the JSON).
    """
    value = parse_study_value(response, key)
    if value is None:
        return ExtractedAnswer(answer_of(response, doc), "", True, shown)
    value = clean_text(value)
    return ExtractedAnswer(answer_of(value, doc), value, False, shown)


# --- the hooks the generated utils.py binds to its data folder --------------------------------------

def question_source(question: str, term: Terminology, direction: Direction) -> str:
    """The source value a plain-family question was rendered from (the inverse of template 0).

    The documents carry the rendered question, not the record; the study prompt needs the term,
    identifier or symbol itself.
    """
    template = direction.templates[0]
    if template.count(SOURCE) != 1:
        raise TermnormError(f"direction {direction.name!r}: template 0 must contain {SOURCE} once")
    head, tail = (part.format(label=term.label, example=term.id_example) for part in template.split(SOURCE))
    if not (question.startswith(head) and question.endswith(tail)) or len(question) < len(head) + len(tail):
        raise TermnormError(f"{term.key} {direction.name}: document question {question[:80]!r} was not "
                            "rendered from this direction's prompt")
    return question[len(head):len(question) - len(tail)]


@dataclass(frozen=True)
class StudyHooks:
    """What the study tasks' YAML reaches through ``!function utils.<name>``."""

    doc_to_text: Callable[[dict[str, Any]], str]
    extract_responses: Callable[[Sequence[Any], Sequence[dict[str, Any]]], list[ExtractedAnswer]]
    fewshot_target: Callable[[dict[str, Any]], str]


def make_study_hooks(data_dir: str | Path | None) -> StudyHooks:
    """The study family's prompt, filter and few-shot answer, for the splits of ``data_dir``."""
    from termnorm_eval.splits import store

    @lru_cache(maxsize=32)
    def _terminology(key: str, manifest: store.FileKey | None) -> Terminology:
        return store.terminology(key, data_dir)

    def terminology(key: str) -> Terminology:
        if data_dir is None and key in BUILTIN:
            return BUILTIN[key]
        # keyed on the manifest's identity: a rebuilt folder in this process is read again
        return _terminology(key, store.file_key(Path(data_dir or store.shipped_data_dir()) / store.MANIFEST,
                                                "split manifest"))

    def prompt_of(doc: dict[str, Any]) -> tuple[Terminology, Direction, StudyPrompt]:
        term = terminology(doc["terminology"])
        try:
            direction = term.direction(doc["direction"])
        except KeyError as e:
            raise TermnormError(str(e.args[0])) from None
        return term, direction, study_prompt(term, direction.name)

    def doc_to_text(doc: dict[str, Any]) -> str:
        term, direction, prompt = prompt_of(doc)
        return prompt.render(question_source(doc["question"], term, direction))

    def extract_responses(resps: Sequence[Any], docs: Sequence[dict[str, Any]]) -> list[ExtractedAnswer]:
        out = []
        for resp, doc in zip(resps, docs, strict=True):
            if isinstance(resp, list) and resp and isinstance(resp[0], str):
                resp[0] = clean_text(resp[0])  # in place, as the plain filter: the samples log these lists
            first = resp[0] if isinstance(resp, (list, tuple)) and resp else resp
            text = "" if first is None or first == [] else str(first)
            # the prompt shown, so that a copied example of the study's prompt is classified as one
            out.append(study_answer(text, doc, prompt_of(doc)[2].key, doc_to_text(doc)))
        return out

    def fewshot_target(doc: dict[str, Any]) -> str:
        # A few-shot example answers the way the prompt asks: the JSON object, not the bare answer.
        return json.dumps({prompt_of(doc)[2].key: doc["answer"]}, ensure_ascii=False)

    return StudyHooks(doc_to_text, extract_responses, fewshot_target)
