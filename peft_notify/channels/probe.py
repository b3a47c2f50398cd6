"""Send one test message through a channel and return the service's own answer.

Used by ``peft-notify doctor --channels`` and the Settings → Channels *Send test* button.
Blocking (up to ``timeout_s``): call it from a worker thread or a CLI. Never raises.
"""

from __future__ import annotations

import socket

from peft_notify.channels.events import ChannelEvent, Outgoing, SendResult
from peft_notify.channels.sender import DEFAULT_TIMEOUT_S, AppriseSender, InvalidChannel, privacy_url
from peft_notify.wire import NotificationType

__all__ = ["send_test"]


def send_test(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[str, SendResult]:
    """(privacy URL, answer) of one test message through ``url``."""
    display = privacy_url(url)
    try:
        sender = AppriseSender(url, timeout_s=timeout_s)
    except InvalidChannel as exc:
        return display, SendResult(False, "invalid", str(exc), permanent=True)
    host = socket.gethostname()
    event = ChannelEvent(job_id="peft-notify", kind=NotificationType.COMPLETION, key="test", title="test")
    out = Outgoing(
        id=0,
        title="peft-notify: test message",
        body=f"This channel works: sent from {host} by peft-notify.",
        kind=NotificationType.COMPLETION,
        events=(event,),
    )
    return sender.display, sender.send(out)
