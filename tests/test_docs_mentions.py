"""What the READMEs say about the mention forms training adds or leaves out, checked against the shipped
splits and finetune's own training sets (issue 21 review)."""

from __future__ import annotations

import re
from pathlib import Path

from finetune.data import build_training_set
from termnorm_eval.splits import mentions, store

REPO = Path(__file__).resolve().parent.parent


def _text(path: Path) -> str:
    return " ".join(path.read_text(encoding="utf-8").split())  # one line: sentences wrap


def test_finetune_readme_counts_the_form_pairs_train_forms_adds() -> None:
    m = re.search(r"On the shipped splits: GO (\d+) synonym pairs, HPO (\d+) synonym and (\d+) lay pairs, "
                  r"genes (\d+) alias and (\d+) previous-symbol pairs", _text(REPO / "finetune/README.md"))
    assert m is not None
    got = [build_training_set(key, None, None, chat=False, train_forms=["label", *kinds]).form_pairs_per_kind
           for key, kinds in (("go", ["synonym"]), ("hpo", ["synonym", "lay"]), ("gene", ["alias", "prev"]))]
    assert [int(x) for x in m.groups()] == [got[0]["synonym"], got[1]["synonym"], got[1]["lay"],
                                            got[2]["alias"], got[2]["prev"]]


def test_readme_names_no_gene_whose_asked_alias_is_its_protein_name() -> None:
    """The README once said two genes' asked aliases were their own protein names; since the build keeps a
    gene's form apart from every label string, none is, and the README says no such thing."""
    same = [r["id"] for split in ("train", "val") for r in store.load_records("gene", split)
            if "alias" in (r.get("mentions") or {}) and r.get("protein_name")
            and mentions.fold(r["mentions"]["alias"]) == mentions.fold(r["protein_name"])]
    assert same == []
    assert "asked aliases are their own protein names" not in _text(REPO / "README.md")
