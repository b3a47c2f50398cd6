"""Channel events and service answers for the channel tests."""

from __future__ import annotations

from peft_notify.channels.events import ChannelEvent, SendResult
from peft_notify.wire import NotificationType

OK = SendResult(True, "success")
FAIL = SendResult(False, "failure", "HTTP 500", http_status=500)


def event(
    kind: NotificationType = NotificationType.COMPLETION,
    key: str = "k",
    job: str = "j1",
    title: str = "",
    **extra: object,
) -> ChannelEvent:
    return ChannelEvent(
        job_id=job,
        kind=kind,
        key=key,
        title=title or f"{job}: {kind.value} {key}",
        job_name=job,
        **extra,  # type: ignore[arg-type]
    )


def limited(retry_after: float) -> SendResult:
    return SendResult(False, "failure", "", http_status=429, retry_after_s=retry_after)
