"""``run --nats`` / ``simulate --nats`` publish; ``watch --json nats://...`` follows (real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.cluster.natsd import NatsServer
from tests.cluster.rig import ROOT


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = {**os.environ, "PEFT_NOTIFY_RESOURCES": "0", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "peft_notify", *args],
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_watch_follows_simulate_and_run_jobs_published_to_nats(natsd: NatsServer, tmp_path: Path) -> None:
    watch = _cli("watch", "--json", f"nats://127.0.0.1:{natsd.port}")
    printed: list[str] = []
    assert watch.stdout is not None
    reader = threading.Thread(target=lambda: printed.extend(iter(watch.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        sim = _cli(
            "simulate", "--steps", "40", "--step-ms", "20", "--job-id", "sim-a", "--linger", "0",
            "--nats", natsd.url, "--no-discovery",
        )  # fmt: skip
        script = tmp_path / "train.py"
        script.write_text("import time\nfor i in range(30):\n    time.sleep(0.02)\nprint('trained')\n")
        wrapped = _cli(
            "run", "--job-id", "run-b", "--retry-wait", "0", "--linger", "0", "--", sys.executable, str(script),
            env={"PEFT_NOTIFY_NATS": natsd.url},
        )  # fmt: skip
        assert sim.wait(60) == 0, sim.communicate()[1]
        out, err = wrapped.communicate(timeout=60)
        assert wrapped.returncode == 0, err
        assert "trained" in out and "publishing 'train.py' to nats://127.0.0.1" in err
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            records = [json.loads(line) for line in list(printed) if line.strip()]
            done = {
                str(rec.get("job_id", "")).split("@")[0]
                for rec in records
                if rec.get("action") == "Notify" and "complete" in str(rec.get("event", {}).get("title", "")).lower()
            }
            if {"sim-a", "run-b"} <= done:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"watch did not print both completions: {''.join(printed)[-3000:]}")
        assert sim.stdout is not None and sim.stderr is not None
        sim.stdout.close()
        sim.stderr.close()
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(20)
        reader.join(5)
        assert watch.stderr is not None
        err = watch.stderr.read()
        watch.stdout.close()
        watch.stderr.close()
    assert watch.returncode == 130, err


def test_watch_and_run_refuse_clear_text_to_another_host() -> None:
    for args in (
        ("watch", "nats://tok3n@10.9.8.7:4222"),
        ("run", "--nats", "nats://tok3n@10.9.8.7:4222", "--", "true"),
        ("simulate", "--nats", "nats://tok3n@10.9.8.7:4222"),
    ):
        proc = _cli(*args)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 2, (args, err)
        assert "clear text" in err and "tok3n" not in err + out


def test_a_job_id_that_cannot_be_a_subject_is_refused_before_serving() -> None:
    proc = _cli("simulate", "--nats", "nats://127.0.0.1:4222", "--job-id", "a..b", "--no-discovery")
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert "cannot be a NATS subject" in err and "Traceback" not in err


class _Watch:
    """A ``peft-notify watch --json`` process whose stdout lines are collected by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = _cli("watch", "--json", *args)
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        out = self.proc.stdout
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(out.readline, "")), daemon=True)
        self.reader.start()

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in list(self.lines) if line.strip()]

    def events(self) -> list[tuple[str, str, str]]:
        """(action, title, message) of every printed notification (shown, recorded or merged)."""
        out = []
        for rec in self.records():
            event = rec.get("event")
            if rec.get("action") in ("Notify", "Record", "MergeRepeat") and isinstance(event, dict):
                out.append((str(rec["action"]), str(event.get("title")), str(event.get("message"))))
        return out

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"watch: timed out waiting for {what}: {''.join(self.lines)[-3000:]}")
            time.sleep(0.05)

    def interrupt(self) -> str:
        """Ctrl-C; the stderr text."""
        self.proc.send_signal(signal.SIGINT)
        _out, err = self.proc.communicate(timeout=20)
        self.reader.join(5)
        return err


def _stream_notifications(url: str, job_id: str) -> list[tuple[str, str]]:
    """(title, message) of every notification frame ``job_id`` has in the PEFT_JOBS stream (a bare nats-py read)."""
    import asyncio

    import nats

    from peft_notify import wire

    async def read() -> list[tuple[str, str]]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            last = (await js.stream_info("PEFT_JOBS")).state.last_seq
            found = []
            for seq in range(1, last + 1):
                msg = await js.get_msg("PEFT_JOBS", seq)
                if msg.subject == f"peft.jobs.{job_id}" and msg.data:
                    env = wire.decode(msg.data)
                    if isinstance(env.data, wire.NotificationEvent):
                        found.append((env.data.title, env.data.message))
            return found
        finally:
            await nc.close()

    return asyncio.run(read())


def test_a_restarted_watch_resumes_after_the_last_stream_message_it_processed(
    natsd: NatsServer, tmp_path: Path
) -> None:
    """watch follows a job, is stopped (Ctrl-C), the job publishes more, watch starts again: it
    prints exactly what came meanwhile and afterwards — nothing it had printed, nothing missed —
    from its cursor file (0600, its own, not the app's); --no-resume starts afresh."""
    import peft_notify

    source = f"nats://127.0.0.1:{natsd.port}"
    cursors = tmp_path / "data" / "peft-notify" / "watch-nats-cursors.json"
    with peft_notify.job("resume", total_steps=100, job_id="resume-w", nats=natsd.url, linger=0) as job:
        job.progress(1, loss=1.0)
        first = _Watch(source)
        first.wait_for(lambda: any(r.get("connection") == "connected" and "resume-w" in str(r.get("url"))
                                   for r in first.records()), "the job")  # fmt: skip
        job.notify("note 1", "before the stop (1)")
        job.notify("note 2", "before the stop (2)")
        first.wait_for(lambda: any(t == "note 2" for _a, t, _m in first.events()), "note 2")
        err = first.interrupt()
        assert first.proc.returncode == 130, err
        assert cursors.stat().st_mode & 0o777 == 0o600 and json.loads(cursors.read_text())
        assert not (tmp_path / "data" / "peft-notify" / "nats-cursors.json").exists()  # the app's stays untouched

        job.progress(60, loss=0.5)
        job.notify("note 3", "while watch was stopped (3)")
        job.warning("note 4: while watch was stopped")
        deadline = time.monotonic() + 20
        while not any("note 4" in t + m for t, m in _stream_notifications(natsd.url, "resume-w")):
            assert time.monotonic() < deadline, "the job never published note 4"
            time.sleep(0.1)

        second = _Watch(source)
        second.wait_for(lambda: any("note 4" in t + m for _a, t, m in second.events()), "note 4")
        job.notify("note 5", "after the restart (5)")
        second.wait_for(lambda: any(t == "note 5" for _a, t, _m in second.events()), "note 5")
    second.wait_for(lambda: any("complete" in t.lower() for _a, t, _m in second.events()), "the completion")
    err = second.interrupt()
    assert second.proc.returncode == 130, err

    before = [(t, m) for _a, t, m in first.events()]
    after = [(t, m) for _a, t, m in second.events()]
    assert not set(before) & set(after), (before, after)  # nothing printed twice
    assert len(set(after)) == len(after), after
    published = _stream_notifications(natsd.url, "resume-w")
    assert {"note 1", "note 2", "note 3", "note 5"} <= {t for t, _m in published}
    assert sorted(published) == sorted(p for p in before + after if p in published)  # each once, none missed
    assert [t for _a, t, _m in second.events() if t.startswith("note")][:1] == ["note 3"]  # resumed right after note 2

    again = _Watch("--no-resume", source)  # opt-out: from the start of the stream's recent past
    again.wait_for(lambda: any(t == "note 1" for _a, t, _m in again.events()), "note 1 without the cursor")
    again.interrupt()
