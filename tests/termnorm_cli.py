"""Shared by the CLI tests: run `termnorm ARGV` in-process; check a one-line user error."""

from __future__ import annotations

import pytest

from termnorm_eval.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `termnorm ARGV`."""
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    """Exit status 2, one line on stderr starting `termnorm: error: `, holding each of ``expected``."""
    code, _, err = run(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("termnorm: error: ") and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]
