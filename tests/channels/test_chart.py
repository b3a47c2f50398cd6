from __future__ import annotations

import struct
import zlib

from peft_notify.channels.chart import loss_png


def decode(png: bytes) -> tuple[int, int, list[bytes]]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        tag, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + data) & 0xFFFFFFFF
        chunks[tag] = data
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = 1 + 3 * width
    rows = [raw[i * stride + 1 : (i + 1) * stride] for i in range(height)]
    return width, height, rows


def test_a_valid_png_with_the_curve_drawn() -> None:
    png = loss_png([(step, 3.0 / (1 + step / 100)) for step in range(0, 1000, 10)], 300, 120)
    assert png is not None
    width, height, rows = decode(png)
    assert (width, height) == (300, 120)
    blue = bytes((31, 119, 180))
    coloured = [y for y, row in enumerate(rows) if blue in row]
    assert coloured
    # A falling loss: the curve starts high (small y) at the left and ends low at the right.
    first_col = [y for y, row in enumerate(rows) if row[13 * 3 : 14 * 3] == blue]
    last_col = [y for y, row in enumerate(rows) if row[(width - 14) * 3 : (width - 13) * 3] == blue]
    assert min(first_col) < min(last_col)


def test_too_few_or_non_finite_points_give_no_chart() -> None:
    assert loss_png([]) is None
    assert loss_png([(1, 2.0)]) is None
    assert loss_png([(1, float("nan")), (2, float("inf"))]) is None
    assert loss_png([(1, 2.0), (1, 2.0)]) is not None  # flat / single step: still drawable
