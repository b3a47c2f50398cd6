"""Dialogs: add a job (URL + token, or a discovered local job), settings, About.

Each dialog takes plain values in and returns plain values out (``AddJobDialog.result_value``,
``SettingsDialog.settings()``); the app applies them through the controller.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QProcess, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from peft_notify import __version__
from peft_notify.app.style import tone_color
from peft_notify.desktop.quiet_hours import parse_quiet_hours
from peft_notify.desktop.settings import ALL_KINDS, Settings
from peft_notify.engine.config import TEMPLATE_NAMES

__all__ = ["AddJobDialog", "ReportDialog", "SettingsDialog", "about_text", "parse_milestones", "show_about"]

_URL_HINT = "ws://HOST:PORT/ws/notifications/JOB or nats://HOST:4222 (every job published there)"


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a job URL or a NATS server URL (the desktop side's checks), or ``None``."""
    from peft_notify import natsurl
    from peft_notify.desktop.frames import parse_job_url

    try:
        if natsurl.is_nats_url(url):  # a source: every job published on that NATS server (docs/cluster.md)
            natsurl.parse(url)
        else:
            parse_job_url(url)
    except ValueError as exc:
        return str(exc)
    return None


class AddJobDialog(QDialog):
    """Ask for a job URL and optional token; offers jobs found on this machine."""

    def __init__(self, local_jobs: Sequence[Any] = (), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add job")
        self.url = QLineEdit(placeholderText=_URL_HINT)
        self.token = QLineEdit(placeholderText="optional", echoMode=QLineEdit.EchoMode.Password)
        self.error = QLabel(wordWrap=True)  # a long URL problem wraps instead of widening the dialog
        self.error.setObjectName("Error")  # coloured by the theme's style sheet (app/style.py)
        self.error.setStyleSheet(f"color: {tone_color('error')}; font-weight: 600;")
        self.error.hide()
        self.local = QListWidget()
        self.local.setAccessibleName("Jobs found on this machine")
        for job in local_jobs:
            item = QListWidgetItem(f"{job.name or job.job_id}  —  {job.url}")
            item.setData(Qt.ItemDataRole.UserRole, (job.url, job.token))
            self.local.addItem(item)
        self.local.currentItemChanged.connect(self._pick_local)
        form = QFormLayout()
        form.addRow("&URL", self.url)
        form.addRow("&Token", self.token)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        if local_jobs:
            layout.addWidget(QLabel("Or pick a job running on this machine:"))
            layout.addWidget(self.local)
        layout.addWidget(buttons)
        self.resize(560, self.sizeHint().height())

    def _pick_local(self, item: QListWidgetItem | None) -> None:
        if item is not None:
            url, token = item.data(Qt.ItemDataRole.UserRole)
            self.url.setText(url)
            self.token.setText(token or "")

    def accept(self) -> None:
        problem = url_problem(self.url.text())
        if problem is not None:
            self.error.setText(problem)
            self.error.show()
            self.url.setAccessibleDescription(problem)  # a screen reader hears why with the field
            self.url.setFocus()
            return
        super().accept()

    @property
    def result_value(self) -> tuple[str, str | None]:
        return self.url.text().strip(), self.token.text().strip() or None


def parse_milestones(text: str) -> tuple[int, ...]:
    """``"25, 50 75"`` → ``(25, 50, 75)``. Raises ``ValueError`` naming the bad part."""
    values: set[int] = set()
    for part in text.replace(",", " ").split():
        number = int(part.rstrip("%"))
        if not 1 <= number <= 100:
            raise ValueError(f"{part} is not between 1 and 100")
        values.add(number)
    if not values:
        raise ValueError("give at least one milestone")
    return tuple(sorted(values))


class SettingsDialog(QDialog):
    """Edit a :class:`Settings`; :meth:`settings` returns the edited copy."""

    def __init__(
        self, settings: Settings, defaults: dict[str, str] | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.original = settings
        defaults = defaults or {}
        self.milestones = QLineEdit(", ".join(str(m) for m in settings.milestones))
        self.templates: dict[str, QLineEdit] = {}
        for name in TEMPLATE_NAMES:
            edit = QLineEdit(getattr(settings, name), placeholderText=defaults.get(name, "default"))
            edit.setToolTip("Placeholders: {job} {percent} {step} {total} {eta} {loss}. Empty = default.")
            self.templates[name] = edit
        mnemonic = {"progress": "&Progress", "completion": "Comp&letion", "warning": "&Warning", "error": "E&rror"}
        self.kinds = {kind: QCheckBox(mnemonic.get(kind, kind.capitalize())) for kind in ALL_KINDS}
        for kind, box in self.kinds.items():
            box.setChecked(kind in settings.popup_kinds)
        self.checks = {
            "respect_dnd": QCheckBox("Respect &Do Not Disturb (errors always come through)"),
            "sounds": QCheckBox("Play &sounds"),
            "close_to_tray": QCheckBox("Closing the window keeps monitoring in the tra&y"),
            "start_minimized": QCheckBox("Start m&inimized to the tray"),
            "autostart": QCheckBox("Start at l&ogin"),
            "auto_discover": QCheckBox("&Follow jobs started on this machine automatically"),
        }
        for name, box in self.checks.items():
            box.setChecked(bool(getattr(settings, name)))
        self.retention = QDoubleSpinBox(minimum=1, maximum=3650, decimals=0, suffix=" days")
        self.retention.setValue(settings.retention_days)
        self.quiet_hours = QLineEdit(
            settings.quiet_hours, placeholderText="e.g. mon-fri 22:00-08:00; sat,sun 23:00-10:00"
        )
        self.quiet_hours.setToolTip(
            "Daily windows that act like Do Not Disturb: errors still come through, "
            "the rest is summarised when they end. Empty: none."
        )
        self.error = QLabel()
        self.error.setObjectName("Error")
        self.error.setStyleSheet(f"color: {tone_color('error')}; font-weight: 600;")
        self.error.hide()
        from peft_notify.app.channels_page import ChannelsGroup  # issue 13

        self.channels_group = ChannelsGroup(settings.channels, parent=self)

        notifications = QGroupBox("Notifications")
        form = QFormLayout(notifications)
        form.addRow("&Milestones (%)", self.milestones)
        form.addRow("Milestone titl&e", self.templates["milestone_title"])
        form.addRow("Milestone messa&ge", self.templates["milestone_message"])
        form.addRow("Completion &title", self.templates["completion_title"])
        form.addRow("&Completion message", self.templates["completion_message"])
        kinds_row = QWidget()
        kinds_layout = QVBoxLayout(kinds_row)
        kinds_layout.setContentsMargins(0, 0, 0, 0)
        for box in self.kinds.values():
            kinds_layout.addWidget(box)
        form.addRow("Pop up for", kinds_row)
        behaviour = QGroupBox("Behaviour")
        behaviour_layout = QVBoxLayout(behaviour)
        for box in self.checks.values():
            behaviour_layout.addWidget(box)
        retention_row = QFormLayout()
        retention_row.addRow("&Quiet hours", self.quiet_hours)
        retention_row.addRow("&Keep history for", self.retention)
        behaviour_layout.addLayout(retention_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        # One page each: stacked, the three groups were taller than an 800 px screen and hid OK/Cancel.
        self.pages = QTabWidget()
        self.pages.addTab(notifications, "&Notifications")
        self.pages.addTab(behaviour, "&Behaviour")
        self.pages.addTab(self.channels_group, "C&hannels")
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages)
        layout.addWidget(self.error)  # every setting applies at once when you press OK (issue 16)
        layout.addWidget(buttons)

    def accept(self) -> None:
        try:
            parse_milestones(self.milestones.text())
        except ValueError as exc:
            self.error.setText(f"Milestones: {exc}")
            self.error.show()
            self.pages.setCurrentIndex(0)
            self.milestones.setFocus()
            return
        try:
            parse_quiet_hours(self.quiet_hours.text())
        except ValueError as exc:
            self.error.setText(f"Quiet hours: {exc}")
            self.error.show()
            self.pages.setCurrentIndex(1)
            self.quiet_hours.setFocus()
            return
        super().accept()

    def settings(self) -> Settings:
        """The edited settings (call after ``exec()`` returned Accepted)."""
        values: dict[str, Any] = {name: box.isChecked() for name, box in self.checks.items()}
        values.update({name: edit.text().strip() for name, edit in self.templates.items()})
        values["milestones"] = parse_milestones(self.milestones.text())
        values["popup_kinds"] = tuple(k for k, box in self.kinds.items() if box.isChecked())
        values["retention_days"] = float(self.retention.value())
        values["quiet_hours"] = str(parse_quiet_hours(self.quiet_hours.text()))
        values["channels"] = self.channels_group.channels()
        return dataclasses.replace(self.original, **values)


def about_text(selections: Sequence[tuple[str, str, Sequence[str]]]) -> str:
    """HTML for the About box: version, and each port's chosen adapter with the skipped ones and why."""
    parts = [f"<h3>peft-notify {__version__}</h3>", "<p>Notifications and taskbar progress for training jobs.</p>"]
    for port, chosen, skipped in selections:
        parts.append(f"<p><b>{html.escape(port)}:</b> {html.escape(chosen)}")
        # describe_selection lists the skipped candidates ("name: why") and then its notes ("note: …")
        lines = [s[len("note: ") :] if s.startswith("note: ") else f"skipped {s}" for s in skipped]
        if lines:
            parts.append("<br><small>" + "<br>".join(html.escape(line) for line in lines) + "</small>")
        parts.append("</p>")
    return "".join(parts)


class ReportDialog(QDialog):
    """Help → Report a problem: runs ``peft-notify doctor``, shows its report and copies it to the clipboard.

    ``command`` is the doctor's command line (``shell.doctor_command()``); it runs in a
    ``QProcess`` so the window stays responsive. :attr:`report` holds the text once it finished.
    """

    def __init__(self, command: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Report a problem")
        self.report = ""
        self.text = QPlainTextEdit(readOnly=True)
        self.text.setAccessibleName("Doctor report")
        self.text.setPlainText("Running peft-notify doctor…")
        self.status = QLabel("Collecting the back ends in use and why; this takes a few seconds.")
        self.status.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy = buttons.addButton("&Copy again", QDialogButtonBox.ButtonRole.ActionRole)
        self.copy.setEnabled(False)
        self.copy.clicked.connect(self.copy_report)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.text, 1)
        layout.addWidget(buttons)
        self.resize(640, 420)
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        self.process.start(command[0], list(command[1:]))

    def _on_finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        output = bytes(self.process.readAll().data()).decode("utf-8", "replace").strip()
        self.report = f"peft-notify doctor (exit {code})\n{output}"
        self.text.setPlainText(self.report)
        self.copy.setEnabled(True)
        self.copy_report()

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error is QProcess.ProcessError.FailedToStart:
            self.status.setText(f"Could not run peft-notify doctor: {self.process.errorString()}")

    def copy_report(self) -> None:
        QGuiApplication.clipboard().setText(self.report)
        self.status.setText("The report below is on the clipboard: paste it into your bug report.")

    def done(self, result: int) -> None:
        if self.process.state() is not QProcess.ProcessState.NotRunning:
            self.process.kill()
            self.process.waitForFinished(2000)
        super().done(result)


def show_about(parent: QWidget | None, selections: Sequence[tuple[str, str, Sequence[str]]]) -> None:
    box = QMessageBox(parent)
    box.setWindowTitle("About peft-notify")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(about_text(selections))
    box.exec()
