"""Builds the Linux package once per session (``packaging/build linux``) for the packaging tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def built_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb built from this checkout (the onedir comes from the build cache when unchanged)."""
    if not sys.platform.startswith("linux") or shutil.which("dpkg-deb") is None:
        pytest.skip("the .deb is built on Debian/Ubuntu (dpkg-deb)")
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("PyInstaller is not installed: pip install -e '.[packaging]' (scripts/test does)")
    out = tmp_path_factory.mktemp("deb")
    started = time.monotonic()
    result = subprocess.run(
        [str(REPO / "packaging" / "build"), "linux", "--fast", "--out", str(out)],
        env={**os.environ, "PYTHON_FOR_BUILD": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    # Shown with -rA / in the CI log: the closing note reports the build time.
    print(f"packaging/build linux: {time.monotonic() - started:.1f} s\n{result.stderr[-1500:]}")
    debs = list(out.glob("peft-notify_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


@pytest.fixture(scope="session")
def unpacked(built_deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package unpacked into a temporary root (``dpkg-deb -x``), as dpkg would install it."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(built_deb), str(root)], check=True, timeout=300)
    return root
