"""Show job-provided text as literal text in Qt widgets, tooltips and menus.

A job server controls job names, titles and messages. ``QLabel`` and ``QToolTip`` guess
"rich text" with ``Qt::mightBeRichText`` (any known tag before the first line break), so
``<a href=…>`` or ``<img src=…>`` in a job name would be rendered (issue 10 item 4). Call
:func:`plain_label` once on every label that shows such text, :func:`plain_tooltip` on every
tooltip built from it, :func:`menu_text` on every menu entry.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

__all__ = ["menu_text", "plain_label", "plain_tooltip", "tray_text"]


def plain_label(label: QLabel) -> QLabel:
    """Make ``label`` render its text literally (``Qt.PlainText``); returns it."""
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def plain_tooltip(text: str) -> str:
    """A tooltip that shows ``text`` literally: escaped inside an explicit ``<qt>`` document.

    Qt decides per tooltip whether it is rich text; making it always rich with every
    character escaped is the one way to make it always literal.
    """
    body = html.escape(text, quote=False).replace("\n", "<br>")
    return f"<qt><span style='white-space:pre-wrap'>{body}</span></qt>"


def tray_text(text: str) -> str:
    """Tray tooltip text: the host may render it as markup (StatusNotifierItem) or not (XEmbed
    draws a ``QToolTip``), so ``<`` and ``>`` become look-alikes that are markup nowhere."""
    return text.replace("<", "\u2039").replace(">", "\u203a")


def menu_text(text: str) -> str:
    """A ``QAction`` text: ``&`` would mark a mnemonic, so it is doubled."""
    return text.replace("&", "&&")
