"""Settings → Channels: add notification channels by URL, pick level and jobs, send a test.

:class:`ChannelsGroup` is a group box the Settings dialog embeds; :meth:`ChannelsGroup.channels`
returns the edited ``ChannelSetting`` tuple. A URL typed here goes straight into the keyring
(:class:`~peft_notify.channels.secrets.SecretStore`); only its reference and privacy form are
kept. Where no keyring is usable the group says so and stores the URL in the 0600 settings
file only if the user agrees. *Send test* runs on a worker thread and reports the service's own
answer through :attr:`ChannelsGroup.test_finished` (signals in, signals out).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Final

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from peft_notify.channels.levels import Level
from peft_notify.channels.secrets import SecretError, SecretStore
from peft_notify.desktop.settings import ChannelSetting

__all__ = ["SERVICES", "ChannelsGroup"]

# (label, URL form) of the common services; the full list is apprise's (docs/channels.md).
SERVICES: Final = (
    ("ntfy (phone push)", "ntfys://ntfy.sh/YOUR-LONG-RANDOM-TOPIC"),
    ("Slack (incoming webhook)", "https://hooks.slack.com/services/T…/B…/…"),
    ("Discord (webhook)", "https://discord.com/api/webhooks/ID/TOKEN"),
    ("Microsoft Teams (workflow)", "workflows://HOST:PORT/WORKFLOW/SIGNATURE"),
    ("Telegram (bot)", "tgram://BOT_TOKEN/CHAT_ID"),
    ("Matrix", "matrixs://USER:PASSWORD@HOST/#ROOM"),
    ("Pushover", "pover://USER_KEY@APP_TOKEN"),
    ("Mail", "mailtos://USER:APP-PASSWORD@gmail.com?to=YOU@example.com"),
    ("Webhook (JSON POST)", "jsons://HOST/PATH"),
)


def _describe(setting: ChannelSetting) -> str:
    jobs = ", ".join(setting.jobs) if setting.jobs else "all jobs"
    return f"{setting.display} · {setting.level} and worse · {jobs}"


class ChannelsGroup(QGroupBox):
    """The channel list and its editor; see the module docstring."""

    test_finished = Signal(str)  # one line: the channel and the service's answer

    def __init__(
        self, channels: Sequence[ChannelSetting], store: SecretStore | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__("Channels (phone, chat, mail, webhooks)", parent)
        self.store = store or SecretStore()
        self.confirm_plain: Callable[[str], bool] = self._ask_plain
        self.list = QListWidget()
        self.service = QComboBox()
        self.service.addItem("Service…", "")
        for label, form in SERVICES:
            self.service.addItem(label, form)
        self.url = QLineEdit(placeholderText="a channel URL (kept in the keyring, never shown again)")
        self.url.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)
        self.level = QComboBox()
        for level in Level:
            self.level.addItem(f"{level.label} and worse" if level is not Level.ERROR else "errors only", level.label)
        self.level.setCurrentIndex(int(Level.COMPLETION))
        self.jobs = QLineEdit(placeholderText="all jobs (or: names, comma-separated)")
        self.add = QPushButton("&Add")
        self.remove = QPushButton("Remove")
        self.test = QPushButton("Send &test")
        self.status = QLabel(self.store.status().line())
        self.status.setWordWrap(True)
        self.answer = QLabel()
        self.answer.setWordWrap(True)
        self.answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        editor = QFormLayout()
        editor.addRow(self.service, self.url)
        editor.addRow("Level", self.level)
        editor.addRow("Jobs", self.jobs)
        buttons = QHBoxLayout()
        for button in (self.add, self.remove, self.test):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        layout.addLayout(editor)
        layout.addWidget(self.status)
        layout.addWidget(self.answer)

        for setting in channels:
            self._append(setting)
        self.service.currentIndexChanged.connect(self.on_service_changed)
        self.add.clicked.connect(self.on_add)
        self.remove.clicked.connect(self.on_remove)
        self.test.clicked.connect(self.on_test)
        self.test_finished.connect(self.on_test_finished)

    # ------------------------------------------------------------------ slots

    def on_service_changed(self, index: int) -> None:
        form = self.service.itemData(index)
        if form:
            self.url.setPlaceholderText(form)

    def on_add(self) -> None:
        from peft_notify.channels.sender import privacy_url

        url = self.url.text().strip()
        display = privacy_url(url)
        if not url or "(invalid URL hidden)" in display:
            self.answer.setText(f"Not a channel URL apprise knows: {display}. Forms: see the Service list.")
            return
        status = self.store.status()
        allow_plain = False
        if not status.usable:
            allow_plain = self.confirm_plain(status.reason)
            if not allow_plain:
                self.answer.setText("Not added: no keyring, and the URL may not be stored in the settings file.")
                return
        try:
            secret = self.store.put(url, allow_plain=allow_plain)
        except SecretError as exc:
            self.answer.setText(f"Not added: {exc}")
            return
        jobs = tuple(j.strip() for j in self.jobs.text().split(",") if j.strip())
        self._append(ChannelSetting(secret, display, str(self.level.currentData()), jobs))
        self.url.clear()
        self.answer.setText(f"Added {display}.")

    def on_remove(self) -> None:
        row = self.list.currentRow()
        if row < 0:
            return
        item = self.list.takeItem(row)
        setting = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(setting, ChannelSetting):
            self.store.delete(setting.secret)

    def on_test(self) -> None:
        item = self.list.currentItem()
        setting = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if not isinstance(setting, ChannelSetting):
            self.answer.setText("Select a channel to test.")
            return
        self.test.setEnabled(False)
        self.answer.setText(f"Sending a test through {setting.display}…")
        threading.Thread(target=self._send_test, args=(setting,), name="peft-notify-channel-test", daemon=True).start()

    def on_test_finished(self, line: str) -> None:
        self.test.setEnabled(True)
        self.answer.setText(line)

    # ------------------------------------------------------------------ values

    def channels(self) -> tuple[ChannelSetting, ...]:
        """The edited channels (enabled = the item's check box)."""
        out = []
        for i in range(self.list.count()):
            item = self.list.item(i)
            setting = item.data(Qt.ItemDataRole.UserRole)
            if isinstance(setting, ChannelSetting):
                enabled = item.checkState() == Qt.CheckState.Checked
                out.append(dataclasses.replace(setting, enabled=enabled))
        return tuple(out)

    # ------------------------------------------------------------------ internals

    def _append(self, setting: ChannelSetting) -> None:
        item = QListWidgetItem(_describe(setting))
        item.setData(Qt.ItemDataRole.UserRole, setting)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if setting.enabled else Qt.CheckState.Unchecked)
        self.list.addItem(item)
        self.list.setCurrentItem(item)

    def _send_test(self, setting: ChannelSetting) -> None:
        """Worker thread: only emits (Qt queues the signal to the GUI thread)."""
        from peft_notify.channels.probe import send_test

        try:
            display, result = send_test(self.store.get(setting.secret))
            line = f"{display}: {'sent' if result.ok else 'FAILED'} · {result.summary()}"
        except SecretError as exc:
            line = f"{setting.display}: {exc}"
        except Exception as exc:  # never leave the button disabled
            line = f"{setting.display}: test failed ({type(exc).__name__})"
        self.test_finished.emit(line)

    def _ask_plain(self, reason: str) -> bool:
        answer = QMessageBox.question(
            self,
            "No keyring",
            f"No keyring is usable here ({reason}).\n\nStore this channel's URL in the settings file "
            "instead? The file is readable only by you (mode 0600), but the URL is not encrypted.",
        )
        return answer == QMessageBox.StandardButton.Yes
