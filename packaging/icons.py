"""Render the product icon (resources/icons/<APP_ID>.svg) to PNGs at the hicolor sizes.

``python packaging/icons.py OUT_DIR [SIZE...]`` writes ``OUT_DIR/<size>x<size>/apps/<APP_ID>.png``
(hicolor theme layout) using Qt's SVG renderer offscreen; no display needed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HICOLOR_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ROOT = Path(__file__).resolve().parents[1]


def render(svg: Path, out_dir: Path, sizes: tuple[int, ...] = HICOLOR_SIZES) -> list[Path]:
    """Write one PNG per size; returns their paths."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg}: not a valid SVG")
    written = []
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        target = out_dir / f"{size}x{size}" / "apps" / f"{svg.stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(target), "PNG"):
            raise OSError(f"cannot write {target}")
        written.append(target)
    return written


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from peft_notify.appinfo import APP_ID

    sizes = tuple(int(s) for s in sys.argv[2:]) or HICOLOR_SIZES
    for path in render(ROOT / "resources" / "icons" / f"{APP_ID}.svg", Path(sys.argv[1]), sizes):
        print(path)
