"""Lexicalization results as a terminal table, CSV, JSON and a PNG figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from termnorm_eval.analysis.files import csv_text, figure_png, json_text, pyplot
from termnorm_eval.analysis.lexicalization import LexicalizationRow

CSV_COLUMNS = (
    "embedder", "terminology", "mapping", "title", "source", "target", "split", "n",
    "true_cos", "random_cos", "gap", "gap_ci95", "top1", "mrr", "mrr_chance",
)


def table(rows: Sequence[LexicalizationRow], title: str = "Lexicalization") -> Table:
    caption = "gap = true - random cosine; retrieval source -> target among the split's targets"
    if rows:
        typical = max(rows, key=lambda r: r.n)
        caption += f"; MRR by chance: {typical.mrr_chance:.3f} at n={typical.n}"
    t = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    multi = len({r.embedder for r in rows}) > 1
    if multi:
        t.add_column("embedder")
    t.add_column("mapping", no_wrap=True)
    t.add_column("split", no_wrap=True)
    for col in ("n", "true cos", "random cos", "gap (95% CI)", "top-1", "MRR"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        cells = [r.title, r.split, str(r.n), f"{r.true_cos:.3f}", f"{r.random_cos:.3f}",
                 f"{r.gap:+.3f} ± {r.gap_ci95:.3f}", f"{r.top1:.3f}", f"{r.mrr:.3f}"]
        t.add_row(*([r.embedder, *cells] if multi else cells))
    return t


def csv_out(rows: Sequence[LexicalizationRow]) -> str:
    return csv_text([_rounded(r.as_dict()) for r in rows], CSV_COLUMNS)


def json_out(rows: Sequence[LexicalizationRow], meta: dict[str, Any], notes: Sequence[str]) -> str:
    return json_text({**meta, "notes": list(notes), "rows": [r.as_dict() for r in rows]})


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in d.items()}


def figure(rows: Sequence[LexicalizationRow]) -> bytes:
    """Per embedder: a dumbbell of random-pair vs true-pair cosine per mapping and split (the gap
    is the bar's length), and the retrieval MRR beside it."""
    plt = pyplot()
    embedders = list(dict.fromkeys(r.embedder for r in rows))
    labels = list(dict.fromkeys(r.title for r in rows))
    splits = list(dict.fromkeys(r.split for r in rows))
    colors = plt.get_cmap("tab10")
    height = 1.2 + 0.45 * len(labels) * max(1, len(splits))
    fig, axes = plt.subplots(len(embedders), 2, figsize=(11, height * len(embedders)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2]})
    step = 0.8 / max(1, len(splits))
    for row_axes, emb in zip(axes, embedders, strict=True):
        sim_ax, ret_ax = row_axes
        for s_i, split in enumerate(splits):
            offset = -0.4 + step * (s_i + 0.5)
            sub = {r.title: r for r in rows if r.embedder == emb and r.split == split}
            ys = [y + offset for y, lab in enumerate(labels) if lab in sub]
            rs = [sub[lab] for lab in labels if lab in sub]
            c = colors(s_i)
            sim_ax.hlines(ys, [r.random_cos for r in rs], [r.true_cos for r in rs], color=c, lw=2, alpha=0.6)
            sim_ax.scatter([r.random_cos for r in rs], ys, facecolors="white", edgecolors=c, zorder=3,
                           label=f"{split}: random pairs")
            sim_ax.scatter([r.true_cos for r in rs], ys, color=c, zorder=3, label=f"{split}: true pairs")
            ret_ax.barh(ys, [r.mrr for r in rs], height=step * 0.9, color=c, alpha=0.8, label=f"{split} MRR")
            ret_ax.scatter([r.top1 for r in rs], ys, marker="|", s=120, color="black", zorder=3,
                           label="top-1" if s_i == 0 else None)
        for ax in row_axes:
            ax.set_yticks(range(len(labels)))
            ax.set_yticklabels(labels)
            ax.invert_yaxis()
            ax.grid(axis="x", alpha=0.3)
        ret_ax.set_yticklabels([])
        sim_ax.set_xlabel("mean cosine similarity")
        sim_ax.set_title(f"{emb}: true pair vs random pair (gap = lexicalization)", fontsize=10)
        ret_ax.set_xlabel("retrieval of the counterpart (MRR; | = top-1)")
        ret_ax.set_xlim(0, 1)
        ret_ax.set_title("source -> target retrieval within the split", fontsize=10)
        sim_ax.legend(fontsize=7, loc="lower right")
        ret_ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return figure_png(fig)
