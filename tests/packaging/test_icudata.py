"""The slim ICU data library of the Linux bundle (packaging/icudata.py).

The unit tests work on the real ``libicudata`` of the installed PySide6 wheel; the slow one runs
the same QtCore calls (collation, time-zone names, case mapping, codecs) in the frozen app and in
this environment's PySide6 (full ICU data) and wants the same answers, except the multi-byte
legacy code pages that are left out on purpose.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "packaging"))
from icudata import DROPPED_ITEMS, data_symbol, dropped, read_package, slim_library, write_package

from peft_notify.appinfo import CLI_NAME

PROBE = r"""
import functools, json
from PySide6.QtCore import QByteArray, QCollator, QLocale, QStringDecoder, QTimeZone
out = {}
words = ["Äpfel", "apfel", "Zebra", "Öl", "ångström", "zoo", "ch", "cz", "ñ", "n", "中文", "日本", "İ", "ı"]
for loc in ("de_DE", "sv_SE", "es_ES", "cs_CZ", "tr_TR", "zh_CN", "ja_JP", "en_US"):
    out["sort " + loc] = sorted(words, key=functools.cmp_to_key(QCollator(QLocale(loc)).compare))
for loc in ("en_US", "de_DE", "ja_JP", "fr_FR", "pt_BR"):
    for zone in (b"Europe/Berlin", b"America/New_York", b"Asia/Tokyo", b"Australia/Lord_Howe", b"Asia/Kolkata"):
        tz = QTimeZone(QByteArray(zone))
        for name in (QTimeZone.NameType.LongName, QTimeZone.NameType.ShortName, QTimeZone.NameType.OffsetName):
            for kind in (QTimeZone.TimeType.StandardTime, QTimeZone.TimeType.DaylightTime):
                key = f"tz {loc} {zone.decode()} {name.name} {kind.name}"
                out[key] = tz.displayName(kind, name, QLocale(loc))
out["upper tr"] = QLocale("tr_TR").toUpper("istanbul")
out["lower tr"] = QLocale("tr_TR").toLower("ISTANBUL")
out["upper de"] = QLocale("de_DE").toUpper("straße")
out["lower el"] = QLocale("el_GR").toLower("ΟΔΟΣ")
for codec in ("ISO-8859-15", "windows-1252", "windows-1251", "KOI8-R", "ISO-8859-2", "IBM437",
              "Shift_JIS", "GBK", "Big5", "EUC-KR", "EUC-JP", "GB18030"):
    out["codec " + codec] = QStringDecoder(codec).isValid()
print(json.dumps(out, ensure_ascii=False, sort_keys=True))
"""
MULTI_BYTE = ("Shift_JIS", "GBK", "Big5", "EUC-KR", "EUC-JP", "GB18030")


def _wheel_icudata() -> Path:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or spec.origin is None:
        pytest.skip("PySide6 is not installed")
    found = sorted((Path(spec.origin).parent / "Qt" / "lib").glob("libicudata.so.*"))
    if not sys.platform.startswith("linux") or not found:
        pytest.skip("this PySide6 carries no ICU data library (Linux wheels do)")
    return found[0]


def _package(library: Path) -> bytes:
    data = library.read_bytes()
    _symbol, offset, size = data_symbol(data)
    return data[offset : offset + size]


def test_package_reads_and_writes_back_byte_for_byte() -> None:
    blob = _package(_wheel_icudata())
    header, items = read_package(blob)
    assert len(items) > 1000
    assert write_package(header, items) == blob


def test_items_must_stay_sorted_for_icus_binary_search() -> None:
    header, items = read_package(_package(_wheel_icudata()))
    with pytest.raises(ValueError, match="sorted"):
        write_package(header, list(reversed(items[:3])))


def test_slim_library_keeps_what_qtcore_calls_and_drops_the_rest(tmp_path: Path) -> None:
    library = _wheel_icudata()
    slim = slim_library(library, tmp_path)
    if slim is None:
        pytest.skip("no C compiler here")
    full = dict(read_package(_package(library))[1])
    kept = dict(read_package(_package(slim))[1])
    assert slim.stat().st_size < 0.45 * library.stat().st_size
    prefix = next(iter(full)).split("/", 1)[0] + "/"
    # QtCore's four ICU services: collation, time-zone names, case mapping, converters (ICU 73 compiles
    # its case and property tables into libicuuc: they are not items of the package).
    for needed in ("coll/ucadata.icu", "coll/root.res", "coll/de.res", "coll/zh.res", "zone/de.res", "zone/ja.res",
                   "metaZones.res", "zoneinfo64.res", "timezoneTypes.res", "nfkc.nrm", "uts46.nrm",
                   "cnvalias.icu", "root.res", "pool.res", "de.res", "ibm-5348_P100-1997.cnv"):
        assert kept[prefix + needed] == full[prefix + needed], needed
    for gone in ("brkitr/cjdict.dict", "translit/root.res", "curr/de.res", "lang/de.res", "unit/de.res",
                 "ibm-943_P15A-2003.cnv", "gb18030.cnv"):
        assert prefix + gone in full and prefix + gone not in kept, gone
    assert set(kept) == {name for name, blob in full.items() if not dropped(name, len(blob))}
    assert all(not name.split("/", 1)[1].startswith(tuple(p.rstrip("*") for p in DROPPED_ITEMS)) for name in kept)
    # The library is one the loader takes: same soname, the one data symbol.
    dynamic = subprocess.run(["readelf", "-d", "--dyn-syms", str(slim)], capture_output=True, text=True,
                             check=True).stdout
    assert f"Library soname: [{library.name}]" in dynamic
    assert data_symbol(slim.read_bytes())[0] == data_symbol(library.read_bytes())[0]


@pytest.mark.slow
@pytest.mark.linux
@pytest.mark.timeout(900)
def test_frozen_qtcore_answers_like_the_full_icu_data(unpacked: Path, tmp_path: Path) -> None:
    frozen = unpacked / "usr" / "lib" / CLI_NAME / CLI_NAME
    icu = list((unpacked / "usr" / "lib" / CLI_NAME).rglob("libicudata.so.*"))
    assert icu and all(p.stat().st_size < 15e6 for p in icu if not p.is_symlink())  # 32 MB before
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen"}
    answers = []
    for command in ([str(frozen), "-c", PROBE], [sys.executable, "-c", PROBE]):
        result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                                check=False)
        assert result.returncode == 0, result.stderr
        answers.append(json.loads(result.stdout))
    slim, full = answers
    assert all(full[f"codec {name}"] for name in MULTI_BYTE)  # the reference really has them
    for name in MULTI_BYTE:  # left out on purpose (packaging/icudata.py)
        assert slim.pop(f"codec {name}") is False
        full.pop(f"codec {name}")
    assert slim == full
    assert slim["tz de_DE Europe/Berlin LongName StandardTime"] == "Mitteleuropäische Normalzeit"
    assert slim["upper tr"] == "İSTANBUL"
