"""The desktop app (PySide6 on a qasync loop): the only part of peft_notify that imports Qt.

Start it with :func:`peft_notify.app.main.run_app` (what ``peft-notify app`` calls). Modules:
``controller`` (the thin Qt layer over :class:`peft_notify.desktop.monitor.Monitor`: monitor
events → job rows and signals), ``jobs_model`` (per-job view data), ``window`` / ``job_card`` /
``charts`` / ``history_view`` / ``dialogs`` / ``tray`` (widgets), ``shell`` (wires them),
``single`` (single instance), ``qtplatform`` (Qt-based port adapters, owned by the platform side).
"""

__all__: list[str] = []  # import the modules
