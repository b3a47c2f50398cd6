"""Message text for channels: one event, or a digest of many. Pure.

:func:`render` gives the title and body of one event (job name, host, duration, last
loss and eval metrics); :func:`digest` merges events the rate limit held back into one
message ("job X: 37 more events: 1 error, 36 warnings"), errors listed first.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Final

from peft_notify.channels.events import ChannelEvent, severity
from peft_notify.engine.config import format_eta
from peft_notify.wire import NotificationType

__all__ = ["DIGEST_LINES", "defang", "digest", "render"]

DIGEST_LINES: Final = 20  # a digest lists at most this many events, then "… and N more"
_MAX_METRICS: Final = 6

_PLURAL: Final = {
    NotificationType.ERROR: ("error", "errors"),
    NotificationType.WARNING: ("warning", "warnings"),
    NotificationType.COMPLETION: ("completion", "completions"),
    NotificationType.PROGRESS: ("milestone", "milestones"),
}


# Mentions that ping a whole chat: Discord's @everyone/@here and <@id>/<@&role>, Slack's <!channel>,
# <!here>, <!everyone>, <@U…> and <#C…>. Job names and messages come from the training job.
_MENTION: Final = re.compile(r"@(?=(everyone|here|channel)\b)|<(?=[@!#])", re.IGNORECASE)


def defang(text: str) -> str:
    """``text`` with chat-wide mentions made inert (a zero-width space after ``@`` / ``<``)."""
    return _MENTION.sub(lambda m: m.group(0) + "\u200b", text)


def _num(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def context_line(event: ChannelEvent) -> str:
    """``Host gpu-1 · ran 1h 02m · step 500/1000 · loss 0.4231 · eval_loss 0.51`` (parts that are known)."""
    parts: list[str] = []
    if event.host:
        parts.append(f"host {event.host}")
    if event.duration_s is not None:
        parts.append(f"ran {format_eta(event.duration_s)}")
    if event.step is not None:
        total = f"/{event.total_steps}" if event.total_steps else ""
        parts.append(f"step {event.step}{total}")
    if event.loss is not None:
        parts.append(f"loss {_num(event.loss)}")
    for name in sorted(event.metrics)[:_MAX_METRICS]:
        parts.append(f"{name} {_num(event.metrics[name])}")
    return " · ".join(parts)


def render(event: ChannelEvent) -> tuple[str, str]:
    """(title, body) of one event. The title names the job when the engine's does not."""
    name = event.job_name or event.job_id
    title = event.title if name in event.title else f"{name}: {event.title}"
    lines = [event.message] if event.message else []
    ctx = context_line(event)
    if ctx:
        lines.append(ctx)
    return title, "\n".join(lines)


def _counts(events: Sequence[ChannelEvent]) -> str:
    counter = Counter(e.kind for e in events)
    kinds = sorted(counter, key=severity, reverse=True)
    return ", ".join(f"{counter[k]} {_PLURAL[k][counter[k] != 1]}" for k in kinds)


def digest(events: Sequence[ChannelEvent]) -> tuple[str, str]:
    """(title, body) of a digest: counts per kind in the title, worst events first in the body."""
    jobs = list(dict.fromkeys(e.job_name or e.job_id for e in events))
    who = f"job {jobs[0]}" if len(jobs) == 1 else f"{len(jobs)} jobs"
    title = f"{who}: {len(events)} more events: {_counts(events)}"
    ordered = sorted(events, key=lambda e: severity(e.kind), reverse=True)  # stable: arrival order kept
    lines = []
    for event in ordered[:DIGEST_LINES]:
        text = event.title
        if len(jobs) > 1 and (event.job_name or event.job_id) not in text:
            text = f"{event.job_name or event.job_id}: {text}"
        lines.append(f"[{event.kind.value}] {text}")
    if len(ordered) > DIGEST_LINES:
        lines.append(f"… and {len(ordered) - DIGEST_LINES} more")
    last = events[-1]
    ctx = context_line(last)
    if ctx:
        lines.append(f"latest: {ctx}")
    return title, "\n".join(lines)
