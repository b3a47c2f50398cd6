"""A smaller ICU data library for the Linux bundle (used by peft-notify.spec through prune.py).

PySide6's QtCore links ICU 73 (``libicui18n``, ``libicuuc``, ``libicudata``: ``DT_NEEDED``, so
the libraries cannot go), and ``libicudata.so.73`` is 32 MB: one ICU "common data" package
(``icudt73l.dat``, format ``CmnD``) exported as the symbol ``icudt73_dat``. QtCore calls only
four ICU services (``nm -D --undefined-only libQt6Core.so.6 | grep _73``): collation
(``ucol_*``, QCollator), time-zone display names (``ucal_getTimeZoneDisplayName``, QTimeZone),
locale case mapping (``u_strToUpper/Lower``) and converters (``ucnv_*``, QStringConverter for
encodings other than UTF-8/16/32 and Latin-1). Everything those need stays: the core Unicode
data, every locale's collation, time-zone names and locale bundle, the converter alias table and
the single-byte converters (ISO-8859-*, windows-125*, KOI8, ...). What goes is data for ICU
services Qt never calls: break iteration (``brkitr``, with the 2 MB CJK dictionary), units,
currencies, language and region display names, transliteration, number spell-out, and the
multi-byte legacy code pages (Shift_JIS, GBK, Big5, EUC-*: about 4.6 MB; Python, not Qt, decodes
everything this app reads). ``tests/packaging/test_icudata.py`` compares QtCore's answers in the
frozen app with the full-data PySide6 of the build environment.

The new library is assembled with the C compiler (``cc``: ``.incbin`` of the new package, the
same soname and symbol); without one the original library is kept and the build says so.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterable
from fnmatch import fnmatch
from pathlib import Path

__all__ = [
    "DROPPED_ITEMS", "KEEP_CONVERTERS_UNDER", "data_symbol", "dropped", "read_package", "slim_library", "write_package",
]

# Item names inside the package, without the ``icudt73l/`` prefix.
DROPPED_ITEMS: tuple[str, ...] = (
    "brkitr/*",  # ubrk_*: Qt has its own text boundaries
    "unit/*",  # measure units (MeasureFormat)
    "curr/*",  # currency names and symbols (NumberFormat)
    "lang/*",  # language display names (LocaleDisplayNames)
    "region/*",  # region display names
    "translit/*",  # transliterators
    "rbnf/*",  # rule-based number spell-out
)
KEEP_CONVERTERS_UNDER = 20_000  # bytes: single-byte code pages are 1-4 KB, multi-byte ones 50 KB-550 KB

_ALIGN = 16
_ELF_SYMBOL = re.compile(r"^icudt(\d+)_dat$")


def read_package(blob: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The header and the ``(name, data)`` items of an ICU common data package (little-endian)."""
    header_size, magic1, magic2 = struct.unpack_from("<HBB", blob, 0)
    if (magic1, magic2) != (0xDA, 0x27) or blob[12:16] != b"CmnD":
        raise ValueError("not an ICU common data package")
    if blob[4 + 4] != 0:  # UDataInfo.isBigEndian
        raise ValueError("big-endian ICU data is not handled")
    (count,) = struct.unpack_from("<I", blob, header_size)
    offsets = [struct.unpack_from("<II", blob, header_size + 4 + 8 * i) for i in range(count)]
    items: list[tuple[str, bytes]] = []
    for i, (name_offset, data_offset) in enumerate(offsets):
        start = header_size + name_offset
        name = blob[start : blob.index(b"\0", start)].decode("ascii")
        end = header_size + offsets[i + 1][1] if i + 1 < count else len(blob)
        items.append((name, blob[header_size + data_offset : end]))
    return blob[:header_size], items


def write_package(header: bytes, items: Iterable[tuple[str, bytes]]) -> bytes:
    """An ICU common data package with these items (kept in the given, sorted, order)."""
    entries = list(items)
    names = [name for name, _data in entries]
    if names != sorted(names, key=lambda n: n.encode()):
        raise ValueError("ICU looks items up by binary search: names must be sorted")
    toc_size = 4 + 8 * len(entries)
    name_offsets, name_blob = [], b""
    for name in names:
        name_offsets.append(toc_size + len(name_blob))
        name_blob += name.encode("ascii") + b"\0"
    body = bytearray()
    data_start = toc_size + len(name_blob)
    data_start += -(len(header) + data_start) % _ALIGN  # each item 16-byte aligned in the file
    data_offsets = []
    for _name, data in entries:
        data_offsets.append(data_start + len(body))
        body += data + b"\0" * (-len(data) % _ALIGN)
    toc = struct.pack("<I", len(entries)) + b"".join(
        struct.pack("<II", n, d) for n, d in zip(name_offsets, data_offsets, strict=True)
    )
    padding = b"\xaa" * (data_start - toc_size - len(name_blob))  # ICU's own pkgdata pads with 0xaa
    return header + toc + name_blob + padding + bytes(body)


def dropped(name: str, size: int) -> bool:
    """Whether the item ``name`` (``icudt73l/...``) is left out of the slim package."""
    item = name.split("/", 1)[1] if "/" in name else name
    if any(fnmatch(item, pattern) for pattern in DROPPED_ITEMS):
        return True
    return item.endswith(".cnv") and "/" not in item and size >= KEEP_CONVERTERS_UNDER


def data_symbol(data: bytes) -> tuple[str, int, int]:
    """(name, file offset, size) of the ``icudtNN_dat`` symbol of a 64-bit little-endian ELF."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    for _name, sh_type, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if sh_type != 11:  # SHT_DYNSYM
            continue
        strtab = sections[link][4]
        for pos in range(offset, offset + size, entsize):
            st_name, _st_info, _other, st_shndx, st_value, st_size = struct.unpack_from("<IBBHQQ", data, pos)
            name = data[strtab + st_name : data.index(b"\0", strtab + st_name)].decode()
            if _ELF_SYMBOL.match(name):
                section = sections[st_shndx]
                return name, section[4] + st_value - section[3], st_size
    raise ValueError("no icudtNN_dat symbol")


def slim_library(library: Path, workdir: Path, log: bool = True) -> Path | None:
    """Build the slim ``libicudata`` in ``workdir``; ``None`` (original kept) when that cannot be done."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not sys.platform.startswith("linux") or compiler is None:
        if log:
            print(f"icudata: no C compiler, keeping the full {library.name}", file=sys.stderr)
        return None
    data = library.read_bytes()
    try:
        symbol, offset, size = data_symbol(data)
        header, items = read_package(data[offset : offset + size])
    except (ValueError, struct.error) as exc:
        if log:
            print(f"icudata: {library.name} not understood ({exc}), kept whole", file=sys.stderr)
        return None
    kept = [(name, blob) for name, blob in items if not dropped(name, len(blob))]
    workdir.mkdir(parents=True, exist_ok=True)
    package = workdir / f"{symbol}.dat"
    package.write_bytes(write_package(header, kept))
    source = workdir / f"{symbol}.S"
    source.write_text(
        "\t.section .rodata\n"
        f"\t.globl {symbol}\n\t.type {symbol}, @object\n\t.balign 16\n"
        f'{symbol}:\n\t.incbin "{package}"\n\t.size {symbol}, . - {symbol}\n'
        '\t.section .note.GNU-stack,"",@progbits\n'
    )
    out = workdir / library.name
    subprocess.run(
        [compiler, "-shared", "-nostdlib", "-o", str(out), f"-Wl,-soname,{library.name}", "-Wl,--build-id=none",
         str(source)],
        check=True,
    )
    if log:
        print(
            f"icudata: {library.name} {len(data) / 1e6:.1f} MB -> {out.stat().st_size / 1e6:.1f} MB "
            f"({len(items) - len(kept)} of {len(items)} items dropped)",
            file=sys.stderr,
        )
    return out
