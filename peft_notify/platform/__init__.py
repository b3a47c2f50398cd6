"""OS adapters behind the ports of :mod:`peft_notify.ports`: notifiers, taskbar progress, DND probes.

No Qt here (Qt-based adapters live in :mod:`peft_notify.app.qtplatform`). Every module
imports on every OS; OS libraries are imported inside the branch that needs them.
Start with :mod:`peft_notify.platform.choose`, which picks working adapters.
"""
