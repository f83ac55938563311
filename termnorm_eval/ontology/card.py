"""DATA_CARD.md for an add-ontology output, rendered from its manifest (so it cannot drift from it).

The built-in card's prose is about GO, HPO and HGNC; this one states what add-ontology did with
*this* file and leaves the licence to the user, who knows where the ontology came from.
"""

from __future__ import annotations

from typing import Any

from termnorm_eval.splits.datacard import mention_coverage

UNIFORM = "none (uniform sample)"  # the manifest's popularity when no annotation file was given


def render_card(manifest: dict[str, Any]) -> str:
    p = manifest["parameters"]
    (key, t), = manifest["terminologies"].items()
    spec = t["spec"]
    lines = [
        f"# {spec['label']} benchmark data card (termnorm add-ontology)",
        "",
        f"Train/val splits and lm-eval tasks `termnorm_{key}_{{term2id,id2term}}_{{train,val}}` "
        f"(group `termnorm-{key}`) for **{spec['description']}**, id prefix `{spec['id_prefix']}` "
        f"(local part `{spec['id_local']}`), made by `termnorm add-ontology` and rendered from "
        "`manifest.json`.",
        "",
        f"- Candidates: {t['candidates']}; train {t['counts']['train']}, val {t['counts']['val']}; "
        f"seed {p['seed']}.",
    ]
    if t["popularity"] == UNIFORM:
        lines.append("- Popularity: **none** -- no annotation file was given, so both splits are a uniform "
                     "random sample (one bin, every popularity 0). The popularity strata "
                     "(`exact_match_low/mid/high`) carry no information for these tasks.")
    else:
        zero = sum(1 for b in t["bins"] if b["popularity_max"] == 0)
        lines.append(f"- Popularity: {t['popularity']}. {p['bins']} bins of about equal size (ties never "
                     f"split) over the ranked candidates, {p['per_bin']} train + {p['per_bin']} val per "
                     f"bin; {zero} of {len(t['bins'])} bins hold only popularity 0; the top bin reaches "
                     f"{t['bins'][-1]['popularity_max']}.")
    if "mentions" in t:
        lines += ["", "## Mention coverage", "",
                  "Terms with a usable mention form (an exact synonym owned by this term alone, not its "
                  "label again after case and punctuation folding; `lay`: typed `layperson`), per split "
                  "and popularity stratum; one is chosen per term by a seeded hash (`mentions` in the "
                  "manifest).",
                  "", *mention_coverage(manifest)]
    lines += ["", "## What was left out or changed", ""]
    if t.get("problems"):
        lines += ["| count | what |", "|---:|---|"]
        meanings = t.get("problem_meanings", {})  # written beside the counts by add-ontology
        lines += [f"| {n} | {meanings.get(k, k)} |" for k, n in t["problems"].items()]
    else:
        lines.append("Nothing: every term was usable.")
    lines += [
        "",
        "Ambiguous names (the name or exact synonym of more than one live term) are excluded and "
        "shared synonyms dropped, so that no question has two right answers; no id and no name occurs "
        "in both splits (checked before writing).",
        "",
        "## Sources",
        "",
        "| file | role | data-version | origin | sha256 |",
        "|---|---|---|---|---|",
    ]
    for name, s in sorted(manifest["sources"].items()):
        origin = s.get("url") or s.get("path") or "local file"
        lines.append(f"| `{name}` | {s.get('role', '')} | {s.get('data_version') or 'n/a'} | {origin} | "
                     f"`{s['sha256']}` |")
    lines += ["", "Licence: that of the ontology and annotation files above; check and cite them before "
              "sharing this folder.", ""]
    return "\n".join(lines)
