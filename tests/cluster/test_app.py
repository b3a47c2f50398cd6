"""The desktop app follows a NATS source: the Add dialog takes it, and the real app (own process,
real desktop session: Xvfb, session D-Bus, dunst) shows the jobs published there."""

from __future__ import annotations

import os

import pytest

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):  # like tests/app: widgets offscreen
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from pytestqt.qtbot import QtBot

from peft_notify.app.dialogs import AddJobDialog
from tests.cluster.natsd import NatsServer
from tests.cluster.rig import node


def test_the_add_dialog_takes_a_nats_source_and_refuses_clear_text_to_another_host(qtbot: QtBot) -> None:
    dialog = AddJobDialog([])
    qtbot.addWidget(dialog)
    dialog.url.setText("nats://secret-token@10.0.0.5:4222")
    dialog.accept()
    assert dialog.result() == 0
    assert "clear text" in dialog.error.text() and "secret-token" not in dialog.error.text()
    dialog.url.setText("tls://nats.cluster.example:4222/peft.jobs.>")
    dialog.accept()
    assert dialog.result() == 1
    assert "nats://" in dialog.url.placeholderText()


@pytest.mark.desktop
@pytest.mark.linux
@pytest.mark.slow
def test_the_app_follows_every_job_of_a_nats_source_to_dunst_and_history(natsd: NatsServer, tmp_path: object) -> None:
    from pathlib import Path

    from tests.app.test_desktop_e2e import Session, _done, _require_desktop

    _require_desktop()
    home = Path(str(tmp_path)) / "app"
    home.mkdir()
    session = Session(home)
    try:
        session.app_proc = session.start("-v", "app", f"nats://127.0.0.1:{natsd.port}", "--no-local", log="app.log")
        procs = [node(natsd.url, "gpu-a", steps=80, sleep=0.05), node(natsd.url, "gpu-b", steps=60, sleep=0.05)]
        for proc in procs:
            _out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err

        def completions() -> set[str]:
            return {e.job_id for e in session.history() if e.kind == "completion" and e.status.value != "pending"}

        keys = {f"gpu-a@127.0.0.1:{natsd.port}", f"gpu-b@127.0.0.1:{natsd.port}"}
        session.wait_for("both completions", lambda: keys <= completions(), 60)
        assert _done(session.history(), "warning")
        session.wait_for(
            "dunst to show them", lambda: "node gpu-b" in session.dunst() and "node gpu-a" in session.dunst(), 15
        )
        cursor = session.db.with_name("nats-cursors.json")
        session.stop()  # the app saves where it was in the stream
        assert cursor.exists() and cursor.stat().st_mode & 0o777 == 0o600
    finally:
        session.stop()
