"""``peft-notify watch``: a headless terminal monitor for one job URL or every local job.

Feeds each envelope from :class:`~peft_notify.desktop.client.JobClient` to the engine and prints
the decided actions: human-readable lines (with a live progress line and OSC 9;4 progress
on a TTY) or, with ``--json``, one JSON object per action. Exit status: 0 completed,
1 failed, 130 cancelled, 2 connection refused / protocol error / nothing to watch / gave up.

Retries use :func:`~peft_notify.desktop.client.backoff`. A job that never answered is given up
after ``--give-up`` seconds (default 30: a typo in the URL should not hang a script); a
job that was reached and then lost is retried forever (a restarting job or a flaky SSH
tunnel comes back), unless ``--give-up-lost`` sets a limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, is_dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # imported where used: registering the sub-command stays cheap
    from peft_notify import wire

EXIT_CODES = {"completed": 0, "failed": 1, "cancelled": 130}


def register(subparsers: Any) -> None:
    """Add the ``watch`` sub-command."""
    p = subparsers.add_parser(
        "watch",
        help="follow a training job in the terminal",
        description="Follow a job (URL) or all local jobs (--local) and print what the desktop app would show.",
    )
    p.add_argument("url", nargs="?", help="ws://HOST:PORT/ws/notifications/JOB (http:// also accepted)")
    p.add_argument("--local", action="store_true", help="watch every job found in the local discovery directory")
    p.add_argument("--token", help="access token (or ?token= in the URL)")
    p.add_argument("--since", type=int, help="replay events after this sequence number")
    p.add_argument("--json", action="store_true", help="one JSON object per decided action")
    p.add_argument(
        "--give-up",
        type=float,
        default=30.0,
        metavar="S",
        help="stop (exit 2) when the job has not answered within S seconds (default 30; 0 = never)",
    )
    p.add_argument(
        "--give-up-lost",
        type=float,
        default=0.0,
        metavar="S",
        help="stop (exit 2) when a job that was reached stays unreachable S seconds (default 0 = never)",
    )
    osc = p.add_mutually_exclusive_group()
    osc.add_argument("--osc", dest="osc", action="store_true", default=None, help="force OSC 9;4 progress")
    osc.add_argument("--no-osc", dest="osc", action="store_false", help="never emit OSC 9;4 progress")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler: returns the exit status described in the module docstring."""
    if bool(args.url) == bool(args.local):
        print("peft-notify watch: give a job URL or --local (not both)", file=sys.stderr)
        return 2
    targets: list[tuple[str, str | None]]
    if args.local:
        from peft_notify.discovery import list_job_files

        targets = [(job.url, job.token) for job in list_job_files()]
        if not targets:
            print("peft-notify watch: no local jobs found", file=sys.stderr)
            return 2
    else:
        targets = [(args.url, args.token)]
    watcher = Watcher(
        sys.stdout, json_lines=args.json, osc=args.osc, give_up=args.give_up, give_up_lost=args.give_up_lost
    )
    try:
        return asyncio.run(watcher.watch(targets, since=args.since))
    except KeyboardInterrupt:
        watcher.close()
        return 130


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class Watcher:
    """Engine + printers for any number of job connections on one asyncio loop."""

    def __init__(
        self,
        out: TextIO,
        *,
        json_lines: bool = False,
        osc: bool | None = None,
        give_up: float = 30.0,
        give_up_lost: float = 0.0,
    ) -> None:
        from peft_notify.engine import Engine, EngineConfig
        from peft_notify.termprogress import OscProgress

        self.out = out
        self.json_lines = json_lines
        self.engine = Engine(EngineConfig())
        self.osc = OscProgress(out, enabled=False if json_lines else osc)
        try:
            self.tty = out.isatty() and not json_lines
        except (AttributeError, ValueError):
            self.tty = False
        self.final: dict[str, str] = {}
        self.give_up = give_up
        self.give_up_lost = give_up_lost
        self.gave_up: list[str] = []
        self._line_open = False

    async def watch(self, targets: list[tuple[str, str | None]], since: int | None = None) -> int:
        from peft_notify.desktop.client import ClientState, ConnectionEvent, JobClient

        problems: list[ClientState] = []
        links: list[_Link] = []

        def make(url: str, token: str | None) -> JobClient:
            link = _Link(url)

            def on_event(event: ConnectionEvent) -> None:
                if event.state in (ClientState.AUTH_REFUSED, ClientState.PROTOCOL_ERROR):
                    problems.append(event.state)
                link.on_event(event, time.monotonic())
                self._print_event(url, event.state.value, event.detail, event.retry_in)

            client = JobClient(url, token, on_message=self.on_message, on_event=on_event, since=since)
            link.client = client
            links.append(link)
            return client

        clients = [make(url, token) for url, token in targets]
        tasks = [asyncio.create_task(self._tick_forever())]
        tasks += [asyncio.create_task(self._guard(link)) for link in links]
        try:
            await asyncio.gather(*(client.run() for client in clients))
        finally:
            for task in tasks:
                task.cancel()
            self.close()
        if (problems or self.gave_up) and not self.final:
            return 2
        codes = [EXIT_CODES.get(state, 1) for state in self.final.values()]
        return max(codes) if codes else 2

    def on_message(self, env: wire.Envelope) -> None:
        from peft_notify import wire
        from peft_notify.ports import DndState

        job_id = env.job_id or ""
        state = env.data.state if isinstance(env.data, (wire.Status, wire.Hello)) else None
        if state is not None and state.finished:
            self.final[job_id] = state.value
        actions = self.engine.feed(env, now=time.time(), dnd=DndState.OFF, job_id=job_id)
        self._perform(actions)
        if self.tty and isinstance(env.data, (wire.Progress, wire.Hello)):
            self._progress_line(job_id)

    async def _guard(self, link: _Link) -> None:
        """Stop a client that never answered within ``give_up`` s, or stayed lost ``give_up_lost`` s."""
        started = time.monotonic()
        while link.client is not None and not link.client.state.terminal:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            if not link.reached and self.give_up > 0 and now - started >= self.give_up:
                why = f"it never answered within {self.give_up:g} s"
            elif link.lost_since is not None and self.give_up_lost > 0 and now - link.lost_since >= self.give_up_lost:
                why = f"it stayed unreachable for {self.give_up_lost:g} s"
            else:
                continue
            last = f" (last error: {link.detail})" if link.detail else ""
            self.gave_up.append(link.url)
            print(f"peft-notify watch: gave up on {link.url}: {why}{last}", file=sys.stderr, flush=True)
            link.client.stop()
            return

    async def _tick_forever(self) -> None:
        from peft_notify.ports import DndState

        while True:
            due = self.engine.next_tick_at()
            now = time.time()
            await asyncio.sleep(1.0 if due is None else min(1.0, max(0.05, due - now)))
            self._perform(self.engine.tick(now=time.time(), dnd=DndState.OFF))

    def _perform(self, actions: list[Any]) -> None:
        from peft_notify import wire
        from peft_notify.engine import ClearTaskbar, MergeRepeat, Notify, Record, SetTaskbar

        for action in actions:
            if isinstance(action, SetTaskbar):
                self.osc.set_taskbar(action.state, action.value)
            elif isinstance(action, ClearTaskbar):
                self.osc.clear()
            if self.json_lines:
                record = {"action": type(action).__name__, **_jsonable(action)}
                self._write(json.dumps(record, ensure_ascii=False))
            elif isinstance(action, Notify):
                e = action.event
                level = wire.UrgencyLevel(e.urgency).value.upper()
                self._write(f"[{_now()}] {level:8} {e.title} — {e.message}".rstrip(" —"))
            elif isinstance(action, Record):
                self._write(f"[{_now()}] (not shown: {action.reason.value}) {action.event.title}")
            elif isinstance(action, MergeRepeat):
                self._write(f"[{_now()}] (repeated ×{action.repeat}) {action.event.title}")

    def _progress_line(self, job_id: str) -> None:
        view = self.engine.job(job_id)
        if view is None:
            return
        frac = view.fraction or 0.0
        bar = "#" * round(frac * 24)
        total = "?" if view.total_steps is None else str(view.total_steps)
        loss = "" if view.loss is None else f"  loss {view.loss:.4g}"
        eta = "" if view.eta_s is None else f"  ETA {int(view.eta_s // 60)}m{int(view.eta_s % 60):02d}s"
        self.out.write(f"\r{view.name[:24]} [{bar:<24}] {frac:4.0%} {view.current_step}/{total}{loss}{eta}\x1b[K")
        self.out.flush()
        self._line_open = True

    def _print_event(self, url: str, state: str, detail: str, retry_in: float | None) -> None:
        if self.json_lines:
            self._write(json.dumps({"connection": state, "url": url, "detail": detail, "retry_in": retry_in}))
            return
        if state in ("connecting", "connected", "finished", "stopped"):
            return
        retry = f" (retrying in {retry_in:.1f}s)" if retry_in is not None else ""
        print(f"[{_now()}] {state}: {detail}{retry}", file=sys.stderr, flush=True)

    def _write(self, line: str) -> None:
        if self._line_open:
            self.out.write("\r\x1b[K")
            self._line_open = False
        self.out.write(line + "\n")
        self.out.flush()

    def close(self) -> None:
        if self._line_open:
            self.out.write("\n")
            self._line_open = False
        self.osc.clear()


class _Link:
    """What the give-up guard knows about one connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: Any = None
        self.reached = False
        self.lost_since: float | None = None
        self.detail = ""

    def on_event(self, event: Any, now: float) -> None:
        from peft_notify.desktop.client import ClientState

        if event.state is ClientState.CONNECTED:
            self.reached, self.lost_since, self.detail = True, None, ""
        elif event.state is ClientState.RECONNECTING:
            self.detail = event.detail
            if self.reached and self.lost_since is None:
                self.lost_since = now


def _now() -> str:
    return time.strftime("%H:%M:%S")
