"""App tests: widgets run offscreen unless a real display is there; shared fakes for the controller."""

from __future__ import annotations

import os

import pytest

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.app.app_support import ClientFactory


@pytest.fixture
def client_factory() -> ClientFactory:
    return ClientFactory()
