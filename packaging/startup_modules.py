"""Write ``packaging/startup-modules.txt``: the modules the app imports while it starts.

The spec collects these as plain ``.pyc`` files next to the binary instead of into the
compressed archives (the PYZ inside the executable and ``base_library.zip``): a module read from
a file is imported faster than one PyInstaller's importer or ``zipimport`` must find, read and
decompress (issue 17: the frozen app's launch → window mapped). Everything else stays
compressed, which keeps the installed size down (issue 12).

Run under a desktop session (``source scripts/desktop-env.sh``) after the start-up path changed:
``.venv/bin/python packaging/startup_modules.py`` starts the source app with ``-X importtime``
in empty temporary XDG dirs for a few seconds (past its first window and its post-start work)
and lists what it imported. A stale list costs start-up time, never a function: a module missing
from it is still in the PYZ.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIST = ROOT / "packaging" / "startup-modules.txt"
RUN_S = 4.0
HEADER = """\
# Modules the app imports while it starts: collected as .pyc files, not into the compressed PYZ
# (faster to import). Written by packaging/startup_modules.py from `python -X importtime -m
# peft_notify app`; edit by rerunning it. The spec adds the whole peft_notify package, pkgutil and
# the base modules (PyInstaller.compat.PY3_BASE_MODULES).
"""


def imported_modules(stderr: str) -> list[str]:
    """Module names from ``-X importtime`` output."""
    names = set()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        names.add(line.rsplit("|", 1)[-1].strip())
    return sorted(n for n in names if n and not n.startswith("peft_notify"))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="peft-notify-startup-") as tmp:
        env = dict(os.environ)
        for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "TMPDIR"):
            path = Path(tmp) / name.lower()
            path.mkdir(mode=0o700)
            env[name] = str(path)
        env["PEFT_NOTIFY_INSTANCE"] = "startup-modules"
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "peft_notify", "app"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(RUN_S)
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    names = imported_modules(stderr)
    if len(names) < 50:
        raise SystemExit(f"only {len(names)} modules imported: did the app start? (DISPLAY set?)\n{stderr[-2000:]}")
    LIST.write_text(HEADER + "".join(f"{n}\n" for n in names), encoding="utf-8")
    print(f"{LIST}: {len(names)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
