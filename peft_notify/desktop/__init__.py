"""The desktop side without Qt: monitor, job client, dispatch, history, settings, autostart.

:mod:`~peft_notify.desktop.monitor` is the core (connections → engine → dispatcher) that the app
and ``peft-notify watch`` share; :mod:`~peft_notify.desktop.frames` is the Sans-I/O half of
following a job and :mod:`~peft_notify.desktop.client` its WebSocket I/O loop. Everything here
runs under plain asyncio (``watch``) as well as under the app's qasync loop; only
:mod:`peft_notify.app` imports Qt. See docs/architecture.md.
"""

__all__: list[str] = []  # import the modules
