"""What can be checked here of the Windows and macOS packaging, and the build helpers.

The Inno Setup installer and the .app/.dmg are built on Windows and macOS themselves (see
packaging/README.md); here we check that they name the same app id, executables, autostart
entry and version as the code, that the plists parse, and that every file the build scripts
reference exists.
"""

from __future__ import annotations

import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from peft_notify import __version__
from peft_notify.appinfo import APP_ID, APP_NAME, CLI_NAME
from peft_notify.desktop.autostart import RUN_VALUE, default_command

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
sys.path.insert(0, str(PACKAGING))

from linux.metainfo import metainfo_xml  # noqa: E402
from macos.info_plist import info_plist  # noqa: E402
from prune import DROPPED_PLUGINS, drop_dangling_links, elf_needed, from_system, prune  # noqa: E402
from pypi_readme import pypi_markdown  # noqa: E402


def iss_defines() -> dict[str, str]:
    text = (PACKAGING / "windows" / "peft-notify.iss").read_text(encoding="utf-8")
    return dict(re.findall(r'^#define (\w+) "([^"]*)"$', text, flags=re.M))


def test_inno_setup_script_uses_the_app_id_as_aumid_on_every_shortcut() -> None:
    text = (PACKAGING / "windows" / "peft-notify.iss").read_text(encoding="utf-8")
    defines = iss_defines()
    assert defines["AppId"] == APP_ID
    assert defines["AppName"] == APP_NAME
    icons = text.split("[Icons]", 1)[1].split("\n[", 1)[0].strip().splitlines()
    assert icons
    for line in icons:
        assert 'AppUserModelID: "{#AppId}"' in line
        assert "Filename: \"{app}\\{#GuiExe}\"" in line
    assert "AppId={#AppId}" in text  # the uninstall entry is keyed by it too


def test_inno_setup_start_at_login_matches_the_apps_own_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    defines = iss_defines()
    text = (PACKAGING / "windows" / "peft-notify.iss").read_text(encoding="utf-8")
    assert defines["RunValue"] == RUN_VALUE
    # The GUI executable the shortcut starts is the spec's second (console=False) EXE.
    assert defines["GuiExe"] == f"{CLI_NAME}-gui.exe"
    assert 'name=f"{CLI_NAME}-gui", console=False' in (PACKAGING / "peft-notify.spec").read_text()
    # The frozen app writes [its own exe, "app", "--minimized"]: the installer writes the same.
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert default_command()[1:] == ["app", "--minimized"]
    assert 'ValueData: """{app}\\{#GuiExe}"" app --minimized"; Tasks: startatlogin' in text
    assert "Software\\Microsoft\\Windows\\CurrentVersion\\Run" in text


def test_info_plist_is_the_app_id_and_version_and_parses() -> None:
    keys = info_plist()
    parsed: dict[str, Any] = plistlib.loads(plistlib.dumps(keys))
    assert parsed["CFBundleIdentifier"] == APP_ID
    assert parsed["CFBundleShortVersionString"] == parsed["CFBundleVersion"] == __version__
    assert parsed["CFBundleExecutable"] == CLI_NAME
    assert parsed["LSUIElement"] is False  # a Dock icon: it is a window app
    assert parsed["NSUserNotificationAlertStyle"] in ("alert", "banner")
    spec = (PACKAGING / "peft-notify.spec").read_text()
    assert "bundle_identifier=APP_ID" in spec
    assert "info_plist=info_plist()" in spec
    entitlements = plistlib.loads((PACKAGING / "macos" / "entitlements.plist").read_bytes())
    assert entitlements == {"com.apple.security.cs.allow-unsigned-executable-memory": True}


def test_dmg_settings_put_the_app_next_to_an_applications_link() -> None:
    scope: dict[str, Any] = {"defines": {"app": "/tmp/out/PEFT Notify.app"}}
    exec(compile((PACKAGING / "macos" / "dmg_settings.py").read_text(), "dmg_settings.py", "exec"), scope)
    assert scope["files"] == ["/tmp/out/PEFT Notify.app"]
    assert scope["symlinks"] == {"Applications": "/Applications"}
    assert set(scope["icon_locations"]) == {f"{APP_NAME}.app", "Applications"}


def _referenced_paths(source: Path) -> list[Path]:
    """``ROOT / "a" / f"{APP_ID}.b"`` and ``PACKAGING / ...`` chains of literals in ``source``."""
    names = {"APP_ID": APP_ID, "APP_NAME": APP_NAME, "CLI_NAME": CLI_NAME}
    found = []
    for base, chain in re.findall(r'\b(ROOT|PACKAGING)((?:\s*/\s*f?"[^"]+")+)', source.read_text()):
        parts = [p.format(**names) for p in re.findall(r'f?"([^"]+)"', chain)]
        if parts[0] == "dist":  # build output, not an input
            continue
        found.append((REPO if base == "ROOT" else PACKAGING).joinpath(*parts))
    return found


@pytest.mark.parametrize(
    "script", ["build.py", "peft-notify.spec", "icons.py", "pypi_readme.py"], ids=lambda s: s.replace(".", "_")
)
def test_every_path_a_build_script_references_exists(script: str) -> None:
    paths = _referenced_paths(PACKAGING / script)
    assert paths, f"no paths parsed from {script}"
    missing = [str(p) for p in paths if not p.exists()]
    assert not missing, missing


def test_wrapper_script_is_executable_and_runs_build_py() -> None:
    wrapper = PACKAGING / "build"
    assert wrapper.stat().st_mode & 0o111
    assert "packaging/build.py" in wrapper.read_text()
    result = subprocess.run(
        [sys.executable, str(PACKAGING / "build.py"), "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "{linux,windows,macos,onedir}" in result.stdout


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstreamcli (apt-get install appstream)")
@pytest.mark.parametrize("urls", [(None, None), ("https://example.org/p", "https://example.org/p/shot.png")])
def test_metainfo_validates_with_and_without_a_project_url(tmp_path: Path, urls: tuple[str | None, str | None]) -> None:
    path = tmp_path / f"{APP_ID}.metainfo.xml"
    path.write_text(metainfo_xml(*urls), encoding="utf-8")
    result = subprocess.run(
        ["appstreamcli", "validate", "--no-net", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = path.read_text()
    assert f'<release version="{__version__}"' in text
    assert ("<screenshots>" in text) is (urls[1] is not None)


def test_pypi_readme_links_are_absolute_for_a_github_repo_and_plain_without_one() -> None:
    readme = "See [the app](docs/app.md).\n\n![shot](docs/screenshot.png)\n\n[web](https://x.org) [top](#try-it)\n"
    linked = pypi_markdown(readme, "https://github.com/o/r")
    assert "[the app](https://github.com/o/r/blob/HEAD/docs/app.md)" in linked
    assert "![shot](https://raw.githubusercontent.com/o/r/HEAD/docs/screenshot.png)" in linked
    assert "[web](https://x.org) [top](#try-it)" in linked
    plain = pypi_markdown(readme, None)
    assert "the app (`docs/app.md` in the source distribution)" in plain
    assert "screenshot.png" not in plain  # no image rather than a guessed URL
    assert "](docs/" not in plain


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF")
def test_prune_drops_unused_plugins_and_the_libraries_only_they_needed(tmp_path: Path) -> None:
    assert "libc.so.6" in elf_needed("/bin/ls")
    assert elf_needed(str(PACKAGING / "build.py")) == []
    ls_libs = set(elf_needed("/bin/ls"))
    toc = [
        ("PySide6/Qt/plugins/platforms/libqxcb.so", "/bin/ls", "BINARY"),  # kept root: needs ls's libs
        ("PySide6/Qt/plugins/platformthemes/libqgtk3.so", "/bin/cat", "BINARY"),  # dropped by pattern
        *((name, f"/lib/x86_64-linux-gnu/{name}", "BINARY") for name in sorted(ls_libs)),
        ("libonly-gtk-needs-me.so.1", "/bin/cat", "BINARY"),  # nothing kept needs it
        ("libpython3.11.so.1.0", "/bin/true", "BINARY"),  # always kept (the bootloader loads it)
    ]
    kept = {dest for dest, _src, _kind in prune(toc, platform="linux")}
    assert "PySide6/Qt/plugins/platforms/libqxcb.so" in kept
    assert "PySide6/Qt/plugins/platformthemes/libqgtk3.so" not in kept
    assert "libonly-gtk-needs-me.so.1" not in kept
    assert "libpython3.11.so.1.0" in kept
    assert ls_libs <= kept
    assert any("gtk3" in pattern for pattern in DROPPED_PLUGINS)
    # The .deb leaves the distribution's own libraries to Depends; libpython and Qt's stay.
    toc.append(("PySide6/Qt/lib/libQt6Core.so.6", "/usr/lib/x86_64-linux-gnu/libQt6Core.so.6", "BINARY"))
    toc.append(("libbundled-elsewhere.so.1", "/opt/python/lib/libbundled-elsewhere.so.1", "BINARY"))
    debian = {dest for dest, _src, _kind in prune(toc, platform="linux", system_libraries=False)}
    assert not ls_libs & debian
    assert "libpython3.11.so.1.0" in debian
    assert "PySide6/Qt/plugins/platforms/libqxcb.so" in debian
    assert from_system("libssl.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.3")
    assert from_system("libz.so.1", "/lib64/libz.so.1")
    assert not from_system("PySide6/Qt/lib/libQt6Core.so.6", "/usr/lib/x86_64-linux-gnu/libQt6Core.so.6")
    assert not from_system("libpython3.11.so.1.0", "/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0")
    assert not from_system("libbundled-elsewhere.so.1", "/opt/python/lib/libbundled-elsewhere.so.1")


def test_links_to_pruned_libraries_are_dropped() -> None:
    binaries = [("PySide6/Qt/lib/libQt6Core.so.6", "/x/libQt6Core.so.6", "BINARY")]
    datas = [
        ("libQt6Core.so.6", "PySide6/Qt/lib/libQt6Core.so.6", "SYMLINK"),  # target kept
        ("libQt6EglFSDeviceIntegration.so.6", "PySide6/Qt/lib/libQt6EglFSDeviceIntegration.so.6", "SYMLINK"),
        ("PySide6/Qt/lib/link.so", "libQt6Core.so.6", "SYMLINK"),  # relative to its own folder
        ("peft_notify/resources/x.svg", "/x/x.svg", "DATA"),
    ]
    assert [d for d, _s, _k in drop_dangling_links(datas, binaries)] == [
        "libQt6Core.so.6", "PySide6/Qt/lib/link.so", "peft_notify/resources/x.svg"
    ]


def test_packages_workflow_builds_each_target_on_its_own_system() -> None:
    workflow = REPO / ".github" / "workflows" / "packages.yml"
    venv_bin = str(Path(sys.executable).parent)
    checker = shutil.which("check-jsonschema") or shutil.which("check-jsonschema", path=venv_bin)
    if checker is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]')")
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ruamel = pytest.importorskip("ruamel.yaml", reason="ruamel.yaml comes with check-jsonschema (dev extra)")
    job = ruamel.YAML(typ="safe", pure=True).load(workflow.read_text(encoding="utf-8"))["jobs"]["package"]
    targets = {entry["target"]: entry["os"] for entry in job["strategy"]["matrix"]["include"]}
    assert set(targets) == {"linux", "windows", "macos"}
    assert targets["windows"].startswith("windows") and targets["macos"].startswith("macos")
    runs = [str(step.get("run", "")) for step in job["steps"]]
    assert any("packaging/build.py ${{ matrix.target }}" in r for r in runs)
    assert any('".[desktop,packaging]"' in r for r in runs)
