"""A bar chart as a PNG, in pure Python (zlib + struct): no plotting library to install.

One panel per figure: its name, its ratio to the baseline and the target's
verdict, then one bar per contender scaled to the panel's largest value, the
value printed after the bar.  Text uses a 5x7 bitmap font (upper case only: lower case is drawn as upper case).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

from bench.model import OK, Row, ScenarioResult

Color = tuple[int, int, int]

WHITE: Color = (255, 255, 255)
BLACK: Color = (20, 20, 20)
GREY: Color = (120, 120, 120)
LIGHT: Color = (232, 232, 232)
PASS: Color = (30, 140, 60)
FAIL: Color = (200, 30, 30)
PALETTE: dict[str, Color] = {
    "supervisor": (31, 119, 180),
    "shell chain": (255, 127, 14),
    "shell loop": (148, 103, 189),
    "supervisord": (44, 160, 44),
    "uvicorn": (127, 127, 127),
    "gunicorn": (214, 39, 40),
    "gunicorn --preload": (255, 152, 150),
    "supervisor (standby)": (174, 199, 232),
}
FALLBACK: Sequence[Color] = ((140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207))

# 5x7 glyphs: seven rows, five bits each (bit 4 is the leftmost pixel).
FONT: dict[str, tuple[int, ...]] = {
    "A": (14, 17, 17, 31, 17, 17, 17), "B": (30, 17, 17, 30, 17, 17, 30), "C": (14, 17, 16, 16, 16, 17, 14),
    "D": (28, 18, 17, 17, 17, 18, 28), "E": (31, 16, 16, 30, 16, 16, 31), "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15), "H": (17, 17, 17, 31, 17, 17, 17), "I": (14, 4, 4, 4, 4, 4, 14),
    "J": (7, 2, 2, 2, 2, 18, 12), "K": (17, 18, 20, 24, 20, 18, 17), "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17), "N": (17, 17, 25, 21, 19, 17, 17), "O": (14, 17, 17, 17, 17, 17, 14),
    "P": (30, 17, 17, 30, 16, 16, 16), "Q": (14, 17, 17, 17, 21, 18, 13), "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30), "T": (31, 4, 4, 4, 4, 4, 4), "U": (17, 17, 17, 17, 17, 17, 14),
    "V": (17, 17, 17, 17, 17, 10, 4), "W": (17, 17, 17, 21, 21, 21, 10), "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 17, 10, 4, 4, 4), "Z": (31, 1, 2, 4, 8, 16, 31),
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14), "2": (14, 17, 1, 2, 4, 8, 31),
    "3": (31, 2, 4, 2, 1, 17, 14), "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8), "8": (14, 17, 17, 14, 17, 17, 14),
    "9": (14, 17, 17, 15, 1, 2, 12),
    " ": (0, 0, 0, 0, 0, 0, 0), ".": (0, 0, 0, 0, 0, 12, 12), ",": (0, 0, 0, 0, 12, 4, 8),
    ":": (0, 12, 12, 0, 12, 12, 0), ";": (0, 12, 12, 0, 12, 4, 8),
    "-": (0, 0, 0, 31, 0, 0, 0), "+": (0, 4, 4, 31, 4, 4, 0),
    "/": (0, 1, 2, 4, 8, 16, 0), "%": (24, 25, 2, 4, 8, 19, 3), "(": (2, 4, 8, 8, 8, 4, 2),
    ")": (8, 4, 2, 2, 2, 4, 8), "=": (0, 0, 31, 0, 31, 0, 0), "<": (2, 4, 8, 16, 8, 4, 2),
    ">": (8, 4, 2, 1, 2, 4, 8), "_": (0, 0, 0, 0, 0, 0, 31), "'": (4, 4, 8, 0, 0, 0, 0),
    "×": (0, 0, 17, 10, 4, 10, 17), "≤": (2, 4, 8, 4, 2, 0, 15), "≥": (8, 4, 2, 4, 8, 0, 30),
    "?": (14, 17, 1, 2, 4, 0, 4), "!": (4, 4, 4, 4, 4, 0, 4), "#": (10, 10, 31, 10, 31, 10, 10),
}


class Canvas:
    """An RGB image in memory with rectangles and bitmap text."""

    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def rect(self, x: int, y: int, w: int, h: int, color: Color) -> None:
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self.width, x + w), min(self.height, y + h)
        if x1 <= x0 or y1 <= y0:
            return
        line = bytes(color) * (x1 - x0)
        for row in range(y0, y1):
            start = (row * self.width + x0) * 3
            self.pixels[start:start + len(line)] = line

    def text(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = 2) -> int:
        """Draw ``text`` with its top-left corner at (x, y); return the x after it."""
        for char in text:
            glyph = FONT.get(char.upper(), FONT["?"])
            for row, bits in enumerate(glyph):
                for col in range(5):
                    if bits & (16 >> col):
                        self.rect(x + col * scale, y + row * scale, scale, scale, color)
            x += 6 * scale
        return x

    def crop(self, height: int) -> None:
        """Keep the top ``height`` rows (the layout reserved room for the worst case)."""
        self.height = max(1, min(self.height, height))
        del self.pixels[self.width * self.height * 3:]

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.pixels[r * self.width * 3:(r + 1) * self.width * 3])
                       for r in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
                + chunk(b"IEND", b""))


def _color(label: str, seen: dict[str, Color]) -> Color:
    if label in PALETTE:
        return PALETTE[label]
    if label not in seen:
        seen[label] = FALLBACK[len(seen) % len(FALLBACK)]
    return seen[label]


def _value_text(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s"
    if unit in ("lines/s", "req/s"):
        return f"{value:,.0f} {unit}"
    if unit == "count":
        return f"{value:g}"
    return f"{value:.2f} {unit}" if value < 100 else f"{value:.0f} {unit}"


def _header_tail(row: Row) -> list[tuple[str, Color]]:
    """What follows a panel's name: the ratio to its baseline, then the target's verdict."""
    tail = []
    if row.ratio is not None and row.baseline:
        tail.append((f"{row.ratio:.2f}× {row.baseline}", BLACK))
    if row.target:
        word, color = {True: ("PASS", PASS), False: ("FAIL", FAIL), None: ("N/A", GREY)}[row.passed]
        tail.append((f"{word} ({row.target})", color))
    return tail


WIDTH = 1200
LABEL_X = 24
BAR_X = 300
BAR_MAX = 640
CHAR_W = 12  # 6 columns at scale 2
BAR_H = 16
LINE = 22


def chart(results: list[ScenarioResult], title: str) -> bytes:
    """The whole report as one PNG."""
    panels = [(r, row) for r in results if r.status == OK for row in r.rows
              if any(v is not None for v in row.values.values())]
    height = 80 + sum(3 * LINE + LINE * len(row.values) + 14 for _, row in panels) + 20
    canvas = Canvas(WIDTH, max(height, 120))
    canvas.text(LABEL_X, 20, title, BLACK, scale=2)
    canvas.text(LABEL_X, 46, "bars: medians; each panel scaled to its largest value", GREY, scale=2)
    fallback: dict[str, Color] = {}
    y = 80
    for result, row in panels:
        x = canvas.text(LABEL_X, y, f"{result.title}: {row.figure}", BLACK, scale=2)
        for text, color in _header_tail(row):
            if x + 16 + CHAR_W * len(text) > WIDTH - LABEL_X:
                y += LINE
                x = LABEL_X - 16
            x = canvas.text(x + 16, y, text, color, scale=2)
        y += LINE
        largest = max((abs(v) for v in row.values.values() if v is not None), default=0.0) or 1.0
        for label, value in row.values.items():
            fits = (BAR_X - LABEL_X - 28) // CHAR_W
            canvas.text(LABEL_X + 16, y + 1, label if len(label) <= fits else label[:fits - 1] + ".", GREY, scale=2)
            if value is None:
                canvas.text(BAR_X, y + 1, "not available", GREY, scale=2)
            else:
                width = max(2, round(BAR_MAX * abs(value) / largest)) if value else 1
                canvas.rect(BAR_X, y, width, BAR_H, _color(label, fallback))
                canvas.text(BAR_X + width + 10, y + 1, _value_text(value, row.unit), BLACK, scale=2)
            y += LINE
        canvas.rect(LABEL_X, y + 4, WIDTH - 2 * LABEL_X, 1, LIGHT)
        y += 14
    canvas.crop(y + 20)
    return canvas.png()
