"""`termnorm add-mentions`: a user's own mention<TAB>identifier table as tasks scored against a
terminology's release, one command."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer


def add_mentions_command(
    file: Annotated[Path, typer.Argument(
        help="The table: one mention<TAB>identifier per line, UTF-8 (a header line mention<TAB>identifier "
        "is skipped). Identifiers: the terminology's IDs; genes an HGNC ID or approved symbol.",
        show_default=False)],
    terminology: Annotated[str, typer.Option(
        "--terminology", help="What the identifiers are: hpo, go, gene, or the name of an added ontology "
        "(with --data-dir).", show_default=False)],
    name: Annotated[str, typer.Option(
        "--name", help="Short lower-case name of the table: tasks termnorm_<name>_mention2id_test "
        "(genes: _mention2symbol_test) and termnorm-study_<name>_..., group termnorm-<name>.",
        show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", help="Output folder (new or empty): records, counts, release index and task YAMLs. Pass "
        "it to lm_eval --include_path / termnorm eval --include-path.", show_default=False)],
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="The data folder holding the terminology and its release index: an "
        "add-ontology output for an added ontology; default the shipped data.", show_default=False)] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an earlier add-mentions output in --out (any other content is never "
        "replaced).")] = False,
) -> None:
    """Turn a table of mention<TAB>identifier rows (the words of your own corpus) into zero-shot
    tasks scored against the terminology's release: unknown, obsolete, ambiguous and duplicate rows
    are counted and listed, never scored."""
    from rich.text import Text

    from termnorm_eval.cli.ontology import _console
    from termnorm_eval.ontology.add import check_name
    from termnorm_eval.user_mentions.add import NO_POPULARITY, add_mentions
    from termnorm_eval.user_mentions.resolve import FORMS, NOTES, OUTCOMES

    check_name(name)  # before any reading: a bad name fails in no time
    err = _console(stderr=True)
    with err.status("starting") as status:
        r = add_mentions(file, terminology, name, out, data_dir=data_dir, force=force,
                         progress=lambda m: status.update(Text(m)))
    console = _console()
    console.print(f"mentions  {file}: {r.rows} rows"
                  + "".join(f"; {n} {NOTES[k]}" for k, n in r.notes.items()
                            if k in ("header", "blank_lines")))
    console.print(f"against   the {r.terminology} release index {r.index_file}")
    console.print("rows      (each counted once; left-out rows listed in "
                  f"{r.left_out_file.relative_to(r.out_dir)})")
    for key, n in r.outcomes.items():
        console.print(f"  {n:>7}  {OUTCOMES[key]}")
    notes = {k: n for k, n in r.notes.items() if k not in ("header", "blank_lines")}
    if notes:
        console.print("notes")
        for key, n in notes.items():
            console.print(f"  {n:>7}  {NOTES[key]}")
    console.print("forms     of the scored mentions: "
                  + ", ".join(f"{n} {FORMS[k]}" for k, n in r.forms.items()))
    where = ", ".join(f"{n} in the {r.terminology} {s} split" for s, n in r.in_splits.items())
    console.print(f"concepts  {r.concepts} distinct" + (f"; {where}" if where else ""))
    console.print(f"popularity {NO_POPULARITY}: no strata metrics (exact_match_low/mid/high) for these tasks")
    console.print("few-shot  none: every row is a test item, run zero-shot (--num_fewshot is refused)")
    console.print(f"wrote     {out}/")
    console.print(f"          manifest.json, DATA_CARD.md, {r.name}/test.jsonl ({r.outcomes['scored']}), "
                  f"{r.name}/left_out.tsv ({sum(r.outcomes.values()) - r.outcomes['scored']}), "
                  f"{r.name}/index.tsv.gz")
    console.print(f"          tasks {', '.join(r.tasks)}; study-protocol tasks {', '.join(r.study_tasks)}")
    console.print(f"          groups {', '.join(r.groups)}")
    console.print("next")
    console.print(f"  {r.lm_eval_command('MODEL', out)}")
    console.print(f"  termnorm eval --include-path {shlex.quote(str(out))} --tasks {','.join(r.tasks)}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(name="add-mentions")(add_mentions_command)
