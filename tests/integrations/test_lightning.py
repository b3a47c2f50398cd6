"""The Lightning callback (skipped when Lightning is not installed)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ml


def test_lightning_callback_imports_with_lightning() -> None:
    pytest.importorskip("lightning", reason="lightning is not installed")
    from peft_notify.integrations.lightning import NotifyCallback

    callback = NotifyCallback("x")
    assert callback.reporter.name == "x"
