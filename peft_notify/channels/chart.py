"""A loss-curve PNG drawn with the standard library only (no Qt, no matplotlib).

The training side has no Qt, so the chart attached to completion and error messages is
drawn here on both sides: a white canvas, light axes, the loss as a dark polyline. Call
:func:`loss_png` with (step, loss) points; it returns ``None`` when fewer than two points
are finite.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Final

__all__ = ["loss_png"]

_BG: Final = (255, 255, 255)
_AXIS: Final = (170, 170, 170)
_LINE: Final = (31, 119, 180)
_MARGIN: Final = 12


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _encode(width: int, height: int, rows: list[bytearray]) -> bytes:
    raw = b"".join(b"\x00" + bytes(row) for row in rows)  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = _chunk(b"IDAT", zlib.compress(raw, 6))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + idat + _chunk(b"IEND", b"")


def loss_png(points: Sequence[tuple[float, float]], width: int = 480, height: int = 200) -> bytes | None:
    """PNG bytes of the loss curve through ``points`` (step, loss), or ``None`` if too few points."""
    pts = [(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)]
    if len(pts) < 2:
        return None
    rows = [bytearray(_BG * width) for _ in range(height)]

    def plot(px: int, py: int, colour: tuple[int, int, int]) -> None:
        if 0 <= px < width and 0 <= py < height:
            rows[py][px * 3 : px * 3 + 3] = bytes(colour)

    left, right, top, bottom = _MARGIN, width - _MARGIN, _MARGIN, height - _MARGIN
    for x in range(left, right + 1):
        plot(x, bottom, _AXIS)
    for y in range(top, bottom + 1):
        plot(left, y, _AXIS)
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    xspan = (x1 - x0) or 1.0
    yspan = (y1 - y0) or 1.0

    def scale(x: float, y: float) -> tuple[int, int]:
        return (
            left + 1 + round((x - x0) / xspan * (right - left - 2)),
            bottom - 1 - round((y - y0) / yspan * (bottom - top - 2)),
        )

    def pen(px: int, py: int) -> None:  # two pixels thick
        plot(px, py, _LINE)
        plot(px, py + 1, _LINE)

    prev = scale(*pts[0])
    for point in pts[1:]:
        cur = scale(*point)
        _line(prev, cur, pen)
        prev = cur
    return _encode(width, height, rows)


def _line(a: tuple[int, int], b: tuple[int, int], put: Callable[[int, int], object]) -> None:
    """Bresenham from ``a`` to ``b``, calling ``put(x, y)`` for every pixel."""
    (x, y), (x2, y2) = a, b
    dx, dy = abs(x2 - x), -abs(y2 - y)
    sx, sy = (1 if x < x2 else -1), (1 if y < y2 else -1)
    err = dx + dy
    while True:
        put(x, y)
        if x == x2 and y == y2:
            return
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x += sx
        if e2 <= dx:
            err += dx
            y += sy
