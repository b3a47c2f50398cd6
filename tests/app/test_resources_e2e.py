"""Resource warnings end to end: training side → socket → the app (own process) → dunst + history.

Needs the desktop session (Xvfb, session D-Bus, dunst with -print). The training side is
``tests/emitter/resource_job.py`` in its own process: ``scripted`` sends one ``resource``
sample script that breaks every rule in turn (machine states this test machine cannot be put
in, such as 90 % of its RAM or a throttling GPU); ``real`` runs the real sampler on a real
8 MiB tmpfs the test filled, with ``FakeNvml`` (tests/emitter/nvml_fake.py) as its NVML. The
app's rule holds are shortened through its real settings file (``[resources]``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from peft_notify.ports import HistoryEntry
from tests.app.test_desktop_e2e import TOKEN, Session, _free_port, _require_desktop
from tests.emitter.resource_support import fill, small_tmpfs

pytestmark = [pytest.mark.desktop, pytest.mark.linux, pytest.mark.slow]

SETTINGS = """\
[resources]
host_memory_for_s = 2
gpu_memory_for_s = 2
throttle_for_s = 2
hang_min_s = 3
hang_idle_for_s = 2
"""

WARNINGS = {
    "res-job: low disk space": "disk_low",
    "res-job: host memory almost full": "host_memory",
    "res-job: swapping": "swap",
    "res-job: GPU 0 close to out of memory": "gpu_memory:0",
    "res-job: GPU 0 is throttling": "gpu_throttle:0",
    "res-job appears hung": "hang",
}
CRITICALS = {
    "res-job: the next checkpoint will not fit": "disk_full",
    "res-job: GPU 0 reported XID 79": "gpu_xid:0",
    "res-job: GPU 0 memory error": "gpu_ecc:0",
}


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    _require_desktop()
    s = Session(tmp_path)
    config = tmp_path / "xdg_config_home" / "peft-notify"
    config.mkdir(parents=True)
    (config / "settings.toml").write_text(SETTINGS)
    yield s
    s.stop()


def job(session: Session, *args: str) -> str:
    """Start the training side; returns the URL it printed."""
    with (session.tmp / "job.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.emitter.resource_job", *args, "--token", TOKEN],
            env=session.env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=Path(__file__).parents[2],
        )
    session.procs.append(proc)  # type: ignore[arg-type]
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    proc.stdout.close()  # the job prints nothing more there
    assert url.startswith("ws://127.0.0.1:"), (session.tmp / "job.log").read_text(errors="replace")
    return url.split("?")[0]  # Session.app adds the token


def by_title(entries: list[HistoryEntry]) -> dict[str, HistoryEntry]:
    return {e.title: e for e in entries}


def test_every_resource_rule_reaches_dunst_and_history(session: Session) -> None:
    url = job(session, "scripted", "--port", str(_free_port()), "--seconds", "120")
    session.app(url)
    wanted = set(WARNINGS) | set(CRITICALS)

    def all_done() -> bool:  # every rule recorded and handed to a notifier (no longer pending)
        entries = by_title(session.history())
        return wanted <= set(entries) and all(entries[t].status.value != "pending" for t in wanted)

    session.wait_for("every resource rule in the history", all_done, timeout=120)
    entries = by_title(session.history())
    for title, key in WARNINGS.items():
        entry = entries[title]
        assert entry.kind == "warning", entry
        assert entry.key.endswith(f":{key}")
        assert entry.status.value in ("shown", "rate_limited"), entry
    for title, key in CRITICALS.items():
        entry = entries[title]
        assert entry.kind == "error", entry
        assert entry.urgency == "critical"
        assert entry.key.endswith(f":{key}")
        assert entry.status.value == "shown", entry
    shown = [t for t in wanted if entries[t].status.value == "shown"]
    session.wait_for(
        "dunst to print the resource notifications",
        lambda: all(f"summary: '{t}'" in session.dunst() for t in shown),
        20,
    )
    log = session.dunst()
    for title in CRITICALS:
        block = log[log.index(f"summary: '{title}'") :][:600]
        assert "urgency: CRITICAL" in block, block
    assert sum(e.title == "res-job: low disk space" for e in session.history()) == 1  # once until it clears


def test_the_real_sampler_on_a_full_tmpfs_and_a_fake_nvml_xid(session: Session, tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs") as fs:
        out = fs / "run"
        out.mkdir()
        fill(out / "dataset.arrow", 4 << 20)  # ~4 MiB left; the model's parameters need 6 MiB
        url = job(session, "real", "--port", str(_free_port()), "--output-dir", str(out), "--param-bytes", str(6 << 20))
        session.app(url)
        titles = {"res-job: the next checkpoint will not fit", "res-job: GPU 0 reported XID 79"}
        session.wait_for(
            "the disk and XID criticals",
            lambda: titles <= {t for t, e in by_title(session.history()).items() if e.status.value != "pending"},
            60,
        )
        session.stop()  # release the tmpfs before it is unmounted
    entries = by_title(session.history())
    disk = entries["res-job: the next checkpoint will not fit"]
    assert disk.urgency == "critical"
    assert f"free on {out}; the next checkpoint needs about 6.0 MiB" in disk.message
    assert "XID critical error 79" in entries["res-job: GPU 0 reported XID 79"].message
