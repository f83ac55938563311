"""What fine-tuning did: base vs fine-tuned ``lm_eval`` results of the termnorm tasks.

``results`` reads results and sample files (one run may span several), ``compare`` computes
accuracies, gains with their intervals (``intervals``), item transitions, answer validity and the
popularity effect, ``render`` writes tables, Markdown, CSV and figures, and ``make`` ties them
together: ``make_report`` is what ``termnorm report`` (and ``termnorm study``) call.

``make_report``, ``build_report`` and ``report_files`` are imported on first use, so that code
needing only ``results`` does not load the renderers (rich) with this package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report", "make_report", "report_files"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from termnorm_eval.report import make

        return getattr(make, name)
    raise AttributeError(name)
