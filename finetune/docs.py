"""The options table of finetune/README.md, generated from the ``termnorm-finetune`` command (whose
setting options come from ``FinetuneConfig``'s fields), so the README cannot drift from ``--help``.

``python -m finetune.docs`` rewrites the table between the markers; ``--check`` only says whether
the committed one is current (exit 1 if not). tests/test_finetune_options.py checks it too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- options:start -->", "<!-- options:end -->"


def _cell(text: str) -> str:
    # `<key>` would be read as an HTML tag and `|` as a column break.
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _option_names(param: Any) -> str:
    names = ", ".join(f"`{o}`" for o in param.opts)
    return names + "".join(f" / `{o}`" for o in param.secondary_opts)


def options_table() -> str:
    """The Markdown table of every option of ``termnorm-finetune --help``, in its order."""
    import typer

    from finetune.cli import app, shown_default
    from finetune.config import CONFIG_KEYS, FIELDS, LIBRARY_LABELS, allowed

    rows = ["| option | config key | default | allowed | meaning | TRL / PEFT / Unsloth name |",
            "| --- | --- | --- | --- | --- | --- |"]
    for param in typer.main.get_command(app).params:
        name = param.name or ""
        if name in CONFIG_KEYS:
            meta = FIELDS[name].metadata
            default = "required" if "required" in meta else shown_default(name) or "-"
            key, values = f"`{name}`", allowed(name)
            library = ", ".join(f"{label} `{meta[lib]}`" for lib, label in LIBRARY_LABELS.items()
                                if lib in meta)
        else:  # an option of the command only (--config, --resume, --quiet)
            fixed = param.default
            default = "off" if fixed is False else "-" if fixed is None else str(fixed)
            key, values, library = "-", "", ""
        rows.append(f"| {_option_names(param)} | {key} | {_cell(str(default))} | {_cell(values)} | "
                    f"{_cell(getattr(param, 'help', None) or '')} | {library} |")
    return "\n".join(rows) + "\n"


def with_table(text: str, table: str) -> str:
    """``text`` with the part between the markers replaced by ``table``."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{README}: no {START} ... {END} section")
    return text[: start + len(START)] + "\n" + table + text[end:]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = README.read_text(encoding="utf-8")
    new = with_table(text, options_table())
    if args == ["--check"]:
        if new != text:
            print(f"{README}: the options table is out of date; run python -m finetune.docs", file=sys.stderr)
            return 1
        return 0
    if args:
        print("usage: python -m finetune.docs [--check]", file=sys.stderr)
        return 2
    if new != text:
        README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
