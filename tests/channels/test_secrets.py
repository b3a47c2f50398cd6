"""Channel secrets through real keyring backends.

Secret Service: a real gnome-keyring-daemon on a private session D-Bus started by the fixture
(skipped where gnome-keyring is not installed). File: keyrings.alt's file keyring — the
"documented test backend" (``FileTestKeyring`` below) for machines without a Secret Service;
it is the plain-text file backend under another name, because the real one is (rightly)
reported as not a usable keyring.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peft_notify.channels.secrets import NoKeyring, SecretError, SecretStore, is_reference

URL = "discord://1234567890/AbCdEfSecretWebhookToken"


class FileTestKeyring:
    """keyrings.alt's file keyring under a test name (see the module docstring)."""

    def __new__(cls, path: Path) -> Any:
        from keyrings.alt.file import PlaintextKeyring

        class _Backend(PlaintextKeyring):  # type: ignore[misc]
            @property
            def file_path(self) -> str:
                return str(path)

        _Backend.__name__ = "FileTestKeyring"
        return _Backend()


@pytest.fixture
def secret_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real gnome-keyring (Secret Service) on a private D-Bus; yields keyring's SecretService backend."""
    if not all(shutil.which(tool) for tool in ("gnome-keyring-daemon", "dbus-daemon", "dbus-send")):
        pytest.skip("gnome-keyring-daemon / dbus-daemon / dbus-send not installed")
    home = tmp_path / "home"
    home.mkdir()
    bus = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1", f"--address=unix:dir={tmp_path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert bus.stdout is not None
    address = bus.stdout.readline().strip()
    bus.stdout.close()
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": address, "HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path)}
    daemon = subprocess.Popen(
        ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert daemon.stdin is not None
    daemon.stdin.write(b"test-password")
    daemon.stdin.close()
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    from keyring.backends import SecretService

    backend = SecretService.Keyring()
    try:
        # The daemon registers on the bus shortly after starting. Ask the bus (dbus-send) rather
        # than the keyring: a failed secretstorage call leaves its D-Bus socket open.
        ask = ["dbus-send", f"--bus={address}", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus"]
        for _ in range(200):
            reply = subprocess.run(
                [*ask, "org.freedesktop.DBus.NameHasOwner", "string:org.freedesktop.secrets"],
                capture_output=True,
                text=True,
                check=False,
            )
            if "boolean true" in reply.stdout:
                break
            time.sleep(0.05)
        yield backend
    finally:
        daemon.terminate()
        daemon.wait(5)
        bus.terminate()
        bus.wait(5)


def test_secret_service_stores_the_url_and_settings_keep_a_reference(secret_service: Any) -> None:
    store = SecretStore(secret_service)
    status = store.status()
    assert status.usable, status
    assert "SecretService" in status.backend
    ref = store.put(URL)
    assert is_reference(ref)
    assert ref.startswith("keyring:")
    assert "Secret" not in ref
    assert store.get(ref) == URL
    store.delete(ref)
    with pytest.raises(SecretError, match="no entry"):
        store.get(ref)


def test_file_test_backend_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "keyring.cfg"
    store = SecretStore(FileTestKeyring(path))
    ref = store.put(URL)
    assert store.get(ref) == URL
    assert URL.rsplit("/", maxsplit=1)[-1] not in ref


def test_plain_text_keyring_is_not_a_keyring_and_needs_consent(tmp_path: Path) -> None:
    from keyrings.alt.file import PlaintextKeyring

    store = SecretStore(PlaintextKeyring())
    status = store.status()
    assert not status.usable
    assert "plain-text" in status.reason
    assert "consent" in status.line()
    with pytest.raises(NoKeyring):
        store.put(URL)
    ref = store.put(URL, allow_plain=True)
    assert ref == "plain:" + URL
    assert store.get(ref) == URL


def test_no_backend_at_all() -> None:
    from keyring.backends import fail

    store = SecretStore(fail.Keyring())
    assert not store.status().usable
    with pytest.raises(NoKeyring):
        store.put(URL)


def test_a_raw_url_is_not_accepted_as_a_reference() -> None:
    store = SecretStore()
    assert not is_reference(URL)
    with pytest.raises(SecretError, match="not a channel reference"):
        store.get(URL)


def test_a_broken_keyring_is_one_clear_error_without_the_secret() -> None:
    class Locked:
        def set_password(self, *args: object) -> None:
            raise RuntimeError(f"cannot store {args}")

        def get_password(self, *args: object) -> None:
            raise RuntimeError("locked")

    store = SecretStore(Locked())
    with pytest.raises(SecretError) as info:
        store.put(URL)
    assert "Secret" not in str(info.value)
    assert "refused" in str(info.value)



def test_status_never_raises_when_the_session_bus_goes_away(
    secret_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """keyring's real ChainerBackend asks each cached backend's ``priority``; once the session bus
    is gone SecretService raises RuntimeError from there. ``doctor --channels`` crashed on that in a
    full-suite run (an earlier test had loaded the backends while a bus was present)."""
    from keyring.backends.chainer import ChainerBackend

    chainer = ChainerBackend()
    assert SecretStore(chainer).status().usable
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS")
    with pytest.raises(RuntimeError):
        list(chainer.backends)  # what keyring itself does here
    status = SecretStore(chainer).status()
    assert not status.usable
    assert "RuntimeError" in status.reason
