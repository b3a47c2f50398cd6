"""Trim the PyInstaller TOC of binaries the app never loads (used by peft-notify.spec).

Qt plugins for platforms/features the app does not use are dropped by pattern; on Linux the
shared libraries PyInstaller pulled in only for them (GTK, cairo, pango for the GTK3 platform
theme...) then go too: a library is kept only when something kept needs it (ELF ``DT_NEEDED``,
read here without binutils). ICU's data library is replaced by a slim one (``icudata.py``).

For the .deb (``system_libraries=False``) the libraries PyInstaller copied from the
distribution's own library folders (``/usr/lib/x86_64-linux-gnu``: OpenSSL, glib, X11, xcb,
freetype, fontconfig, SQLite, krb5, libstdc++, ...) are not bundled at all: the package
``Depends`` on their Debian packages (``build.py``), so they get the distribution's security
updates and do not ship twice. What stays is what the distribution does not provide in the
needed version: Python, Qt/PySide6 and the ICU 73 Qt was built against, cryptography's Rust
module.
"""

from __future__ import annotations

import posixpath
import re
import struct
import sys
from collections.abc import Iterable, Sequence
from fnmatch import fnmatch
from pathlib import Path, PurePath

from icudata import slim_library

__all__ = ["DROPPED_PLUGINS", "drop_dangling_links", "elf_needed", "from_system", "prune"]

# Matched against destination paths inside the bundle (PySide6/Qt/plugins/... on Linux and
# macOS, PySide6/plugins/... on Windows).
DROPPED_PLUGINS: tuple[str, ...] = tuple(
    f"PySide6/*plugins/{pattern}"
    for pattern in (
        "platformthemes/*gtk3*",  # GTK3 theme: 20 MB of GTK/cairo/pango for native-looking file dialogs
        "platforms/*vnc*",
        "platforms/*linuxfb*",
        "platforms/*vkkhrdisplay*",
        "platforms/*eglfs*",
        "platforms/*minimalegl*",
        "egldeviceintegrations/*",
        "generic/*",  # evdev/tuio input for kiosk setups
        "tls/*",  # Qt's TLS (Python's ssl does the app's TLS)
        "networkinformation/*",
        "imageformats/*tiff*",
        "imageformats/*webp*",
        "imageformats/*jpeg*",
        "imageformats/*tga*",
        "imageformats/*wbmp*",
        "imageformats/*pdf*",
    )
)
_DT_NEEDED = 1


def elf_needed(path: str) -> list[str]:
    """The ``DT_NEEDED`` sonames of an ELF file (``[]`` for anything else)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    if data[:4] != b"\x7fELF":
        return []
    is64, little = data[4] == 2, data[5] == 1
    end = "<" if little else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x2E)
    sections = []
    for i in range(shnum):
        base = shoff + i * shentsize
        if is64:
            _name, sh_type, _flags, _addr, offset, size, link = struct.unpack_from(end + "IIQQQQI", data, base)
        else:
            _name, sh_type, _flags, _addr, offset, size, link = struct.unpack_from(end + "IIIIIII", data, base)
        sections.append((sh_type, offset, size, link))
    needed: list[str] = []
    for sh_type, offset, size, link in sections:
        if sh_type != 6:  # SHT_DYNAMIC
            continue
        strtab = sections[link][1]
        entry = struct.Struct(end + ("qQ" if is64 else "iI"))
        for pos in range(offset, offset + size, entry.size):
            tag, value = entry.unpack_from(data, pos)
            if tag == 0:
                break
            if tag == _DT_NEEDED:
                stop = data.index(b"\0", strtab + value)
                needed.append(data[strtab + value : stop].decode())
    return needed


def _slim_icu(entry: tuple[str, str, str], workdir: Path) -> tuple[str, str, str]:
    dest, src, kind = entry
    if not PurePath(dest).name.startswith("libicudata.so"):
        return entry
    slim = slim_library(Path(src), workdir)
    return (dest, str(slim), kind) if slim is not None else entry


def _is_library(dest: str) -> bool:
    # Dependencies PyInstaller collected (top level) and Qt's own libraries: kept only if needed.
    name = PurePath(dest).name
    top = len(PurePath(dest).parts) == 1 and name.startswith("lib") and not name.startswith("libpython")
    return top or PurePath(dest).as_posix().startswith("PySide6/Qt/lib/")


# The distribution's library folders (Debian multiarch, lib64, plain lib).
_SYSTEM_LIBRARY_DIR = re.compile(r"/(usr/)?lib(32|64)?(/[^/]+-linux-gnu[^/]*)?")


def from_system(dest: str, src: str) -> bool:
    """Whether a collected library is a top-level copy of one in the distribution's library folders."""
    name = PurePath(dest).name
    if len(PurePath(dest).parts) != 1 or not name.startswith("lib") or name.startswith("libpython"):
        return False
    return _SYSTEM_LIBRARY_DIR.fullmatch(str(PurePath(src).parent)) is not None


def prune(
    binaries: Iterable[tuple[str, str, str]],
    platform: str = sys.platform,
    workdir: Path | None = None,
    *,
    system_libraries: bool = True,
) -> list[tuple[str, str, str]]:
    """The TOC entries to keep: without dropped plugins and (Linux) libraries nothing kept needs.

    With ``workdir`` (Linux), ICU's data library is replaced by the slim one ``icudata`` builds there.
    ``system_libraries=False`` (Linux) leaves out the libraries copied from the distribution.
    """
    kept = [b for b in binaries if not any(fnmatch(PurePath(b[0]).as_posix(), p) for p in DROPPED_PLUGINS)]
    if not platform.startswith("linux"):
        return kept
    if workdir is not None:
        kept = [_slim_icu(entry, workdir) for entry in kept]
    roots = [b for b in kept if not _is_library(b[0])]
    libraries = {PurePath(b[0]).name: b for b in kept if _is_library(b[0])}
    wanted: set[str] = set()
    todo: list[Sequence[str]] = [elf_needed(src) for _dest, src, _kind in roots]
    while todo:
        for name in todo.pop():
            if name in libraries and name not in wanted:
                wanted.add(name)
                todo.append(elf_needed(libraries[name][1]))
    bundled = [libraries[name] for name in sorted(wanted)]
    if not system_libraries:
        bundled = [lib for lib in bundled if not from_system(lib[0], lib[1])]
    return roots + bundled


def drop_dangling_links(
    toc: Iterable[tuple[str, str, str]], *kept: Iterable[tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    """``toc`` without the ``SYMLINK`` entries (PyInstaller's top-level links to libraries in
    sub-folders) whose target is no longer collected: pruned plugins left dangling links."""
    entries = list(toc)
    present = {posixpath.normpath(PurePath(dest).as_posix()) for group in (entries, *kept) for dest, _src, kind in group
               if kind != "SYMLINK"}

    def target(dest: str, link: str) -> str:
        return posixpath.normpath(posixpath.join(posixpath.dirname(PurePath(dest).as_posix()), link))

    return [e for e in entries if e[2] != "SYMLINK" or target(e[0], e[1]) in present]
