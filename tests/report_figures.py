"""The report's figures as matplotlib objects: tests read their bars, legends and titles instead of
PNG bytes."""

from __future__ import annotations

from typing import Any

import pytest

from termnorm_eval.report import render


def capture_figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every figure ``render`` makes from now on, in order (the PNG written is a stand-in)."""
    figs: list[Any] = []

    def keep(fig: Any, dpi: int = 150) -> bytes:
        figs.append(fig)
        return b"\x89PNG fake"

    monkeypatch.setattr(render, "figure_png", keep)
    return figs
