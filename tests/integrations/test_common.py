"""The integrations' Reporter: one start-up path with peft_notify.job() (no ML framework needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from peft_notify.emitter.handle import JobHandle
from peft_notify.integrations.common import Reporter


@pytest.fixture(autouse=True)
def _runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.delenv("PEFT_NOTIFY_FD", raising=False)


def _handshake(url: str, origin: str) -> int:
    async def main() -> int:
        try:
            async with connect(url, additional_headers={"Origin": origin}):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    return asyncio.run(main())


def test_allowed_origins_reach_the_server_the_reporter_starts() -> None:
    """NotifyCallback(allowed_origins=...) was stored and never passed to the server (issue 9 §1)."""
    reporter = Reporter(name="lora", allowed_origins=["app://peft-notify"], linger=0)
    handle = reporter.start(10)
    try:
        assert isinstance(handle, JobHandle)
        assert reporter.server is not None
        assert reporter.server.allowed_origins == {"app://peft-notify"}
        assert _handshake(handle.url, "app://peft-notify") == 101
        assert _handshake(handle.url, "https://evil.example") == 403
    finally:
        reporter.finish()


def test_reporter_and_job_share_one_start_up_path(capsys: pytest.CaptureFixture[str]) -> None:
    import peft_notify

    reporter = Reporter(name="shared", job_id="r1", linger=0)
    handle = reporter.start(5, start_step=2)
    reporter.finish()
    with peft_notify.job("shared", job_id="j1", total_steps=5, linger=0) as ctx:
        assert type(ctx.handle) is type(handle)
    printed = capsys.readouterr().err.splitlines()
    # Both print the one line with the URL that carries the token (shown once, for copy-paste).
    assert [line.split(" at ")[0] for line in printed] == ["peft-notify: job 'shared'"] * 2
    assert all("?token=" in line for line in printed)
