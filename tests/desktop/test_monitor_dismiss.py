"""Failure notifications (issue 11 item 1): Dismiss reaches a job that offers it; a stale Retry says why."""

from __future__ import annotations

import asyncio

import pytest

from peft_notify import wire
from peft_notify.desktop.frames import ClientState, ConnectionEvent
from peft_notify.desktop.monitor import Problem
from tests.desktop.test_monitor import Rig, frame, oom, settle


@pytest.mark.parametrize(
    ("capabilities", "sent"),
    [(("retry", "cancel", "dismiss"), ["dismiss"]), (("retry", "cancel"), [])],
)
def test_a_dismissed_failure_reaches_a_job_that_offers_dismiss(capabilities: tuple[str, ...], sent: list[str]) -> None:
    rig = Rig()

    async def scenario() -> None:
        rig.monitor.start()
        rig.monitor.add("ws://127.0.0.1:8001/ws/notifications/train")
        await asyncio.sleep(0)
        [client] = rig.clients
        hello = wire.Hello(name="train", run_id="r1", total_steps=100, capabilities=capabilities)
        client.push(frame("train", 1, hello), frame("train", 2, oom()))
        await settle(rig)
        rig.notifier.invoke("dismissed")
        await settle(rig)
        await asyncio.sleep(0.05)
        assert [a.action for a in client.sent] == sent
        assert [a.ref_seq for a in client.sent] == [2] * len(sent)
        # Nothing for the user to read either way: a job without dismiss simply is not told.
        assert not [e for e in rig.events if isinstance(e, Problem)]
        await rig.monitor.shutdown()

    asyncio.run(scenario())


def test_a_retry_pressed_after_the_job_ended_says_so_instead_of_failing_silently() -> None:
    """Before: "The job did not accept 'retry' (connection lost?)" for a run that had exited long ago."""
    rig = Rig()

    async def scenario() -> None:
        rig.monitor.start()
        rig.monitor.add("ws://127.0.0.1:8001/ws/notifications/train")
        await asyncio.sleep(0)
        [client] = rig.clients
        hello = wire.Hello(name="train", run_id="r1", total_steps=100, capabilities=("retry", "cancel"))
        client.push(frame("train", 1, hello), frame("train", 2, oom()))
        client.push(frame("train", 3, wire.Status(wire.JobState.FAILED)))
        await settle(rig)
        client.on_event(ConnectionEvent(ClientState.FINISHED, "job finished"))  # the run's window closed
        rig.notifier.invoke("retry")
        await settle(rig)
        assert client.sent == []
        [problem] = [e for e in rig.events if isinstance(e, Problem)]
        assert problem.message == "train has ended or is no longer followed, so it cannot be relaunched from here"
        await rig.monitor.shutdown()

    asyncio.run(scenario())
