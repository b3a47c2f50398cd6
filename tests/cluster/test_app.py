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


@pytest.mark.desktop
@pytest.mark.linux
@pytest.mark.slow
def test_the_app_follows_a_source_that_needs_a_password_and_never_shows_it(tmp_path: object) -> None:
    """nats-server from a config file requiring user/password: the real app, given the URL with the
    password, follows the job to dunst and history; the password is in no popup, history entry,
    log line (-v) or cursor file, and a file that keeps it (the settings) is 0600."""
    from pathlib import Path
    from urllib.parse import quote

    from tests.app.test_desktop_e2e import Session, _require_desktop

    _require_desktop()
    password = "app-pa55@w:rd"
    tmp = Path(str(tmp_path))
    server = NatsServer(
        tmp / "js", config=f'authorization {{ users = [ {{ user: bob, password: "{password}" }} ] }}'
    ).start()
    url = f"nats://bob:{quote(password, safe='')}@127.0.0.1:{server.port}"
    home = tmp / "app"
    home.mkdir()
    session = Session(home)
    try:
        session.app_proc = session.start("-v", "app", url, "--no-local", log="app.log")
        proc = node(url, "locked", steps=40, sleep=0.05)
        _out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        key = f"locked@127.0.0.1:{server.port}"
        session.wait_for(
            "the completion", lambda: any(e.job_id == key and e.kind == "completion" for e in session.history())
        )
        session.wait_for("dunst to show it", lambda: "node locked" in session.dunst(), 15)
        cursor = session.db.with_name("nats-cursors.json")
        session.stop()
        seen = [session.dunst(), (home / "app.log").read_text(errors="replace"), cursor.read_text(), err]
        seen += [repr(e) for e in session.history()]
        for secret in (password, quote(password, safe="")):
            assert all(secret not in text for text in seen), secret
        for path in home.rglob("*"):  # wherever the app keeps it (settings), only the user can read it
            if path.is_file() and password in path.read_text(errors="replace"):
                raise AssertionError(f"{path} holds the raw password")
            if path.is_file() and quote(password, safe="") in path.read_text(errors="replace"):
                assert path.stat().st_mode & 0o077 == 0, path
    finally:
        session.stop()
        server.stop()
