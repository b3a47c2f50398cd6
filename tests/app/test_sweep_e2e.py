"""Sweeps under the real desktop session: three ``simulate --group`` jobs → the app (own process) → dunst.

Exactly one "all finished" popup for the group, the failure at once, the trials' milestones in
history but not popped up (issue 15 part 1). Needs the desktop session (scripts/desktop-env.sh).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from peft_notify.ports import HistoryEntry
from tests.app.test_desktop_e2e import TOKEN, Session, _free_port

pytestmark = [pytest.mark.desktop, pytest.mark.linux, pytest.mark.slow]

TITLE = "e2e sweep: all 3 finished"


@pytest.fixture
def session(tmp_path: Path) -> Session:
    from tests.app.test_desktop_e2e import _require_desktop

    _require_desktop()
    s = Session(tmp_path)
    yield s  # type: ignore[misc]
    s.stop()


def start_trials(session: Session) -> list[str]:
    urls = []
    for i in range(3):
        port = _free_port()
        extra = ["--fail-at", "0.6"] if i == 2 else []
        session.start(
            "simulate",
            "--port",
            str(port),
            "--job-id",
            f"trial-{i}",
            "--name",
            f"trial-{i}",
            "--no-discovery",
            "--token",
            TOKEN,
            "--steps",
            "60",
            "--step-ms",
            "60",
            "--eval-every",
            "10",
            "--seed",
            str(i),
            "--wait-client",
            "30",
            "--linger",
            "10",
            "--group",
            "e2e sweep",
            "--group-size",
            "3",
            "--group-param",
            f"lr={i + 1}e-4",
            *extra,
            log=f"trial-{i}.log",
        )
        urls.append(f"ws://127.0.0.1:{port}/ws/notifications/trial-{i}?token={TOKEN}")
    return urls


def summaries(entries: list[HistoryEntry]) -> list[HistoryEntry]:
    return [e for e in entries if e.title == TITLE]


def test_a_sweep_in_the_app_gives_one_popup_in_dunst(session: Session) -> None:
    urls = start_trials(session)
    session.app_proc = session.start("-v", "app", *urls, "--no-local", log="app.log")
    shown = lambda: any(e.status.value == "shown" for e in summaries(session.history()))  # noqa: E731
    session.wait_for("the sweep's summary", shown)
    entries = session.history()
    assert len(summaries(entries)) == 1
    summary = summaries(entries)[0]
    assert summary.kind == "completion" and summary.message.startswith("2 ok, 1 failed; best eval_loss ")
    errors = [e for e in entries if e.kind == "error"]
    assert len(errors) == 1 and errors[0].status.value == "shown"
    assert errors[0].ts <= summary.ts  # the failure popped up when it happened, before the end
    milestones = [e for e in entries if e.kind == "progress"]
    assert milestones and all(e.status.value == "filtered" for e in milestones)  # kept in history
    completions = [e for e in entries if e.kind == "completion" and e is not summary]
    assert completions and all(e.status.value == "filtered" for e in completions)
    session.wait_for("dunst to print the summary", lambda: f"summary: '{TITLE}'" in session.dunst(), 15)
    log = session.dunst()
    assert log.count(f"summary: '{TITLE}'") == 1
    assert "% complete'" not in log  # no trial milestone popped up
    assert "urgency: CRITICAL" in log  # the oom error did
