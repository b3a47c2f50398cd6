"""The desktop app (PySide6 on a qasync loop): the only part of peft_notify that imports Qt.

Start it with :func:`peft_notify.app.main.run_app` (what ``peft-notify app`` calls). Modules:
``controller`` (subscriptions → engine → dispatcher, no widgets), ``jobs_model`` (per-job view
data), ``window`` / ``job_card`` / ``charts`` / ``history_view`` / ``dialogs`` / ``tray`` (widgets),
``single`` (single instance), ``qtplatform`` (Qt-based port adapters, owned by the platform side).
"""
