"""User settings: a frozen :class:`Settings` value, loaded from and saved to a TOML file.

Call :func:`load_settings` once at start-up and pass the value into constructors (no global
config object); the settings dialog builds a new value with ``dataclasses.replace`` and calls
:func:`save_settings`. The file lives in the platformdirs user config dir and is written
atomically with mode 0600, because subscription tokens live in it. An unreadable file never
stops the app: it is kept as ``settings.toml.bak``, the error is logged (and available as
``Settings.load_error`` for the UI), and defaults are used for what could not be read.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import platformdirs

__all__ = [
    "ALL_KINDS",
    "ChannelSetting",
    "Settings",
    "Subscription",
    "default_settings_path",
    "load_settings",
    "save_settings",
]

log = logging.getLogger(__name__)

ALL_KINDS: Final = ("progress", "completion", "warning", "error")


@dataclass(frozen=True, slots=True)
class Subscription:
    """A job the app follows: its WebSocket (or http) URL and optional bearer token."""

    url: str
    token: str | None = None
    paused: bool = False  # the user paused this job's connection


@dataclass(frozen=True, slots=True)
class ChannelSetting:
    """A notification channel (issue 13). ``secret`` is a reference (``keyring:<id>`` or, only after
    the user agreed, ``plain:<url>``) — never the URL itself; ``display`` is apprise's privacy form.
    ``jobs`` empty: every job the app follows; else only jobs with these ids or names.
    """

    secret: str
    display: str = ""
    level: str = "completion"
    jobs: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the user can configure. Empty template strings mean "the engine's default"."""

    subscriptions: tuple[Subscription, ...] = ()
    auto_discover: bool = True  # follow jobs announced in the local runtime dir
    milestones: tuple[int, ...] = (25, 50, 75, 100)
    milestone_title: str = ""
    milestone_message: str = ""
    completion_title: str = ""
    completion_message: str = ""
    popup_kinds: tuple[str, ...] = ALL_KINDS
    respect_dnd: bool = True
    # Quiet hours: daily windows that act like Do Not Disturb, e.g. "mon-fri 22:00-08:00; sat,sun 23:00-10:00"
    # (desktop/quiet_hours.py); empty: none.
    quiet_hours: str = ""
    # Windows: also treat SHQueryUserNotificationState's QUNS_BUSY (any full-screen window, e.g.
    # an F11 video) as Do Not Disturb. Off by default, as in Chromium; see platform/dnd_windows.py.
    windows_busy_is_dnd: bool = False
    sounds: bool = True
    close_to_tray: bool = True
    told_about_tray: bool = False  # the "still running in the tray" message was shown once
    start_minimized: bool = False
    autostart: bool = False
    retention_days: float = 90.0
    taskbar_max_hz: float = 10.0
    group_trial_popups: bool = False  # a sweep's trials pop up milestones/completions too (docs/sweeps.md)
    group_grace_s: float = 120.0  # a sweep whose jobs all ended ends after this long without a new one
    channels: tuple[ChannelSetting, ...] = ()
    # [resources]: ResourceThresholds overrides (docs/resources.md), e.g. gpu_memory_percent = 97
    resources: tuple[tuple[str, float | bool], ...] = ()
    load_error: str | None = field(default=None, compare=False)  # not saved

    def with_subscription(self, sub: Subscription) -> Settings:
        """A copy following ``sub`` (replacing an entry with the same URL)."""
        kept = tuple(s for s in self.subscriptions if s.url != sub.url)
        return dataclasses.replace(self, subscriptions=(*kept, sub))

    def without_subscription(self, url: str) -> Settings:
        return dataclasses.replace(self, subscriptions=tuple(s for s in self.subscriptions if s.url != url))


def default_settings_path() -> Path:
    """``<user config dir>/peft-notify/settings.toml``."""
    return Path(platformdirs.user_config_dir("peft-notify", appauthor=False)) / "settings.toml"


# -- reading ---------------------------------------------------------------------------


class _Invalid(ValueError):
    pass


def _check(name: str, value: Any, default: Any) -> Any:
    """Validate one TOML value against the type of the field's default; raise _Invalid."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _Invalid(f"{name} must be true or false")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise _Invalid(f"{name} must be a positive number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise _Invalid(f"{name} must be a string")
        if name == "quiet_hours":
            from peft_notify.desktop.quiet_hours import parse_quiet_hours

            try:
                parse_quiet_hours(value)
            except ValueError as exc:
                raise _Invalid(f"quiet_hours: {exc}") from None
        return value
    if name == "milestones":
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 100 for v in value
        ):
            raise _Invalid("milestones must be a list of integers between 1 and 100")
        return tuple(sorted(set(value)))
    if name == "popup_kinds":
        if not isinstance(value, list) or not all(v in ALL_KINDS for v in value):
            raise _Invalid(f"popup_kinds must be a list of {', '.join(ALL_KINDS)}")
        return tuple(value)
    if name == "subscriptions":
        return tuple(_subscription(i, item) for i, item in enumerate(_list(value, name)))
    if name == "channels":
        return tuple(_channel(i, item) for i, item in enumerate(_list(value, name)))
    if name == "resources":
        from peft_notify.engine.resources import ResourceThresholds

        if not isinstance(value, dict):
            raise _Invalid("resources must be a table of resource thresholds")
        try:
            ResourceThresholds.from_mapping(value)
        except ValueError as exc:
            raise _Invalid(str(exc)) from None
        return tuple(sorted(value.items()))
    raise _Invalid(f"{name} is not a setting")  # pragma: no cover - every field is handled above


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid(f"{name} must be a list")
    return value


def _subscription(index: int, item: Any) -> Subscription:
    if not isinstance(item, dict) or not isinstance(item.get("url"), str) or not item["url"]:
        raise _Invalid(f"subscriptions[{index}] needs a url string")
    token = item.get("token")
    if token is not None and not isinstance(token, str):
        raise _Invalid(f"subscriptions[{index}].token must be a string")
    paused = item.get("paused", False)
    if not isinstance(paused, bool):
        raise _Invalid(f"subscriptions[{index}].paused must be true or false")
    return Subscription(url=item["url"], token=token or None, paused=paused)


def _channel(index: int, item: Any) -> ChannelSetting:
    from peft_notify.channels.levels import parse_level
    from peft_notify.channels.secrets import is_reference

    if not isinstance(item, dict) or not isinstance(item.get("secret"), str) or not is_reference(item["secret"]):
        # A raw URL here would be a secret in a file we promised holds only references.
        raise _Invalid(f"channels[{index}] needs a secret reference (keyring:... or plain:...)")
    display, level, jobs, enabled = (item.get(k) for k in ("display", "level", "jobs", "enabled"))
    try:
        level_name = parse_level(level if isinstance(level, str) else "completion").label
    except ValueError as exc:
        raise _Invalid(f"channels[{index}].level: {exc}") from None
    if jobs is not None and not (isinstance(jobs, list) and all(isinstance(j, str) for j in jobs)):
        raise _Invalid(f"channels[{index}].jobs must be a list of job names")
    if enabled is not None and not isinstance(enabled, bool):
        raise _Invalid(f"channels[{index}].enabled must be true or false")
    return ChannelSetting(
        secret=item["secret"],
        display=display if isinstance(display, str) else "",
        level=level_name,
        jobs=tuple(jobs or ()),
        enabled=enabled is not False,
    )


def _keep_backup(path: Path) -> Path:
    import shutil  # here, not at the top: the app reads its settings before its first window

    backup = path.with_name(path.name + ".bak")
    try:
        shutil.copy2(path, backup)
        os.chmod(backup, 0o600)
    except OSError:
        log.warning("could not keep a backup of %s", path, exc_info=True)
    return backup


def load_settings(path: Path | None = None) -> Settings:
    """Read the settings file; a missing file gives defaults. Never raises.

    A file that is not valid TOML gives all defaults; a bad value gives that field's default.
    Either way the file is copied to ``.bak`` and ``load_error`` says what was wrong.
    """
    path = path or default_settings_path()
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        return Settings()
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        backup = _keep_backup(path)
        message = f"Could not read settings from {path} ({exc}); using defaults. The file was kept as {backup}."
        log.error("%s", message)
        return Settings(load_error=message)
    defaults = Settings()
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f in dataclasses.fields(Settings):
        if f.name == "load_error" or f.name not in raw:
            continue
        try:
            values[f.name] = _check(f.name, raw[f.name], getattr(defaults, f.name))
        except _Invalid as exc:
            problems.append(str(exc))
    unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(Settings)})
    if unknown:
        log.warning("ignoring unknown settings in %s: %s", path, ", ".join(unknown))
    if problems:
        backup = _keep_backup(path)
        message = f"Some settings in {path} were invalid and reset to defaults: {'; '.join(problems)}. " + (
            f"The file was kept as {backup}."
        )
        log.error("%s", message)
        values["load_error"] = message
    return Settings(**values)


# -- writing ---------------------------------------------------------------------------


def _to_toml_dict(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.name in ("load_error", "subscriptions", "channels", "resources"):
            continue
        value = getattr(settings, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    out["subscriptions"] = [
        {k: v for k, v in (("url", s.url), ("token", s.token), ("paused", s.paused)) if v is not None}
        for s in settings.subscriptions
    ]
    if settings.resources:
        out["resources"] = dict(settings.resources)
    out["channels"] = [
        {"secret": c.secret, "display": c.display, "level": c.level, "jobs": list(c.jobs), "enabled": c.enabled}
        for c in settings.channels
    ]
    return out


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write ``settings`` atomically (temp file + rename), mode 0600. Raises ``OSError``."""
    import tempfile

    import tomli_w  # desktop extra; only the app and its dialogs save settings

    path = path or default_settings_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = "# peft-notify settings (edited by the app's Settings dialog)\n" + tomli_w.dumps(_to_toml_dict(settings))
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".toml", dir=path.parent)  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
