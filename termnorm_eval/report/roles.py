"""What a task's split measures, which depends on its direction (issue 21).

A label direction (term2id, name2symbol, ...) asks a concept by the words training showed: its training
split measures memorization, its held-out split generalization. A mention direction (synonym2id, lay2id,
alias2symbol, prev2symbol) asks the same concepts through a form training never showed: its training split
is concept transfer, its held-out split an unseen concept through a form (the transfer table sets them
beside their label direction). A user's mention table (``termnorm add-mentions``: mention2id,
mention2symbol) is a ``test`` split of the user's own words: which of its concepts were trained is not
known, so it is neither.
"""

from __future__ import annotations

from termnorm_eval.terminologies import BUILTIN, TEST_SPLIT, USER_DIRECTIONS

# mention direction -> the label direction it mirrors; a name means the same in every terminology (an
# added ontology's synonym2id and lay2id mirror its term2id)
MIRRORS: dict[str, str] = {d.name: d.label_direction for t in BUILTIN.values() for d in t.mention_directions}
# ... and a user's mention tables' directions (they have no transfer table: no train or val split)
LABEL_OF: dict[str, str] = MIRRORS | dict(USER_DIRECTIONS.values())
# label directions whose answers are gene symbols or names (no is_a hierarchy), whatever the key
GENE_DIRECTIONS = frozenset(d.name for t in BUILTIN.values() if t.kind == "gene" for d in t.directions)

ROLE = {"train": "memorization", "val": "generalization"}  # of a label direction's splits
LABEL_TITLE = {"train": "train (memorization)", "val": "held-out (generalization)"}
MENTION_TITLE = {"train": "train (training-split concept, new form: concept transfer)",
                 "val": "held-out (unseen concept, a form)"}
TEST_TITLE = "test (a user's mentions: trained or not, not known)"


def label_direction(direction: str) -> str:
    """The label direction ``direction`` is (itself) or mirrors."""
    return LABEL_OF.get(direction, direction)


def is_mention(direction: str) -> bool:
    return direction in LABEL_OF


def split_title(direction: str, split: str) -> str:
    """How a table names the split of a task of ``direction``."""
    if split == TEST_SPLIT:
        return TEST_TITLE
    titles = MENTION_TITLE if is_mention(direction) else LABEL_TITLE
    return titles.get(split, split)


def is_gene(key: str, direction: str) -> bool:
    """A gene terminology's task (answers have no is_a hierarchy): a built-in key by its kind, any other
    (an added ontology, a user's table) by the label direction it asks."""
    term = BUILTIN.get(key)
    return term.kind == "gene" if term is not None else label_direction(direction) in GENE_DIRECTIONS
