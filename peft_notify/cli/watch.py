"""``peft-notify watch``: a headless terminal monitor for one job URL or every local job.

Runs the desktop side's :class:`~peft_notify.desktop.monitor.Monitor` (the same connections,
engine feeding, ticks and job identity as the app) with a terminal printer as its performer:
human-readable lines for the decided actions (with a live progress line and OSC 9;4 progress
on a TTY) or, with ``--json``, one JSON object per action. Exit status: 0 completed,
1 failed, 130 cancelled, 2 connection refused / protocol error / nothing to watch / gave up.

Retries use :func:`~peft_notify.desktop.frames.backoff`. A job that never answered is given up
after ``--give-up`` seconds (default 30: a typo in the URL should not hang a script); a
job that was reached and then lost is retried forever (a restarting job or a flaky SSH
tunnel comes back), unless ``--give-up-lost`` sets a limit.

``--local`` follows the jobs announced on this machine; started before any, it says so and
waits for the first (``--timeout S`` gives up, exit 2), then follows it — from its first
message when it is less than a minute old, so its milestones are announced. ``--all`` keeps
watching and follows every local job as it starts, until Ctrl-C.

A ``nats://`` source resumes after the last stream message it processed, also after a restart:
the position is kept in ``watch-nats-cursors.json`` (0600) beside the app's history
(``--no-resume``: start afresh, from the last day of the stream).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from peft_notify.cli import natsarg
from peft_notify.cli import notify as notify_args
from peft_notify.cli.args import UsageError, client_token, index, seconds

# Everything else is imported where used: registering the sub-command stays cheap.
if TYPE_CHECKING:
    from peft_notify.channels import ChannelSpec

__all__ = ["EXIT_CODES", "Watcher", "register", "run"]

EXIT_CODES = {"completed": 0, "failed": 1, "cancelled": 130}


def register(subparsers: Any) -> None:
    """Add the ``watch`` sub-command."""
    p = subparsers.add_parser(
        "watch",
        help="follow a training job in the terminal",
        description="Follow a job (URL) or all local jobs (--local) and print what the desktop app would show.",
    )
    p.add_argument(
        "url",
        nargs="?",
        help="ws://HOST:PORT/ws/notifications/JOB (http:// also accepted), or a NATS server "
        "nats://[TOKEN@]HOST:PORT[/peft.jobs.>] / tls://... to follow every job published there (docs/cluster.md)",
    )
    p.add_argument(
        "--insecure", action="store_true", help="allow nats:// (clear text) to a host that is not this machine"
    )
    p.add_argument(
        "--local",
        action="store_true",
        help="watch the jobs running on this machine; with none yet, wait for the first one to start",
    )
    p.add_argument(
        "--all",
        dest="follow_all",
        action="store_true",
        help="with --local (implied): keep watching, and follow every local job as it starts (Ctrl-C ends)",
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        default=0.0,
        metavar="S",
        help="with --local: stop (exit 2) when no local job has started within S seconds (default 0 = wait)",
    )
    p.add_argument("--token", help="access token (default $PEFT_NOTIFY_TOKEN; on the command line others can read it)")
    p.add_argument("--since", type=index, help="replay events after this sequence number")
    p.add_argument("--json", action="store_true", help="one JSON object per decided action")
    p.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="nats://: start afresh instead of after the last stream message an earlier watch processed",
    )
    p.add_argument(
        "--give-up",
        type=seconds,
        default=30.0,
        metavar="S",
        help="stop (exit 2) when the job has not answered within S seconds (default 30; 0 = never)",
    )
    p.add_argument(
        "--give-up-lost",
        type=seconds,
        default=0.0,
        metavar="S",
        help="stop (exit 2) when a job that was reached stays unreachable S seconds (default 0 = never)",
    )
    osc = p.add_mutually_exclusive_group()
    osc.add_argument("--osc", dest="osc", action="store_true", default=None, help="force OSC 9;4 progress")
    osc.add_argument("--no-osc", dest="osc", action="store_false", help="never emit OSC 9;4 progress")
    notify_args.add_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler: returns the exit status described in the module docstring."""
    local = args.local or args.follow_all
    if bool(args.url) == local:
        raise UsageError("give a job URL or --local/--all (not both)")
    channels = notify_args.specs(args)
    token = client_token("watch", args.token, [] if local else [args.url])
    targets = [] if local else [(natsarg.checked_url(args.url, insecure=args.insecure), token)]
    if local:
        from peft_notify.discovery import runtime_dir

        try:
            runtime_dir()  # waiting on a directory nobody can safely use would be forever
        except OSError as exc:
            print(f"peft-notify watch: cannot look for local jobs: {printable(exc)}", file=sys.stderr, flush=True)
            return 2
    watcher = Watcher(
        sys.stdout,
        json_lines=args.json,
        osc=args.osc,
        give_up=args.give_up,
        give_up_lost=args.give_up_lost,
        channels=channels,
        nats_insecure=args.insecure,
        nats_cursors=nats_cursor_path() if args.resume else None,
    )
    try:
        return asyncio.run(
            watcher.watch(targets, since=args.since, local=local, follow_all=args.follow_all, timeout=args.timeout)
        )
    except KeyboardInterrupt:
        watcher.close()
        # --all ends with Ctrl-C: that is its normal end, so the jobs' outcome is the status.
        return watcher.exit_status() if args.follow_all and watcher.final else 130


def nats_cursor_path() -> Path:
    """Where ``watch`` keeps its NATS stream positions: beside the app's ``nats-cursors.json``, but
    its own file (a watch that ran must not move the app's position past what the app has shown)."""
    from peft_notify.desktop.history import default_history_path

    return default_history_path().with_name("watch-nats-cursors.json")


def printable(text: object, *, multiline: bool = False) -> str:
    """:func:`peft_notify.termsafe.printable`, imported on first use (registering stays cheap)."""
    from peft_notify import termsafe

    return termsafe.printable(text, multiline=multiline)


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
    """A monitor whose performer prints, for any number of job connections on one asyncio loop."""

    def __init__(
        self,
        out: TextIO,
        *,
        json_lines: bool = False,
        osc: bool | None = None,
        give_up: float = 30.0,
        give_up_lost: float = 0.0,
        channels: Sequence[ChannelSpec] = (),
        nats_insecure: bool = False,
        nats_cursors: Path | None = None,
    ) -> None:
        from peft_notify.desktop.channels import DesktopChannels
        from peft_notify.desktop.monitor import Monitor
        from peft_notify.engine import Engine, EngineConfig
        from peft_notify.termprogress import OscProgress

        self.out = out
        self.json_lines = json_lines
        self.engine = Engine(EngineConfig(resources=_resource_thresholds()))
        self.osc = OscProgress(out, enabled=False if json_lines else osc)
        try:
            self.tty = out.isatty() and not json_lines
        except (AttributeError, ValueError):
            self.tty = False
        self.final: dict[str, str] = {}  # connection URL -> final job state
        self.problems = 0  # connections refused (token) or not speaking the protocol
        self.give_up = give_up
        self.give_up_lost = give_up_lost
        self.gave_up: list[str] = []
        self._links: dict[str, _Link] = {}
        self._line_open = False
        self._notes_said: set[str] = set()  # jobs whose "not watched" resource notes were printed
        self._group_counts: dict[str, tuple[int, ...]] = {}  # group id -> counts last printed
        # No DND probe: a terminal monitor shows everything (DND counts as off).
        self.monitor = Monitor(
            engine=self.engine,
            performer=self,
            client_factory=_make_client,
            on_event=self.on_monitor_event,
            nats_insecure=nats_insecure,  # a NATS source runs until interrupted (docs/cluster.md)
            nats_cursors=nats_cursors,  # None: resume only after a reconnect, not after a restart
        )
        # --notify: the same channels the app has (jobs that deliver themselves are skipped).
        self.channels = DesktopChannels(channels) if channels else None

    async def watch(
        self,
        targets: list[tuple[str, str | None]],
        since: int | None = None,
        *,
        local: bool = False,
        follow_all: bool = False,
        timeout: float = 0.0,
    ) -> int:
        """Follow ``targets`` (URL, token) until every connection has ended; the exit status.

        ``local``: follow the jobs of this machine's discovery directory instead, waiting for
        the first one when there is none yet (up to ``timeout`` s; 0 = forever). A job that
        started less than a minute ago is followed from its first message. ``follow_all``:
        keep discovering and follow every local job as it appears, until cancelled.
        """
        if local:
            from peft_notify.discovery import list_job_files, runtime_dir

            self.monitor.discover, self.monitor.discovery_dir = list_job_files, runtime_dir
            self.monitor.discovering = True
        for url, token in targets:
            try:
                self.monitor.add(url, token, since=since)
            except ValueError as exc:
                print(f"peft-notify watch: {printable(exc)}", file=sys.stderr, flush=True)
                self.problems += 1
                continue
            self._links[url.strip()] = _Link(url.strip())
        self.monitor.start()
        guards = [asyncio.create_task(self._guard(link)) for link in self._links.values()]
        try:
            if local and not await self._first_local_jobs(timeout):
                return 2
            if local and not follow_all:
                self.monitor.set_discovery(False)  # the jobs found: follow them to their end
            await self.monitor.wait_clients()
            while follow_all:  # new jobs come through discovery until Ctrl-C
                await asyncio.sleep(0.2)
                await self.monitor.wait_clients()
            self.monitor.end_groups()  # no more jobs will come: each finished sweep's one summary now
            await self.monitor.drain()  # the last notifications are printed before exiting
        finally:
            for task in guards:
                task.cancel()
            await self.monitor.shutdown()
            if self.channels is not None:  # the last messages get up to 15 s, off the loop
                await asyncio.to_thread(self.channels.close, 15.0)
            self.close()
        return self.exit_status()

    def exit_status(self) -> int:
        """0 completed, 1 failed, 130 cancelled (the worst over the jobs); 2 when nothing could be followed."""
        if (self.problems or self.gave_up) and not self.final:
            return 2
        codes = [EXIT_CODES.get(state, 1) for state in self.final.values()]
        return max(codes) if codes else 2

    async def _first_local_jobs(self, timeout: float) -> bool:
        """Follow the local jobs there are; with none, say so and wait for one (False: none in ``timeout`` s)."""
        if not self.monitor.connections:
            self.monitor.discover_now()
        if self.monitor.connections:
            return True
        limit = f" (up to {timeout:g} s)" if timeout > 0 else "; Ctrl-C to stop"
        print(f"peft-notify watch: no local job yet; waiting for one to start{limit}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + timeout if timeout > 0 else math.inf
        while not self.monitor.connections:  # the monitor's discovery adds them
            if time.monotonic() >= deadline:
                print(f"peft-notify watch: no local job started within {timeout:g} s", file=sys.stderr, flush=True)
                return False
            await asyncio.sleep(0.05)
        return True

    def on_monitor_event(self, event: Any) -> None:
        """What the monitor reports: connection states (stderr) and fed messages (progress line)."""
        from peft_notify import wire
        from peft_notify.desktop.frames import ClientState
        from peft_notify.desktop.monitor import Decided, LinkChanged, MessageFed

        if self.channels is not None:
            if isinstance(event, MessageFed):
                self.channels.observe(event.envelope, event.connection.job_key)
            elif isinstance(event, Decided):
                self.channels.decided(event.actions, self.engine.job)
        if isinstance(event, MessageFed):
            body = event.envelope.data
            state = body.state if isinstance(body, (wire.Status, wire.Hello)) else None
            if state is not None and state.finished:
                self.final[event.connection.url] = state.value
            if self.tty and isinstance(body, (wire.Progress, wire.Hello)):
                self._progress_line(event.connection.job_key)
            self._group_line(event.connection.job_key)
            if isinstance(body, wire.Hello) and body.resource_notes and event.connection.url not in self._notes_said:
                self._notes_said.add(event.connection.url)  # once per job, not per reconnect
                for note in body.resource_notes:
                    print(f"[{_now()}] {printable(body.name)}: {printable(note)}", file=sys.stderr, flush=True)
        elif isinstance(event, LinkChanged):
            conn = event.connection
            if conn.state in (ClientState.AUTH_REFUSED, ClientState.PROTOCOL_ERROR):
                self.problems += 1
            link = self._links.get(conn.url)
            if link is not None:
                link.on_state(conn.state, conn.detail, time.monotonic())
            self._print_event(conn.url, conn.state.value, conn.detail, conn.retry_in)

    async def _guard(self, link: _Link) -> None:
        """Stop a client that never answered within ``give_up`` s, or stayed lost ``give_up_lost`` s."""
        started = time.monotonic()
        while True:
            conn = self.monitor.connections.get(link.url)
            if conn is None or conn.state.terminal:
                return
            await asyncio.sleep(0.1)
            now = time.monotonic()
            if not link.reached and self.give_up > 0 and now - started >= self.give_up:
                why = f"it never answered within {self.give_up:g} s"
            elif link.lost_since is not None and self.give_up_lost > 0 and now - link.lost_since >= self.give_up_lost:
                why = f"it stayed unreachable for {self.give_up_lost:g} s"
            else:
                continue
            from peft_notify.desktop.frames import shown_url

            last = f" (last error: {printable(link.detail)})" if link.detail else ""
            self.gave_up.append(link.url)
            shown = shown_url(link.url)
            print(f"peft-notify watch: gave up on {shown}: {why}{last}", file=sys.stderr, flush=True)
            self.monitor.stop(link.url)
            return

    async def perform(self, actions: Sequence[Any]) -> None:
        """The monitor's performer: print the decided actions (and drive OSC 9;4 progress)."""
        from peft_notify import wire
        from peft_notify.desktop.dispatch import named
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
                view = self.engine.job(action.job_id)
                e = named(action.event, getattr(view, "name", "") or "")  # like the app's popups
                level = wire.UrgencyLevel(e.urgency).value.upper()
                self._write(f"[{_now()}] {level:8} {e.title} — {e.message}".rstrip(" —"))
            elif isinstance(action, Record):
                self._write(f"[{_now()}] (not shown: {action.reason.value}) {action.event.title}")
            elif isinstance(action, MergeRepeat):
                self._write(f"[{_now()}] (repeated ×{action.repeat}) {action.event.title}")

    def _group_line(self, job_key: str) -> None:
        """One line when the counts of ``job_key``'s group change: "group sweep: 3/40 ended — ..."."""
        group_id = self.engine.group_of(job_key)
        view = None if group_id is None else self.engine.group(group_id)
        if view is None:
            return
        counts = (view.round, view.total, view.running, view.done, view.failed, view.pruned, view.cancelled)
        if self._group_counts.get(view.group_id) == counts:
            return
        self._group_counts[view.group_id] = counts
        if self.json_lines:
            self._write(json.dumps({"group": _jsonable(view)}, ensure_ascii=False))
            return
        from peft_notify.engine.groups import format_number

        ended = view.done + view.failed + view.pruned + view.cancelled
        parts = [f"{view.running} running", f"{view.done} ok", f"{view.failed} failed"]
        parts += [f"{n} {w}" for n, w in ((view.pruned, "pruned"), (view.cancelled, "cancelled")) if n]
        best = "" if view.best_value is None else f"; best {view.best_metric} {format_number(view.best_value)}"
        self._write(f"[{_now()}] group {view.name}: {ended}/{view.total} ended — {', '.join(parts)}{best}")

    def _progress_line(self, job_key: str) -> None:
        view = self.engine.job(job_key)
        if view is None:
            return
        frac = view.fraction or 0.0
        bar = "#" * round(frac * 24)
        total = "?" if view.total_steps is None else str(view.total_steps)
        loss = "" if view.loss is None else f"  loss {view.loss:.4g}"
        eta = "" if view.eta_s is None else f"  ETA {int(view.eta_s // 60)}m{int(view.eta_s % 60):02d}s"
        name = printable(view.name)[:24]
        self.out.write(f"\r{name} [{bar:<24}] {frac:4.0%} {view.current_step}/{total}{loss}{eta}\x1b[K")
        self.out.flush()
        self._line_open = True

    def _print_event(self, url: str, state: str, detail: str, retry_in: float | None) -> None:
        from peft_notify.desktop.frames import shown_url

        if self.json_lines:
            self._write(
                json.dumps({"connection": state, "url": shown_url(url), "detail": detail, "retry_in": retry_in})
            )
            return
        if state in ("connecting", "connected", "finished", "stopped"):
            return
        retry = f" (retrying in {retry_in:.1f}s)" if retry_in is not None else ""
        print(f"[{_now()}] {state}: {printable(detail)}{retry}", file=sys.stderr, flush=True)

    def _write(self, line: str) -> None:
        if self._line_open:
            self.out.write("\r\x1b[K")
            self._line_open = False
        # Every line quotes job text: escape sequences in it must not reach the terminal (issue 10 item 4).
        from peft_notify.termsafe import json_safe

        self.out.write((json_safe(line) if self.json_lines else printable(line, multiline=True)) + "\n")
        self.out.flush()

    def close(self) -> None:
        if self._line_open:
            self.out.write("\n")
            self._line_open = False
        self.osc.clear()


def _make_client(url: str, token: str | None, on_message: Any, on_event: Any, since: int | None) -> Any:
    """The monitor's client factory: a real :class:`~peft_notify.desktop.client.JobClient`."""
    from peft_notify.desktop.client import JobClient

    return JobClient(url, token, on_message=on_message, on_event=on_event, since=since)


class _Link:
    """What the give-up guard knows about one connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.reached = False
        self.lost_since: float | None = None
        self.detail = ""

    def on_state(self, state: Any, detail: str, now: float) -> None:
        from peft_notify.desktop.frames import ClientState

        if state is ClientState.CONNECTED:
            self.reached, self.lost_since, self.detail = True, None, ""
        elif state is ClientState.RECONNECTING:
            self.detail = detail
            if self.reached and self.lost_since is None:
                self.lost_since = now


def _resource_thresholds() -> Any:
    """The ``[resources]`` table of the user's settings, as the app uses it (docs/resources.md)."""
    from peft_notify.desktop.settings import load_settings
    from peft_notify.engine.resources import ResourceThresholds

    return ResourceThresholds.from_mapping(dict(load_settings().resources))


def _now() -> str:
    return time.strftime("%H:%M:%S")
