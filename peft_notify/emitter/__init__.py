"""Training side: the never-blocking job server and the ``peft_notify.job`` context manager.

No Qt, no desktop code: this is what a headless GPU server installs.
"""

from __future__ import annotations

from peft_notify.emitter.context import JobContext, job
from peft_notify.emitter.handle import JobHandle
from peft_notify.emitter.server import JobServer, PortInUseError

__all__ = ["JobContext", "JobHandle", "JobServer", "PortInUseError", "job"]
