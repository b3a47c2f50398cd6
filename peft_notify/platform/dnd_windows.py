"""Windows Do-Not-Disturb probes: Focus Assist / DND (WNF), toasts disabled (registry), presentation mode.

Each probe calls :class:`~peft_notify.platform.win32.Win32Api` (tests pass a recorder)
and fails open. :func:`windows_dnd_probe` combines them: DND when any says so.
"""

from __future__ import annotations

import asyncio

from peft_notify.platform.dnd import BaseDndProbe, CompositeDndProbe, ProbeError
from peft_notify.platform.win32 import Win32Api
from peft_notify.ports import DndState

__all__ = [
    "NOTIFICATION_SETTINGS_KEY",
    "PUSH_NOTIFICATIONS_KEY",
    "WNF_SHEL_QUIETHOURS_ACTIVE_PROFILE_CHANGED",
    "FocusAssistProbe",
    "ToastsDisabledProbe",
    "UserNotificationStateProbe",
    "parse_focus_assist",
    "parse_user_notification_state",
    "windows_dnd_probe",
]

# Undocumented WNF state name (Data = {0xA3BF1C75, 0x0D83063E}), as read by
# bitdisaster/windows-focus-assist and xan105/node-notification-state-ffi.
# Payload: DWORD 0 off, 1 priority only, 2 alarms only (Windows 11 "Do not disturb" = 1 too).
WNF_SHEL_QUIETHOURS_ACTIVE_PROFILE_CHANGED = 0x0D83063EA3BF1C75
# Settings › System › Notifications, the global switch since Windows 10 1803: ToastEnabled = 0
# under PushNotifications (the key Windows-tweak tools and policy scripts write). The older
# NOC_GLOBAL_SETTING_TOASTS_ENABLED under Notifications\Settings is the quiet-hours era key:
# read only when ToastEnabled has never been written.
PUSH_NOTIFICATIONS_KEY = r"Software\Microsoft\Windows\CurrentVersion\PushNotifications"
NOTIFICATION_SETTINGS_KEY = r"Software\Microsoft\Windows\CurrentVersion\Notifications\Settings"
# shellapi.h QUERY_USER_NOTIFICATION_STATE. Chromium (ui/base/fullscreen_win.cc,
# IsPlatformFullScreenMode) counts only 3 RUNNING_D3D_FULL_SCREEN and 4 PRESENTATION_MODE as
# "do not disturb": 2 BUSY is *any* full-screen window (an F11 browser video, a full-screen
# terminal), which would silence notifications far too often. BUSY counts only when the user
# turns on the ``windows_busy_is_dnd`` setting.
QUNS_BUSY = 2
_QUNS_QUIET = {3: "full-screen Direct3D", 4: "presentation mode"}
_QUNS_ALL = {1: "not present", QUNS_BUSY: "busy (full-screen app)", **_QUNS_QUIET, 5: "accepts notifications"}
_QUNS_ALL |= {6: "quiet time", 7: "store app"}


def parse_focus_assist(payload: bytes) -> bool:
    """The WNF payload → DND on (priority-only or alarms-only). Raises :class:`ProbeError`."""
    if len(payload) < 4:
        raise ProbeError(f"WNF payload of {len(payload)} bytes (expected a 4-byte DWORD)")
    level = int.from_bytes(payload[:4], "little", signed=True)
    if level not in (0, 1, 2):
        raise ProbeError(f"unknown Focus Assist level {level}")
    return level != 0


def parse_user_notification_state(value: int, *, busy_is_dnd: bool = False) -> bool:
    """A QUERY_USER_NOTIFICATION_STATE value → whether notifications should wait. Raises :class:`ProbeError`.

    ``busy_is_dnd`` also counts QUNS_BUSY (any full-screen window); off by default, as in Chromium.
    """
    if value not in _QUNS_ALL:
        raise ProbeError(f"unknown QUERY_USER_NOTIFICATION_STATE {value}")
    return value in _QUNS_QUIET or (busy_is_dnd and value == QUNS_BUSY)


class _ApiProbe(BaseDndProbe):
    def __init__(self, api: Win32Api, timeout: float = 1.0) -> None:
        super().__init__(timeout=timeout)
        self._api = api


class FocusAssistProbe(_ApiProbe):
    """Focus Assist (Windows 10) / Do not disturb (Windows 11) through the WNF state store."""

    name = "windows-focus-assist"

    async def _read(self) -> DndState:
        payload = await asyncio.to_thread(self._api.query_wnf_state, WNF_SHEL_QUIETHOURS_ACTIVE_PROFILE_CHANGED)
        return DndState.ON if parse_focus_assist(payload) else DndState.OFF


class ToastsDisabledProbe(_ApiProbe):
    """Settings › Notifications off: HKCU ``PushNotifications\\ToastEnabled`` = 0.

    Falls back to the older ``NOC_GLOBAL_SETTING_TOASTS_ENABLED`` only when ToastEnabled is absent.
    """

    name = "windows-toasts-enabled"

    async def _read(self) -> DndState:
        value = await asyncio.to_thread(self._api.read_registry_dword, PUSH_NOTIFICATIONS_KEY, "ToastEnabled")
        if value is None:
            value = await asyncio.to_thread(
                self._api.read_registry_dword, NOTIFICATION_SETTINGS_KEY, "NOC_GLOBAL_SETTING_TOASTS_ENABLED"
            )
        if value is None:  # never toggled: the default is on
            return DndState.OFF
        return DndState.ON if value == 0 else DndState.OFF


class UserNotificationStateProbe(_ApiProbe):
    """``SHQueryUserNotificationState``: presentation mode and exclusive full-screen Direct3D
    (plus any full-screen window when ``busy_is_dnd``)."""

    name = "windows-notification-state"

    def __init__(self, api: Win32Api, timeout: float = 1.0, *, busy_is_dnd: bool = False) -> None:
        super().__init__(api, timeout)
        self.busy_is_dnd = busy_is_dnd

    async def _read(self) -> DndState:
        value = await asyncio.to_thread(self._api.query_user_notification_state)
        return DndState.ON if parse_user_notification_state(value, busy_is_dnd=self.busy_is_dnd) else DndState.OFF


def windows_dnd_probe(api: Win32Api, *, busy_is_dnd: bool = False) -> CompositeDndProbe:
    """All three probes; DND when any of them says so."""
    return CompositeDndProbe(
        [FocusAssistProbe(api), ToastsDisabledProbe(api), UserNotificationStateProbe(api, busy_is_dnd=busy_is_dnd)],
        mode="any",
    )
