"""Channel URLs are secrets: kept in the OS keyring, the settings file holds a reference.

:class:`SecretStore` wraps the ``keyring`` library (Secret Service on Linux, Keychain on
macOS, Credential Locker on Windows). :meth:`SecretStore.status` says whether a real
keyring is usable and why not; without one, :meth:`SecretStore.put` refuses unless the user
agreed to keep the URL in the (0600) settings file (``allow_plain=True``). References look
like ``keyring:<id>`` or ``plain:<url>``; :func:`is_reference` tells them from a raw URL.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["KEYRING_SERVICE", "KeyringStatus", "NoKeyring", "SecretError", "SecretStore", "is_reference"]

log = logging.getLogger(__name__)

KEYRING_SERVICE: Final = "peft-notify"
_KEYRING: Final = "keyring:"
_PLAIN: Final = "plain:"
# Backends that are not a keyring: they store nothing, fail, or keep plain text in a file.
_NOT_SECURE: Final = frozenset({"fail.Keyring", "null.Keyring", "file.PlaintextKeyring"})


class SecretError(RuntimeError):
    """The keyring failed (locked, refused, D-Bus gone); the message says so in one line."""


class NoKeyring(SecretError):
    """No usable keyring, and the user has not agreed to keep the URL in the settings file."""


@dataclass(frozen=True, slots=True)
class KeyringStatus:
    """Whether a keyring is usable (``usable``), which one (``backend``), and why not (``reason``)."""

    usable: bool
    backend: str
    reason: str = ""

    def line(self) -> str:
        if self.usable:
            return f"keyring: {self.backend}"
        return (
            f"keyring: none usable ({self.reason}); "
            "channel URLs are stored in the 0600 settings file only with your consent"
        )


def is_reference(value: str) -> bool:
    """Whether ``value`` is a stored reference (not a raw URL)."""
    return value.startswith((_KEYRING, _PLAIN))


def _name(backend: Any) -> str:
    cls = type(backend)
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


class SecretStore:
    """Stores channel URLs; ``backend`` (a keyring backend object) overrides the OS default."""

    def __init__(self, backend: Any | None = None) -> None:
        self._backend = backend

    def _keyring(self) -> Any:
        if self._backend is not None:
            return self._backend
        import keyring  # the desktop extra; ImportError means "no keyring" (status() says so)

        return keyring.get_keyring()

    def status(self) -> KeyringStatus:
        """Whether a real keyring is usable here (never raises)."""
        try:
            backend = self._keyring()
        except ImportError:
            return KeyringStatus(False, "-", "the keyring package is not installed")
        except Exception as exc:
            return KeyringStatus(False, "?", f"keyring failed to load: {type(exc).__name__}")
        name = _name(backend)
        try:
            # keyring's ChainerBackend.backends asks each backend's ``priority``, which raises (e.g.
            # SecretService's RuntimeError once the session bus is gone) after the backends were cached.
            inner = getattr(backend, "backends", None)
            if inner is not None:
                inner = list(inner)
        except Exception as exc:
            return KeyringStatus(False, name, f"keyring unusable here: {type(exc).__name__}")
        if inner is not None:  # a ChainerBackend: usable if any link is
            names = [_name(b) for b in inner if _name(b) not in _NOT_SECURE]
            if not names:
                return KeyringStatus(False, name, "no keyring backend available")
            return KeyringStatus(True, ", ".join(names))
        if name in _NOT_SECURE:
            why = "only a plain-text file keyring" if "Plaintext" in name else "no keyring backend available"
            return KeyringStatus(False, name, why)
        return KeyringStatus(True, name)

    def put(self, secret: str, *, allow_plain: bool = False) -> str:
        """Store ``secret``; returns the reference for settings. Raises :class:`NoKeyring`, :class:`SecretError`."""
        status = self.status()
        if not status.usable:
            if not allow_plain:
                raise NoKeyring(status.reason)
            return _PLAIN + secret
        ident = uuid.uuid4().hex
        try:
            self._keyring().set_password(KEYRING_SERVICE, f"channel-{ident}", secret)
        except Exception as exc:
            raise SecretError(f"the keyring refused to store the URL ({type(exc).__name__})") from None
        return _KEYRING + ident

    def get(self, reference: str) -> str:
        """The secret behind ``reference``. Raises :class:`SecretError` (missing, locked, bad reference)."""
        if reference.startswith(_PLAIN):
            return reference[len(_PLAIN) :]
        if not reference.startswith(_KEYRING):
            raise SecretError("not a channel reference")
        ident = reference[len(_KEYRING) :]
        try:
            value = self._keyring().get_password(KEYRING_SERVICE, f"channel-{ident}")
        except Exception as exc:
            raise SecretError(f"the keyring could not be read ({type(exc).__name__})") from None
        if value is None:
            raise SecretError(f"the keyring has no entry channel-{ident[:8]}…")
        return str(value)

    def delete(self, reference: str) -> None:
        """Forget the secret behind ``reference`` (a missing entry is fine)."""
        if not reference.startswith(_KEYRING):
            return
        try:
            self._keyring().delete_password(KEYRING_SERVICE, f"channel-{reference[len(_KEYRING) :]}")
        except Exception:
            log.debug("keyring: could not delete %s", reference[:16], exc_info=True)
