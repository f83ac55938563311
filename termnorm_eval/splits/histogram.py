"""The data card's picture of the popularity bins (``popularity_bins.png``), from the manifest.

One panel per ranked series (GO BP, CC and MF, HPO, genes), one bar per bin from its least to
its most popular member on a log scale, grey lines at 1, 10, 100, 1000 and 10000. The PNG is
written by hand (a 4-colour palette, deflate's *stored* blocks): no plotting library, and no
compressor whose output could differ between zlib builds, so a rebuild gives the same bytes.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterator
from typing import Any

FILE = "popularity_bins.png"
WHITE, GRID, BAR, INK = range(4)
PALETTE = bytes((255, 255, 255, 200, 200, 200, 40, 90, 170, 0, 0, 0))
PLOT_H, BAR_W, GAP, MARGIN, TITLE_H, LEFT = 120, 5, 1, 12, 18, 52
# 3x5 glyphs, one row of three bits per number (most significant bit = leftmost pixel)
GLYPHS = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), "G": (7, 4, 5, 5, 7), "O": (7, 5, 5, 5, 7),
    "B": (6, 5, 7, 5, 6), "P": (7, 5, 7, 4, 4), "C": (7, 4, 4, 4, 7), "M": (5, 7, 7, 5, 5),
    "F": (7, 4, 6, 4, 4), "H": (5, 5, 7, 5, 5), "E": (7, 4, 6, 4, 7), "N": (6, 5, 5, 5, 5),
}


def series(manifest: dict[str, Any]) -> Iterator[tuple[str, list[tuple[int, int, bool]]]]:
    """(title, [(popularity min, max, unannotated bin?) per bin]) for every ranked series."""
    for key, t in manifest["terminologies"].items():
        bins = t.get("bins") or []
        strata = sorted(bins[0].get("by_stratum", {})) if bins else []
        for s in strata or [""]:
            rows = []
            for b in bins:
                r = b["by_stratum"][s] if s else b
                rows.append((r["popularity_min"], r["popularity_max"], b.get("label") is not None))
            yield f"{key} {s}".strip().upper(), rows


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.px = bytearray(width * height)

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour: int) -> None:
        for y in range(max(0, y0), min(self.h, y1)):
            self.px[y * self.w + max(0, x0): y * self.w + min(self.w, x1)] = bytes((colour,)) * max(
                0, min(self.w, x1) - max(0, x0))

    def text(self, x: int, y: int, text: str, scale: int = 2) -> None:
        for ch in text:
            for row, bits in enumerate(GLYPHS.get(ch, (0,) * 5)):
                for col in range(3):
                    if bits >> (2 - col) & 1:
                        self.rect(x + col * scale, y + row * scale, x + (col + 1) * scale,
                                  y + (row + 1) * scale, INK)
            x += 4 * scale


def render_histogram(manifest: dict[str, Any]) -> bytes:
    panels = list(series(manifest))
    top = max((hi for _, rows in panels for _, hi, _ in rows), default=1)
    decades = max(1, math.ceil(math.log10(max(top, 1)) - 1e-9))
    widths = [len(rows) * (BAR_W + GAP) + MARGIN for _, rows in panels]
    c = _Canvas(LEFT + sum(widths), TITLE_H + PLOT_H + 8)
    base = TITLE_H + PLOT_H

    def y(v: int) -> int:  # log scale from 1 (the baseline) to 10**decades (the top)
        return base - round(PLOT_H * math.log10(max(v, 1)) / decades)

    for d in range(decades + 1):
        c.rect(LEFT - 4, y(10**d), c.w - MARGIN // 2, y(10**d) + 1, GRID)
        label = str(10**d)
        c.text(LEFT - 6 - 8 * len(label) + 2, y(10**d) - 5, label)
    x = LEFT
    for (title, rows), width in zip(panels, widths, strict=True):
        c.text(x, 2, title)
        for i, (lo, hi, unannotated) in enumerate(rows):
            bx = x + i * (BAR_W + GAP)
            if unannotated:  # popularity 0: a grey stub under the baseline
                c.rect(bx, base + 1, bx + BAR_W, base + 5, GRID)
                continue
            top_y = min(y(hi), y(lo) - 2)  # a bin of one value still shows as a bar
            c.rect(bx, top_y, bx + BAR_W, y(lo) + 1, BAR)
        c.rect(x - 1, TITLE_H, x, base + 1, INK)
        x += width
    c.rect(LEFT - 1, base, c.w - MARGIN // 2, base + 1, INK)
    return _png(c)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _stored_zlib(data: bytes) -> bytes:
    """A zlib stream of deflate stored blocks: the same bytes from every zlib build."""
    out = bytearray(b"\x78\x01")
    for at in range(0, max(len(data), 1), 0xFFFF):
        block = data[at:at + 0xFFFF]
        last = at + 0xFFFF >= len(data)
        out += bytes((1 if last else 0,)) + struct.pack("<HH", len(block), 0xFFFF ^ len(block)) + block
    return bytes(out + struct.pack(">I", zlib.adler32(data)))


def _png(c: _Canvas) -> bytes:
    raw = bytearray()
    for row in range(c.h):
        line = c.px[row * c.w:(row + 1) * c.w] + bytes(-c.w % 4)
        raw.append(0)  # filter: none
        raw += bytes(line[i] << 6 | line[i + 1] << 4 | line[i + 2] << 2 | line[i + 3]
                     for i in range(0, len(line), 4))
    header = struct.pack(">IIBBBBB", c.w, c.h, 2, 3, 0, 0, 0)  # 2 bits per pixel, palette
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"PLTE", PALETTE)
            + _chunk(b"IDAT", _stored_zlib(bytes(raw))) + _chunk(b"IEND", b""))
