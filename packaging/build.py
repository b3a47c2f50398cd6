"""Build the installable app: ``packaging/build {linux|windows|macos|onedir} [options]``.

- ``onedir``: the PyInstaller onedir (``peft-notify.spec``) only, copied to ``OUT/peft-notify``.
- ``linux``: ``OUT/peft-notify_<version>_<arch>.deb`` (dpkg-deb), checked with
  ``desktop-file-validate`` and ``appstreamcli validate --no-net`` (installed with apt when missing).
- ``windows``: ``OUT/peft-notify-<version>-setup.exe`` (Inno Setup 6, ``packaging/windows``). Windows only.
- ``macos``: ``OUT/PEFT Notify.app`` signed (ad hoc unless ``--sign IDENTITY``) and
  ``OUT/peft-notify_<version>_macos-<arch>.dmg`` (dmgbuild). macOS only.

The onedir is cached in ``$PEFT_NOTIFY_BUILD_CACHE`` (default ``~/.cache/peft-notify-build``),
keyed by a hash of every file under ``peft_notify/`` and ``packaging/``, pyproject.toml, the
Python version and the installed distributions: the same inputs never build twice, and any
change rebuilds. ``--no-cache`` always rebuilds.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(PACKAGING))

from linux.metainfo import metainfo_xml  # noqa: E402
from prune import elf_needed  # noqa: E402

from peft_notify.appinfo import APP_ID, APP_NAME, APP_SUMMARY, CLI_NAME, VERSION  # noqa: E402

SPEC = PACKAGING / "peft-notify.spec"
KEEP_CACHED = 2  # newest onedirs kept; older ones go once they are STALE_AFTER_S old
STALE_AFTER_S = 3600


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def run(*command: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], check=True, text=True, **kwargs)  # type: ignore[call-overload]


def cache_root() -> Path:
    configured = os.environ.get("PEFT_NOTIFY_BUILD_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "peft-notify-build"


def _inputs() -> Iterator[Path]:
    for base in (ROOT / "peft_notify", PACKAGING):
        for dirpath, dirnames, filenames in os.walk(base, followlinks=True):  # resources/ is a symlink
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                if not name.endswith((".pyc", ".pyo")):
                    yield Path(dirpath) / name
    yield ROOT / "pyproject.toml"


def build_key() -> str:
    """Hash of everything the onedir is made from."""
    digest = hashlib.sha256()
    digest.update(f"{sys.version}|{sys.platform}|{platform.machine()}".encode())
    dists = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
    digest.update("\n".join(dists).encode())
    for path in _inputs():
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def onedir(no_cache: bool = False) -> Path:
    """The PyInstaller dist folder (``peft-notify/``, and ``PEFT Notify.app`` on macOS), cached."""
    root = cache_root()
    cached = root / f"onedir-{sys.platform}-{build_key()}"
    if not no_cache and (cached / ".complete").is_file():
        log(f"onedir: reusing {cached} (same sources and build environment)")
        os.utime(cached)  # recently used: not pruned
        return cached
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pyinstaller-work-", dir=root))
    fresh = Path(tempfile.mkdtemp(prefix="onedir-new-", dir=root))
    started = time.monotonic()
    try:
        log("onedir: running PyInstaller (about half a minute on 2 cores)")
        run(sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
            "--distpath", fresh, "--workpath", work, SPEC)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (fresh / ".complete").write_text(f"built in {time.monotonic() - started:.1f} s\n")
    # Builds of the same key may run at once (several test runs on one machine): the first
    # finished one wins and is never replaced under a reader's feet.
    if not (cached / ".complete").is_file():
        shutil.rmtree(cached, ignore_errors=True)  # a leftover of an interrupted build
        try:
            fresh.rename(cached)
        except OSError:
            if not (cached / ".complete").is_file():
                raise
    shutil.rmtree(fresh, ignore_errors=True)
    log(f"onedir: built in {time.monotonic() - started:.1f} s -> {cached}")
    old = sorted(root.glob(f"onedir-{sys.platform}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in old[KEEP_CACHED:]:
        if time.time() - stale.stat().st_mtime > STALE_AFTER_S:  # not one another run may still read
            shutil.rmtree(stale, ignore_errors=True)
    return cached


def tree_size(path: Path) -> int:
    """Bytes in regular files under ``path`` (symlinks not followed)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# ---------------------------------------------------------------- Linux


def _as_root(*command: str) -> list[str]:
    if os.geteuid() == 0:
        return list(command)
    if shutil.which("sudo"):
        return ["sudo", "-n", *command]
    raise SystemExit(f"need root to run: {' '.join(command)}")


def ensure_linux_tools() -> None:
    """desktop-file-validate (desktop-file-utils), appstreamcli (appstream), dpkg-deb: apt-get them if missing."""
    wanted = {"desktop-file-validate": "desktop-file-utils", "appstreamcli": "appstream", "dpkg-deb": "dpkg"}
    missing = sorted({pkg for tool, pkg in wanted.items() if shutil.which(tool) is None})
    if not missing:
        return
    log(f"installing {', '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = _as_root("apt-get", "install", "-y", "-qq", *missing)
    if subprocess.run(install, env=env, check=False).returncode != 0:
        run(*_as_root("apt-get", "update", "-qq"), env=env)
        run(*install, env=env)


def project_urls() -> tuple[str | None, str | None]:
    """(homepage, screenshot URL) from pyproject's ``[project.urls]``; (None, None) when none is set."""
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("urls", {})
    home = urls.get("Homepage") or urls.get("Repository") or urls.get("Source")
    repo = urls.get("Repository") or urls.get("Source") or home
    shot = None
    if repo and repo.startswith("https://github.com/"):
        owner_repo = repo.removeprefix("https://github.com/").strip("/")
        shot = f"https://raw.githubusercontent.com/{owner_repo}/HEAD/docs/screenshot.png"
    return home, shot


def maintainer() -> str:
    """``Name <email>`` from Debian's ``DEBFULLNAME``/``DEBEMAIL``; the project has no public address yet."""
    name = os.environ.get("DEBFULLNAME") or "peft_notify developers"
    email = os.environ.get("DEBEMAIL") or "maintainers@peft-notify.invalid"  # .invalid: reserved, never real
    return f"{name} <{email}>"


def shlib_depends(bundle: Path) -> list[str]:
    """Debian packages providing the libraries the bundle needs but does not carry (dpkg-shlibdeps, lite)."""
    elves = [p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()]
    provided = {p.name for p in bundle.rglob("*")}
    needed = {name for path in elves for name in elf_needed(str(path))} - provided
    where: dict[str, str] = {}
    machine = "x86-64" if platform.machine() == "x86_64" else platform.machine()
    for line in run("ldconfig", "-p", capture_output=True).stdout.splitlines()[1:]:
        name, _, rest = line.strip().partition(" (")
        if "=>" in rest and (machine in rest or platform.machine() not in ("x86_64",)):
            where.setdefault(name, rest.split("=>")[-1].strip())
    packages: dict[str, str | None] = {}  # package -> its newest minimum version
    for name in sorted(needed):
        path = where.get(name)
        if path is None:
            log(f"deb: warning: {name} is needed but not installed here; not declared")
            continue
        for candidate in (path, os.path.realpath(path)):
            found = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True, check=False)
            if found.returncode == 0:
                package = found.stdout.split(":")[0].strip()
                minimum = shlibs_minimum(package, name)
                packages[package] = _newer(packages.get(package), minimum)
                break
        else:
            log(f"deb: warning: no package owns {path}; not declared")
    return [f"{package} (>= {version})" if version else package for package, version in sorted(packages.items())]


def shlibs_minimum(package: str, soname: str) -> str | None:
    """The minimum version the package's ``shlibs`` file gives for ``soname`` (what dpkg-shlibdeps
    falls back to): the bundle was linked against this system's libraries, so older ones may lack
    symbols it uses. ``None`` when the file says no version or is missing."""
    library, _, version = soname.partition(".so.")
    if not version:
        return None
    for shlibs in sorted(Path("/var/lib/dpkg/info").glob(f"{package}*.shlibs")):
        if shlibs.name not in (f"{package}.shlibs", f"{package}:{dpkg_arch()}.shlibs"):
            continue
        for line in shlibs.read_text(errors="replace").splitlines():
            fields = line.split(None, 2)
            if len(fields) == 3 and fields[:2] == [library, version]:
                dependency = fields[2].split(",")[0].split("|")[0].strip()
                if dependency.startswith(package + " (>= ") and dependency.endswith(")"):
                    return dependency[len(package) + 5 : -1].strip()
                return None
    return None


def _newer(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return b if subprocess.run(["dpkg", "--compare-versions", b, "gt", a], check=False).returncode == 0 else a


def dpkg_arch() -> str:
    return run("dpkg", "--print-architecture", capture_output=True).stdout.strip()


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: peft-notify

Files: *
Copyright: peft_notify developers
License: MIT
 The bundled Python, Qt (LGPL-3.0) and libraries keep their own licenses; see
 /usr/lib/peft-notify/_internal/*.dist-info and the PySide6 license.
"""


def build_deb(
    dist: Path, out: Path, project_url: str | None, screenshot_url: str | None, *, fast: bool = False
) -> Path:
    """Stage /usr/{lib,bin,share} from the onedir and pack it with dpkg-deb; returns the .deb."""
    ensure_linux_tools()
    arch = run("dpkg", "--print-architecture", capture_output=True).stdout.strip()
    bundle_src = dist / CLI_NAME
    with tempfile.TemporaryDirectory(prefix="peft-notify-deb-") as tmp:
        root = Path(tmp) / "root"
        lib = root / "usr" / "lib" / CLI_NAME
        shutil.copytree(bundle_src, lib, symlinks=True)
        (root / "usr" / "bin").mkdir(parents=True)
        os.symlink(f"../lib/{CLI_NAME}/{CLI_NAME}", root / "usr" / "bin" / CLI_NAME)
        share = root / "usr" / "share"
        desktop = share / "applications" / f"{APP_ID}.desktop"
        desktop.parent.mkdir(parents=True)
        shutil.copyfile(ROOT / "resources" / f"{APP_ID}.desktop", desktop)
        metainfo = share / "metainfo" / f"{APP_ID}.metainfo.xml"
        metainfo.parent.mkdir(parents=True)
        metainfo.write_text(metainfo_xml(project_url, screenshot_url), encoding="utf-8")
        hicolor = share / "icons" / "hicolor"
        run(sys.executable, PACKAGING / "icons.py", hicolor, capture_output=True)
        (hicolor / "scalable" / "apps").mkdir(parents=True)
        shutil.copyfile(ROOT / "resources" / "icons" / f"{APP_ID}.svg", hicolor / "scalable" / "apps" / f"{APP_ID}.svg")
        doc = share / "doc" / CLI_NAME
        doc.mkdir(parents=True)
        (doc / "copyright").write_text(COPYRIGHT, encoding="utf-8")
        for path in [root, *root.rglob("*")]:
            if path.is_symlink():
                continue
            path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
        log("deb: desktop-file-validate, appstreamcli validate --no-net")
        run("desktop-file-validate", desktop)
        run("appstreamcli", "validate", "--no-net", metainfo)
        depends = ", ".join(shlib_depends(lib))
        control = root / "DEBIAN" / "control"
        control.parent.mkdir()
        control.write_text(
            "\n".join(
                [
                    f"Package: {CLI_NAME}",
                    f"Version: {VERSION}",
                    f"Architecture: {arch}",
                    f"Maintainer: {maintainer()}",
                    f"Installed-Size: {tree_size(root / 'usr') // 1024}",
                    f"Depends: {depends}",
                    "Section: utils",
                    "Priority: optional",
                    *([f"Homepage: {project_url}"] if project_url else []),
                    f"Description: {APP_SUMMARY.lower()}",
                    f" {APP_NAME} tells you when a fine-tuning job passes a milestone, finishes, stalls or",
                    " dies, with the desktop's own notifications, taskbar progress and a tray icon.",
                    " Self-contained: Python and Qt are inside /usr/lib/peft-notify.",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        out.mkdir(parents=True, exist_ok=True)
        deb = out / f"{CLI_NAME}_{VERSION}_{arch}.deb"
        log(f"deb: dpkg-deb --build -> {deb}")
        # xz -6: 41 MB in ~70 s on 2 cores; --fast (xz -1): 46 MB in ~15 s. Both install everywhere.
        run("dpkg-deb", "--root-owner-group", "-Zxz", "-z1" if fast else "-z6", "--build", root, deb,
            capture_output=True)
        return deb


# ---------------------------------------------------------------- Windows, macOS


def find_iscc() -> str:
    for candidate in (
        shutil.which("iscc"),
        os.path.expandvars(r"%ProgramFiles(x86)%\Inno Setup 6\ISCC.exe"),
        os.path.expandvars(r"%ProgramFiles%\Inno Setup 6\ISCC.exe"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    raise SystemExit("Inno Setup 6 is not installed (winget install JRSoftware.InnoSetup)")


def build_windows(dist: Path, out: Path) -> Path:
    """Compile packaging/windows/peft-notify.iss against the onedir; returns the setup .exe."""
    out.mkdir(parents=True, exist_ok=True)
    run(find_iscc(), f"/DAppVersion={VERSION}", f"/DSourceDir={dist / CLI_NAME}", f"/DOutputDir={out}",
        PACKAGING / "windows" / "peft-notify.iss")
    return out / f"{CLI_NAME}-{VERSION}-setup.exe"


def build_macos(dist: Path, out: Path, identity: str) -> Path:
    """Sign the .app (ad hoc with ``-``) and put it in a .dmg; returns the .dmg."""
    out.mkdir(parents=True, exist_ok=True)
    app = out / f"{APP_NAME}.app"
    shutil.rmtree(app, ignore_errors=True)
    shutil.copytree(dist / f"{APP_NAME}.app", app, symlinks=True)
    sign = ["codesign", "--force", "--deep", "--sign", identity]
    if identity != "-":  # a Developer ID: hardened runtime and a timestamp (needed for notarization)
        entitlements = PACKAGING / "macos" / "entitlements.plist"
        sign += ["--options", "runtime", "--timestamp", "--entitlements", str(entitlements)]
    run(*sign, app)
    run("codesign", "--verify", "--deep", "--strict", "--verbose=2", app)
    dmg = out / f"{CLI_NAME}_{VERSION}_macos-{platform.machine()}.dmg"
    run(sys.executable, "-m", "dmgbuild", "-s", PACKAGING / "macos" / "dmg_settings.py",
        "-D", f"app={app}", APP_NAME, dmg)
    return dmg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="packaging/build", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=("linux", "windows", "macos", "onedir"))
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    parser.add_argument("--no-cache", action="store_true", help="rebuild the onedir even if cached")
    parser.add_argument("--fast", action="store_true", help="linux: quicker, lighter .deb compression (xz -1)")
    parser.add_argument("--sign", default="-", metavar="IDENTITY", help="macOS codesign identity (default: ad hoc)")
    parser.add_argument("--project-url", help="homepage for the metainfo (default: pyproject [project.urls])")
    parser.add_argument("--screenshot-url", help="absolute URL of docs/screenshot.png for the metainfo")
    args = parser.parse_args(argv)
    here = {"linux": "linux", "windows": "win32", "macos": "darwin", "onedir": sys.platform}[args.target]
    if not sys.platform.startswith(here):
        raise SystemExit(f"the {args.target} package is built on {args.target} itself (PyInstaller cannot cross-build)")
    started = time.monotonic()
    dist = onedir(args.no_cache)
    size = tree_size(dist / CLI_NAME)
    log(f"onedir: {size / 1e6:.1f} MB in {dist / CLI_NAME}")
    if args.target == "onedir":
        target = args.out / CLI_NAME
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(dist / CLI_NAME, target, symlinks=True)
        result = target
    elif args.target == "linux":
        home, shot = project_urls()
        result = build_deb(dist, args.out, args.project_url or home, args.screenshot_url or shot, fast=args.fast)
    elif args.target == "windows":
        result = build_windows(dist, args.out)
    else:
        result = build_macos(dist, args.out, args.sign)
    log(f"done in {time.monotonic() - started:.1f} s: {result}")
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
