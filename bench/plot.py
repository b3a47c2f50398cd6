"""Draw the scale picture for docs/performance.md: UI lag p99 and app RSS against the number of jobs.

``python -m bench.plot RESULTS.json OUT.png`` reads the ``scale`` sweep (and the ``cluster``
many-jobs point, when present) from a ``results.json`` and paints two log-x panels with Qt
(offscreen, no display needed; PySide6 is already a dependency of the app, so no plotting
library is added). Exit status 2 with one line when the results hold no sweep.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["draw", "series"]

W, H = 1000, 420
PANEL_W = W // 2


def series(data: dict[str, Any]) -> dict[str, list[tuple[int, float, float]]]:
    """``{"WebSocket": [(jobs, lag_p99_ms, rss_mib), ...], "NATS": [...]}`` from a results.json."""
    out: dict[str, list[tuple[int, float, float]]] = {}
    for res in data.get("results", []):
        raw = res.get("raw") or {}
        if res.get("name") == "scale" and raw.get("sweep"):
            out["WebSocket"] = [(int(p["jobs"]), float(p["lag_p99"]), float(p["rss"])) for p in raw["sweep"]]
        if res.get("name") == "cluster" and raw.get("many"):
            many = raw["many"]
            lag = many.get("running") or many.get("busy")  # [median, p99, max] while the jobs report
            if lag:
                out["NATS"] = [(int(many["jobs"]), float(lag[1]), float(many["rss"][1]))]
    return out


class _Scale:
    """Data → pixel coordinates of one panel: log10 x (jobs); linear or log10 y."""

    def __init__(self, *box: float, log_y: bool) -> None:
        self.left, self.top, self.width, self.height, self.x_hi, self.y_lo, self.y_hi = box
        self.log_y = log_y

    def x(self, jobs: float) -> float:
        return self.left + self.width * math.log10(max(jobs, 1)) / math.log10(self.x_hi)

    def y(self, value: float) -> float:
        if self.log_y:
            lo = math.log10(self.y_lo)
            frac = (math.log10(max(value, self.y_lo)) - lo) / (math.log10(self.y_hi) - lo)
        else:
            frac = (value - self.y_lo) / (self.y_hi - self.y_lo)
        return self.top + self.height * (1 - frac)


def draw(data: dict[str, Any], target: Path) -> None:
    """Paint the picture into ``target`` (PNG). Raises ``ValueError`` when there is no sweep."""
    lines = series(data)
    if "WebSocket" not in lines:
        raise ValueError("no scale sweep in these results (run: python -m bench --only scale)")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter, QPen

    app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    image = QImage(W, H, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    font = QFont()
    font.setPixelSize(13)
    painter.setFont(font)
    colours = {"WebSocket": QColor("#1d4ed8"), "NATS": QColor("#b45309")}
    jobs_max = max(j for pts in lines.values() for j, _, _ in pts)
    x_hi = max(1000, jobs_max)
    panels = (
        ("UI timer lag p99 [ms]", 1, 100.0, "target 100 ms"),
        ("app RSS [MiB]", 2, 250.0, "target 250 MiB"),
    )
    for index, (title, column, limit, limit_text) in enumerate(panels):
        left, top = index * PANEL_W + 70, 40
        width, height = PANEL_W - 100, H - 100
        values = [p[column] for pts in lines.values() for p in pts] + [limit]
        y_hi = max(values) * 1.15
        use_log = max(values) / max(min(values), 1e-3) > 50  # lag spans decades: log scale
        y_lo = max(min(values) / 2, 0.1) if use_log else 0.0

        scale = _Scale(left, top, width, height, x_hi, y_lo, y_hi, log_y=use_log)
        fx, fy = scale.x, scale.y

        painter.setPen(QPen(QColor("black"), 1))
        painter.drawRect(QRectF(left, top, width, height))
        painter.drawText(QRectF(left, 8, width, 24), Qt.AlignmentFlag.AlignCenter, title)
        decade = 1
        while decade <= x_hi:
            x = fx(decade)
            painter.drawLine(QPointF(x, top + height), QPointF(x, top + height + 5))
            painter.drawText(QRectF(x - 30, top + height + 6, 60, 18), Qt.AlignmentFlag.AlignCenter, f"{decade:,}")
            decade *= 10
        painter.drawText(QRectF(left, top + height + 24, width, 18), Qt.AlignmentFlag.AlignCenter, "jobs on one app")
        if use_log:  # decades inside the range
            ticks = [10.0**k for k in range(math.floor(math.log10(y_lo)), math.ceil(math.log10(y_hi)) + 1)]
            ticks = [t for t in ticks if y_lo <= t <= y_hi]
        else:
            ticks = [y_hi * k / 4 for k in range(5)]
        for tick in ticks:
            y = fy(tick)
            painter.drawLine(QPointF(left - 5, y), QPointF(left, y))
            painter.drawText(QRectF(0 + index * PANEL_W, y - 9, 62, 18), Qt.AlignmentFlag.AlignRight, f"{tick:.3g}")
        painter.setPen(QPen(QColor("#b91c1c"), 1, Qt.PenStyle.DashLine))
        painter.drawLine(QPointF(left, fy(limit)), QPointF(left + width, fy(limit)))
        # Right-aligned: the legend is at the top left, where a high limit line would put it too.
        label_y = fy(limit) - 18 if fy(limit) - top > 20 else fy(limit) + 2  # below the line near the top
        painter.drawText(QRectF(left, label_y, width - 6, 16), Qt.AlignmentFlag.AlignRight, limit_text)
        for row, (name, pts) in enumerate(sorted(lines.items(), key=lambda kv: kv[0] != "WebSocket")):
            painter.setPen(QPen(colours.get(name, QColor("black")), 2))
            painter.setBrush(colours.get(name, QColor("black")))
            ordered = sorted(pts)
            for a, b in itertools.pairwise(ordered):
                painter.drawLine(QPointF(fx(a[0]), fy(a[column])), QPointF(fx(b[0]), fy(b[column])))
            for point in ordered:
                painter.drawEllipse(QPointF(fx(point[0]), fy(point[column])), 4, 4)
            painter.drawText(QRectF(left + 8, top + 8 + 18 * row, width, 16), Qt.AlignmentFlag.AlignLeft, name)
        painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.end()
    target.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(target)):  # PNG by the suffix
        raise OSError(f"could not write {target}")
    del app


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.plot RESULTS.json OUT.png", file=sys.stderr)
        return 2
    try:
        draw(json.loads(Path(args[0]).read_text()), Path(args[1]))
    except (OSError, ValueError) as exc:
        print(f"bench.plot: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
