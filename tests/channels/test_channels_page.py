"""Settings → Channels (Qt, offscreen unless a display is there): keyring, consent, Send test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from peft_notify.app.channels_page import ChannelsGroup
from peft_notify.channels.secrets import SecretStore
from peft_notify.desktop.settings import ChannelSetting
from tests.channels.conftest import Receiver
from tests.channels.test_secrets import FileTestKeyring


def test_add_stores_the_url_in_the_keyring_and_send_test_shows_the_answer(
    qtbot: QtBot, tmp_path: Path, receiver: Receiver
) -> None:
    store = SecretStore(FileTestKeyring(tmp_path / "k.cfg"))
    group = ChannelsGroup([], store)
    qtbot.addWidget(group)
    assert group.status.text().startswith("keyring: ")
    group.url.setText(f"json://bob:hunter2@127.0.0.1:{receiver.port}/ok")
    group.level.setCurrentIndex(3)
    group.jobs.setText("llama, mistral ")
    group.add.click()
    [setting] = group.channels()
    assert setting.secret.startswith("keyring:")
    assert "hunter2" not in setting.display
    assert "hunter2" not in group.list.item(0).text()
    assert (setting.level, setting.jobs, setting.enabled) == ("error", ("llama", "mistral"), True)
    assert group.url.text() == ""
    with qtbot.waitSignal(group.test_finished, timeout=15000):
        group.test.click()
    assert "sent · success · HTTP 200" in group.answer.text()
    assert receiver.hits[0].json()["title"] == "peft-notify: test message"


def test_send_test_shows_a_failure_answer(qtbot: QtBot, tmp_path: Path, receiver: Receiver) -> None:
    store = SecretStore(FileTestKeyring(tmp_path / "k.cfg"))
    group = ChannelsGroup([ChannelSetting(store.put(receiver.url("json", "fail")), "json://…/fail")], store)
    qtbot.addWidget(group)
    with qtbot.waitSignal(group.test_finished, timeout=15000):
        group.test.click()
    assert "FAILED · failure · HTTP 500" in group.answer.text()
    assert group.test.isEnabled()


def test_without_a_keyring_the_url_is_stored_only_after_consent(qtbot: QtBot) -> None:
    from keyrings.alt.file import PlaintextKeyring

    group = ChannelsGroup([], SecretStore(PlaintextKeyring()))
    qtbot.addWidget(group)
    assert "none usable" in group.status.text()
    asked: list[str] = []
    group.confirm_plain = lambda reason: asked.append(reason) or False
    group.url.setText("discord://1234567890/SecretWebhookToken")
    group.add.click()
    assert group.channels() == ()
    assert asked
    group.confirm_plain = lambda reason: True
    group.add.click()
    [setting] = group.channels()
    assert setting.secret == "plain:discord://1234567890/SecretWebhookToken"


def test_disable_and_bad_url(qtbot: QtBot, tmp_path: Path) -> None:
    store = SecretStore(FileTestKeyring(tmp_path / "k.cfg"))
    group = ChannelsGroup([ChannelSetting("keyring:x", "ntfys://ntfy.sh/m…c")], store)
    qtbot.addWidget(group)
    group.list.item(0).setCheckState(group.list.item(0).checkState().Unchecked)
    assert group.channels()[0].enabled is False
    group.url.setText("nosuch://token-abc@host")
    group.add.click()
    assert "token-abc" not in group.answer.text()
    assert len(group.channels()) == 1


def test_the_settings_dialog_carries_the_channels(qtbot: QtBot) -> None:
    from peft_notify.app.dialogs import SettingsDialog
    from peft_notify.desktop.settings import Settings

    channel = ChannelSetting("keyring:x", "ntfys://ntfy.sh/m…c", "warning", ("llama",))
    dialog = SettingsDialog(Settings(channels=(channel,)))
    qtbot.addWidget(dialog)
    assert dialog.settings().channels == (channel,)


def test_history_view_shows_channel_deliveries(qtbot: QtBot, tmp_path: Path) -> None:
    import time

    from peft_notify.app.history_view import HistoryModel
    from peft_notify.desktop.history import SqliteHistoryStore
    from peft_notify.ports import DeliveryStatus, HistoryQuery
    from peft_notify.wire import NotificationEvent, NotificationType

    store = SqliteHistoryStore(tmp_path / "h.db")
    now = time.time()
    event = NotificationEvent(type=NotificationType.ERROR, title="llama: out of memory", message="OOM")
    entry = store.record("j1", "llama", event, ts=now, status=DeliveryStatus.SHOWN, key="oom")
    store.set_channel(entry, "json://127.0.0.1:9/ok", "sent", ts=now)
    store.set_channel(entry, "ntfys://ntfy.sh/m…c", "failed", reason="HTTP 500", ts=now)
    model = HistoryModel()
    model.set_entries(store.query(HistoryQuery()))
    column = model.columnCount() - 1
    assert model.headerData(column, Qt.Orientation.Horizontal) == "Channels"
    assert model.data(model.index(0, column)) == "1 sent, 1 failed"
    tooltip = model.data(model.index(0, 0), Qt.ItemDataRole.ToolTipRole)
    assert "ntfys://ntfy.sh/m…c: failed: HTTP 500" in tooltip
    store.close()
