"""Linux Do-Not-Disturb probes: GNOME, KDE Plasma, XFCE, dunst, mako, swaync, Cinnamon, MATE.

Parsers (``parse_*``) are pure functions of a command's output or a config file,
tested against captured outputs in ``tests/platform/fixtures``. Probes run the
command or D-Bus read with a timeout and fail open (see :mod:`.dnd`).
:func:`linux_dnd_probes` orders them for the running notification server and desktop.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from peft_notify.platform.dnd import BaseDndProbe, ProbeError, parse_bool_word
from peft_notify.platform.runner import CommandError, CommandRunner, run_command
from peft_notify.platform.session_bus import NOTIFICATIONS_NAME, NOTIFICATIONS_PATH, ServerInfo, SessionBus
from peft_notify.ports import DndProbe, DndState

__all__ = [
    "CommandDndProbe",
    "DunstDndProbe",
    "GSettingsDndProbe",
    "KdeDndProbe",
    "cinnamon_probe",
    "gnome_probe",
    "linux_dnd_probes",
    "mako_probe",
    "mate_probe",
    "parse_gsettings_bool",
    "parse_makoctl_mode",
    "parse_plasmanotifyrc",
    "swaync_probe",
    "xfce_probe",
]


def parse_gsettings_bool(text: str) -> bool:
    """``gsettings get SCHEMA KEY`` output for a boolean key (``true``/``false``). Raises ProbeError."""
    return parse_bool_word(text, "gsettings output")


def parse_makoctl_mode(text: str) -> bool:
    """``makoctl mode`` prints the active modes, one per line; DND when ``do-not-disturb`` is one.

    mako(5): "do-not-disturb" is the conventional mode name (``[mode=do-not-disturb] invisible=1``).
    """
    return any(line.strip() == "do-not-disturb" for line in text.splitlines())


_KCONFIG_DATETIME = re.compile(r"^\s*(\d{4}),(\d{1,2}),(\d{1,2}),(\d{1,2}),(\d{1,2}),(\d{1,2})(?:[.,](\d+))?\s*$")


def parse_plasmanotifyrc(text: str, now: datetime) -> bool:
    """Plasma's ``~/.config/plasmanotifyrc``: ``[DoNotDisturb] Until=`` in the future means DND.

    KConfig writes a QDateTime as ``year,month,day,hour,minute,second`` (local time);
    no section or key means DND is off. Raises :class:`ProbeError` for a malformed date.
    """
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep KConfig's case
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ProbeError(f"plasmanotifyrc is not a valid config file: {exc}") from exc
    until = parser.get("DoNotDisturb", "Until", fallback="").strip()
    if not until:
        return False
    match = _KCONFIG_DATETIME.match(until)
    if match is None:
        raise ProbeError(f"unexpected [DoNotDisturb] Until={until[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        return datetime(year, month, day, hour, minute, second) > now
    except ValueError as exc:
        raise ProbeError(f"invalid [DoNotDisturb] Until={until!r}: {exc}") from exc


class CommandDndProbe(BaseDndProbe):
    """Runs a command and maps its output through a parser; ``on_when`` is the parsed value meaning DND."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        parse: Callable[[str], bool] = parse_gsettings_bool,
        *,
        on_when: bool = True,
        runner: CommandRunner = run_command,
        timeout: float = 1.0,
    ) -> None:
        super().__init__(timeout=timeout + 0.5)
        self.name = name
        self.argv = tuple(argv)
        self.on_when = on_when
        self._parse = parse
        self._runner = runner
        self._command_timeout = timeout

    async def _read(self) -> DndState:
        result = await self._runner(self.argv, self._command_timeout)
        if not result.ok:
            raise ProbeError(f"{self.argv[0]} exited {result.returncode}: {result.stderr.strip()[:200]}")
        value = self._parse(result.stdout)
        return DndState.ON if value is self.on_when else DndState.OFF


class GSettingsDndProbe(CommandDndProbe):
    """Reads a boolean GSettings key with ``gsettings get`` (works with any GSettings backend)."""

    def __init__(self, name: str, schema: str, key: str, *, on_when: bool, runner: CommandRunner = run_command) -> None:
        super().__init__(name, ("gsettings", "get", schema, key), parse_gsettings_bool, on_when=on_when, runner=runner)


def gnome_probe(runner: CommandRunner = run_command) -> GSettingsDndProbe:
    """GNOME: ``org.gnome.desktop.notifications show-banners`` false = DND (gsettings-desktop-schemas)."""
    return GSettingsDndProbe("gnome", "org.gnome.desktop.notifications", "show-banners", on_when=False, runner=runner)


def cinnamon_probe(runner: CommandRunner = run_command) -> GSettingsDndProbe:
    """Cinnamon: ``org.cinnamon.desktop.notifications display-notifications`` false = DND."""
    return GSettingsDndProbe(
        "cinnamon", "org.cinnamon.desktop.notifications", "display-notifications", on_when=False, runner=runner
    )


def mate_probe(runner: CommandRunner = run_command) -> GSettingsDndProbe:
    """MATE: ``org.mate.NotificationDaemon do-not-disturb`` true = DND (mate-notification-daemon ≥ 1.24)."""
    return GSettingsDndProbe("mate", "org.mate.NotificationDaemon", "do-not-disturb", on_when=True, runner=runner)


def xfce_probe(runner: CommandRunner = run_command) -> CommandDndProbe:
    """XFCE: ``xfconf-query -c xfce4-notifyd -p /do-not-disturb`` true = DND."""
    argv = ("xfconf-query", "-c", "xfce4-notifyd", "-p", "/do-not-disturb")
    return CommandDndProbe("xfce", argv, parse_gsettings_bool, runner=runner)


def mako_probe(runner: CommandRunner = run_command) -> CommandDndProbe:
    """mako: ``makoctl mode`` lists ``do-not-disturb`` among the active modes."""
    return CommandDndProbe("mako", ("makoctl", "mode"), parse_makoctl_mode, runner=runner)


def swaync_probe(runner: CommandRunner = run_command) -> CommandDndProbe:
    """SwayNotificationCenter: ``swaync-client --get-dnd`` prints true/false (D-Bus ``GetDnd``)."""
    return CommandDndProbe("swaync", ("swaync-client", "--get-dnd"), parse_gsettings_bool, runner=runner)


class DunstDndProbe(BaseDndProbe):
    """dunst: D-Bus property ``org.dunstproject.cmd0.paused``; falls back to ``dunstctl is-paused``."""

    name = "dunst"

    def __init__(self, bus: SessionBus, runner: CommandRunner = run_command) -> None:
        super().__init__(timeout=bus.timeout + 1.5)
        self._bus = bus
        self._runner = runner

    async def _read(self) -> DndState:
        try:
            paused = await self._bus.get_property(
                NOTIFICATIONS_NAME, NOTIFICATIONS_PATH, "org.dunstproject.cmd0", "paused"
            )
        except Exception as exc:  # BusError: fall back to the command line
            try:
                result = await self._runner(("dunstctl", "is-paused"), 1.0)
            except CommandError:
                raise ProbeError(f"dunst not reachable: {exc}") from exc
            if not result.ok:
                raise ProbeError(f"dunstctl exited {result.returncode}") from exc
            paused = parse_bool_word(result.stdout, "dunstctl is-paused output")
        if not isinstance(paused, bool):
            raise ProbeError(f"dunst paused is {type(paused).__name__}, not a boolean")
        return DndState.ON if paused else DndState.OFF


class KdeDndProbe(BaseDndProbe):
    """KDE Plasma: the server's ``Inhibited`` property (spec 1.2 extension); else ``plasmanotifyrc``."""

    name = "kde"

    def __init__(self, bus: SessionBus, config_home: Path | None = None, now: type[datetime] = datetime) -> None:
        super().__init__(timeout=bus.timeout + 0.5)
        self._bus = bus
        self._config_home = config_home
        self._now = now

    async def _read(self) -> DndState:
        try:
            inhibited = await self._bus.get_property(
                NOTIFICATIONS_NAME, NOTIFICATIONS_PATH, NOTIFICATIONS_NAME, "Inhibited"
            )
        except Exception as exc:
            return self._read_config(exc)
        if not isinstance(inhibited, bool):
            raise ProbeError(f"Inhibited is {type(inhibited).__name__}, not a boolean")
        return DndState.ON if inhibited else DndState.OFF

    def _read_config(self, cause: Exception) -> DndState:
        home = self._config_home or Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        path = home / "plasmanotifyrc"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProbeError(f"no Inhibited property ({cause}) and cannot read {path}: {exc.strerror}") from exc
        return DndState.ON if parse_plasmanotifyrc(text, self._now.now()) else DndState.OFF


def _server_key(server: ServerInfo | None) -> str:
    if server is None:
        return ""
    name, vendor = server.name.lower(), server.vendor.lower()
    for key, words in (
        ("dunst", ("dunst",)),
        ("kde", ("plasma", "kde")),
        ("xfce", ("xfce",)),
        ("mako", ("mako",)),
        ("swaync", ("swaync", "swaynotificationcenter")),
        ("cinnamon", ("cinnamon",)),
        ("mate", ("mate",)),
        ("gnome", ("gnome-shell", "gnome shell")),
    ):
        if any(w in name for w in words) or (key in {"kde", "mate"} and any(w == vendor for w in words)):
            return key
    return ""


_DESKTOP_KEYS = {
    "gnome": "gnome",
    "ubuntu": "gnome",
    "unity": "gnome",
    "pop": "gnome",
    "kde": "kde",
    "xfce": "xfce",
    "x-cinnamon": "cinnamon",
    "cinnamon": "cinnamon",
    "mate": "mate",
    "sway": "mako",
    "hyprland": "mako",
    "river": "mako",
}


def linux_dnd_probes(
    server: ServerInfo | None,
    desktops: Sequence[str],
    bus: SessionBus,
    runner: CommandRunner = run_command,
) -> list[DndProbe]:
    """Probes to ask, best first: the running notification server's, then the desktop's."""
    factories: dict[str, Callable[[], DndProbe]] = {
        "dunst": lambda: DunstDndProbe(bus, runner),
        "kde": lambda: KdeDndProbe(bus),
        "xfce": lambda: xfce_probe(runner),
        "mako": lambda: mako_probe(runner),
        "swaync": lambda: swaync_probe(runner),
        "cinnamon": lambda: cinnamon_probe(runner),
        "mate": lambda: mate_probe(runner),
        "gnome": lambda: gnome_probe(runner),
    }
    order: list[str] = []
    key = _server_key(server)
    if key:
        order.append(key)
    for desktop in desktops:
        wanted = _DESKTOP_KEYS.get(desktop.lower())
        if wanted and wanted not in order:
            order.append(wanted)
        if desktop.lower() in {"sway", "hyprland", "river"} and "swaync" not in order:
            order.append("swaync")
    return [factories[k]() for k in order]
