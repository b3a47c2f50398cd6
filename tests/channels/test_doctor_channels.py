"""``peft-notify doctor --channels``: a real test message through each channel, each answer printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from peft_notify.cli import main
from tests.channels.conftest import Receiver


def test_doctor_sends_a_test_through_each_channel_and_prints_the_answer(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no app settings
    monkeypatch.setenv("PEFT_NOTIFY_CHANNELS", f"json://alice:hunter2@127.0.0.1:{receiver.port}/fail")
    main(["doctor", "--channels", "--notify", receiver.url("json", "ok")])
    out = capsys.readouterr().out
    assert out.count("\nkeyring: ") == 1
    assert f"channel json://127.0.0.1:{receiver.port}/ok: sent · success · HTTP 200" in out
    assert f"channel json://alice:****@127.0.0.1:{receiver.port}/fail: FAILED · failure · HTTP 500" in out
    assert "hunter2" not in out
    assert {h.json()["title"] for h in receiver.hits} == {"peft-notify: test message"}


def test_doctor_without_channels_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("PEFT_NOTIFY_CHANNELS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    main(["doctor", "--channels"])
    assert "channels: none configured" in capsys.readouterr().out
