"""JobRow formatting and state: what every card and the tray say about a job."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from peft_notify.app.jobs_model import JobRow, Link, aggregate_progress, format_duration
from peft_notify.desktop.frames import parse_job_url
from peft_notify.wire import JobState


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (float("nan"), "—"), (-1, "—"), (0, "0s"), (45.4, "45s"), (200, "3m 20s"), (3720, "1h 02m")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_job_id_from_url() -> None:
    assert parse_job_url("ws://h:1/ws/notifications/run-7?token=x").label == "run-7"
    assert parse_job_url("http://h:1/ws/notifications/abc/").label == "abc"


@dataclass
class View:
    job_id: str = "j"
    name: str = "llama"
    host: str = "gpu"
    pid: int | None = 42
    state: JobState = JobState.RUNNING
    current_step: int = 250
    total_steps: int | None = 1000
    fraction: float | None = 0.25
    eta_s: float | None = 90.0
    loss: float | None = 0.5
    capabilities: tuple[str, ...] = ("retry",)
    stalled: bool = False
    errors: int = 0


def test_row_from_view_and_texts() -> None:
    row = JobRow(key="ws://x", job_id="j")
    row.update_from_view(View())
    assert (row.title, row.percent_text, row.step_text, row.eta_text, row.loss_text) == (
        "llama",
        "25%",
        "step 250 / 1,000",
        "ETA 1m 30s",
        "loss 0.5",
    )
    assert (row.status_text, row.tone) == ("running", "ok")
    row.update_from_view(View(loss=None))
    assert row.loss == 0.5  # a progress without loss keeps the last one


@pytest.mark.parametrize(
    ("changes", "status", "tone"),
    [
        ({"state": "completed"}, "completed", "done"),
        ({"state": "failed"}, "failed", "error"),
        ({"stalled": True}, "stalled", "warn"),
        ({"link": Link.AUTH_REFUSED, "link_detail": "HTTP 401"}, "auth refused: HTTP 401", "error"),
        ({"link": Link.RECONNECTING, "retry_in": 4.0}, "reconnecting in 4s", "warn"),
        ({"link": Link.STOPPED}, "paused (not connected)", "ok"),
        ({"state": "", "link": Link.CONNECTING}, "connecting", "idle"),
    ],
)
def test_status_and_tone(changes: dict[str, object], status: str, tone: str) -> None:
    row = JobRow(key="k", job_id="j", state="running", link=Link.CONNECTED)
    for name, value in changes.items():
        setattr(row, name, value)
    assert (row.status_text, row.tone) == (status, tone)


def test_unknown_total_and_finished_job_texts() -> None:
    row = JobRow(key="k", job_id="j", step=12, state="completed")
    assert (row.percent_text, row.step_text, row.eta_text) == ("—", "step 12 / ?", "")


def test_loss_points_skip_non_finite_and_out_of_order() -> None:
    row = JobRow(key="k", job_id="j")
    for step, loss in [(1, 2.0), (2, float("nan")), (3, 1.5), (2, 9.0), (3, 1.4)]:
        row.add_loss(step, loss)
    assert list(row.losses) == [(1, 2.0), (3, 1.4)]


def test_aggregate_progress_over_running_jobs() -> None:
    rows = [
        JobRow(key="a", job_id="a", state="running", fraction=0.2),
        JobRow(key="b", job_id="b", state="running", fraction=0.6),
        JobRow(key="c", job_id="c", state="completed", fraction=1.0),
    ]
    assert aggregate_progress(rows) == pytest.approx(0.4)
    assert aggregate_progress([]) is None


@pytest.mark.parametrize(
    ("state", "link", "capabilities", "can", "hint"),
    [
        ("failed", Link.CONNECTED, ("retry",), True, ""),
        ("running", Link.CONNECTED, ("retry",), False, "Retry becomes available if the run fails"),
        ("completed", Link.CONNECTED, ("retry",), False, "Retry becomes available if the run fails"),
        # issue 11 item 1: a run that has exited (window over, connection closed) cannot take Retry
        ("failed", Link.FINISHED, ("retry",), False, "no longer reachable"),
        ("failed", Link.RECONNECTING, ("retry",), False, "no longer reachable"),
        ("failed", Link.CONNECTED, ("cancel",), False, ""),
    ],
)
def test_retry_is_offered_only_while_the_job_can_take_it(
    state: str, link: Link, capabilities: tuple[str, ...], can: bool, hint: str
) -> None:
    row = JobRow(key="ws://x", job_id="j", state=state, link=link, capabilities=capabilities)
    assert row.can_retry is can
    assert hint in row.retry_hint
    assert bool(row.retry_hint) is bool(hint)


def test_a_new_run_starts_the_card_and_its_timeline_fresh() -> None:
    """Issue 11 item 6: a relaunched run showed the previous run's loss, ETA and events."""
    from peft_notify.ports import DeliveryStatus, HistoryEntry

    row = JobRow(key="ws://x", job_id="j")
    row.update_from_view(View(state=JobState.COMPLETED, errors=1))
    row.run_started_at = 1000.0

    def entry(ts: float, title: str) -> HistoryEntry:
        return HistoryEntry(
            id=int(ts),
            ts=ts,
            job_id="j",
            job_name="llama",
            kind="progress",
            title=title,
            message="",
            urgency="normal",
            status=DeliveryStatus.SHOWN,
            read=False,
            repeat=1,
        )

    entries = [entry(2500.0, "run 2: 25 %"), entry(1500.0, "run 1: completed"), entry(1100.0, "run 1: 25 %")]
    assert len(row.this_run(entries)) == 3
    row.new_run(2000.0)
    assert (row.loss, row.eta_s, row.errors, row.resources) == (None, None, 0, None)
    assert [e.title for e in row.this_run(entries)] == ["run 2: 25 %"]  # the previous run stays in history
    assert row.this_run(entries[1:]) == []
