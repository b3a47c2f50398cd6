"""``peft-notify run -- CMD ...``: serve a job for an unmodified training command.

The command's stdout and stderr pass through unchanged: through a pty when ours is a
terminal (POSIX; tqdm keeps drawing bars), through pipes otherwise (``PYTHONUNBUFFERED=1``
so Python children flush as they go). Progress comes from its output (tqdm bars,
Transformers log dicts; see :mod:`peft_notify.emitter.outparse`) unless the child reports
itself: the child inherits ``PEFT_NOTIFY_FD`` (a pipe), ``PEFT_NOTIFY_JOB_ID`` and
``PEFT_NOTIFY_URL``, and ``peft_notify.job()`` / the callbacks inside it then report
through that pipe instead of starting a second server — one job, reported once.
Exit 0 → completed; otherwise an error (OOM / CUDA recognised in the output) with the exit
code and the last lines of stderr, then failed. SIGINT/SIGTERM are forwarded to the child;
the exit status is the child's (128 + N when it died of signal N).

The job advertises ``cancel``, and ``retry`` and ``dismiss`` while ``--retry-wait`` is above 0.
``retry`` from the app relaunches CMD as a new run (new ``run_id``; connected clients get a
fresh ``hello`` and start its milestones over): at once while the child runs (it is terminated
first), or after a failure while the retry window is open. The window opens only when a
desktop client is subscribed at the moment of failure (nobody else could press Retry; without
one ``run`` exits at once, as scripts expect): ``run`` keeps serving up to ``--retry-wait``
seconds (default 600) with a countdown on stderr, and ends it at once on Ctrl-C, on the
desktop's ``dismiss`` (the user dismissed the failure notification) or at the end — always
with the child's exit status.
OSC 9;4 terminal progress follows the bars on a supporting terminal (``--osc/--no-osc``).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from peft_notify.cli import grouparg, natsarg
from peft_notify.cli import notify as notify_args
from peft_notify.cli.args import UsageError, job_id, port, seconds, url_with_token, warn_token_in_argv

if TYPE_CHECKING:  # the emitter (via run_child) is imported by the handler: --help and other commands stay fast
    from peft_notify.cli.run_child import ChildStream, OutputMonitor

log = logging.getLogger(__name__)

DEFAULT_RETRY_WAIT = 600.0


def register(subparsers: Any) -> None:
    """Add the ``run`` sub-command."""
    p = subparsers.add_parser(
        "run",
        help="run a training command and report its progress",
        description="Run CMD unchanged, derive progress from its output and serve it as a job.",
        usage="peft-notify run [options] -- CMD [ARG ...]",
    )
    p.add_argument("--name", help="job name (default: the script's name, e.g. train.py; never its arguments)")
    p.add_argument("--job-id", type=job_id, default=None, help="job id in the URL (default: random)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=port, default=0, help="port (default: a free one)")
    p.add_argument("--token", help="require this token (generated for non-loopback binds)")
    p.add_argument("--linger", type=seconds, default=3.0, help="seconds to let clients catch up at the end")
    p.add_argument(
        "--retry-wait",
        type=seconds,
        default=DEFAULT_RETRY_WAIT,
        metavar="S",
        help="after a failure seen by a desktop client, keep serving up to S seconds so its Retry can relaunch "
        f"CMD (default {DEFAULT_RETRY_WAIT:g}; 0 = exit with the child, and offer no Retry)",
    )
    p.add_argument("--no-pty", action="store_true", help="always use pipes for the command's output")
    p.add_argument(
        "--output-dir",
        metavar="DIR",
        help="where the command writes checkpoints: warn before the disk fills (docs/resources.md)",
    )
    osc = p.add_mutually_exclusive_group()
    osc.add_argument("--osc", dest="osc", action="store_true", default=None, help="force OSC 9;4 progress")
    osc.add_argument("--no-osc", dest="osc", action="store_false", help="never emit OSC 9;4 progress")
    grouparg.add_arguments(p)
    notify_args.add_arguments(p)
    natsarg.add_arguments(p)
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command to run (after --)")
    p.set_defaults(handler=run)


class _Control:
    """What the app and signals ask for, shared by the action thread and the main thread."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.retry = threading.Event()
        self.quit = threading.Event()
        self.dismissed = threading.Event()
        self.signalled: list[int] = []
        self._lock = threading.Lock()

    def on_action(self, action: Any) -> None:
        with self._lock:
            proc = self.proc
        if action.action == "retry":
            self.retry.set()
        elif action.action == "cancel":
            self.quit.set()
        elif action.action == "dismiss":  # only ends a retry window: a running child is left alone
            self.dismissed.set()
            return
        else:
            return
        if proc is not None and proc.poll() is None:
            proc.terminate()

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.signalled.append(signum)
        self.quit.set()
        with self._lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signum)

    def started(self, proc: subprocess.Popen[bytes] | None) -> None:
        with self._lock:
            self.proc = proc


def run(args: argparse.Namespace) -> int:
    """Handler: run the command (again on ``retry``); returns its exit status (see the module docstring)."""
    from peft_notify import wire
    from peft_notify.emitter import JobServer, PortInUseError
    from peft_notify.termprogress import OscProgress

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command given (usage: peft-notify run -- python train.py)")
    group = grouparg.group_from_args(args)  # before serving: a bad --group is a usage error
    channels = notify_args.specs(args)  # --notify / $PEFT_NOTIFY_CHANNELS (issue 13); before serving
    nats = natsarg.target(args)  # --nats / $PEFT_NOTIFY_NATS (issue 15); before serving
    if args.token is not None:
        warn_token_in_argv("run")  # a generated token (the default) is never on a command line
    server = JobServer(host=args.host, port=args.port, token=args.token)
    try:
        server.start()
    except PortInUseError as exc:
        raise UsageError(exc.strerror) from None
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    name = args.name or default_name(command)
    # "dismiss" (the desktop's user dismissed the failure) ends a retry window early.
    capabilities = ["cancel", "retry", "dismiss"] if args.retry_wait > 0 else ["cancel"]
    if channels:  # the wrapper delivers (a job() inside the command reports through it)
        from peft_notify.emitter import channels as job_channels

        capabilities = list(job_channels.with_capability(capabilities, channels))
    handle = server.add_job(args.job_id, name=name, capabilities=capabilities, group=group)
    relay = job_channels.attach(server, handle, channels) if channels else None
    publisher = natsarg.publish(server, handle, nats)
    from peft_notify.emitter.resources import announce

    announce(handle, output_dir=args.output_dir)  # the hello says what is watched before the command starts
    print(f"peft-notify: serving {name!r} at {url_with_token(handle.url, server.token)}", file=sys.stderr, flush=True)
    osc = OscProgress(sys.stderr, enabled=args.osc)
    control = _Control()
    handle.on_action(control.on_action)
    previous = {sig: signal.signal(sig, control.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            control.retry.clear()
            control.dismissed.clear()
            handle.status(wire.JobState.RUNNING)
            code = _run_once(command, handle, osc, control, allow_pty=not args.no_pty, output_dir=args.output_dir)
            if code == 0 or args.retry_wait <= 0:
                break
            watched = server.subscriber_count(handle.job_id) > 0  # someone who could press Retry
            if control.retry.is_set() or (watched and _wait_for_retry(control, args.retry_wait, sys.stderr)):
                control.quit.clear()
                server.new_run(handle.job_id)
                if relay is not None:  # a fresh hello: the relaunched run's milestones go out again
                    relay.add_job(
                        handle.job_id,
                        handle.name,
                        handle.run_id,
                        started_at=handle.started_at,
                        total_steps=handle.total_steps,
                    )
                print("peft-notify run: relaunching (retry from the app)", file=sys.stderr, flush=True)
                continue
            break
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    server.stop(linger=args.linger)
    if relay is not None:  # the last channel messages (the completion or the error) get ~15 s
        relay.close()
    natsarg.close(publisher)
    if code == 0:
        osc.clear()
    return code if code >= 0 else 128 - code


def default_name(command: list[str]) -> str:
    """The job's default name: the script (``train.py``) or module (``-m pkg.train``), never the arguments.

    Arguments may hold secrets (``--hf-token hf_...``) and the name is shown to anyone with the URL.
    """
    for index, arg in enumerate(command[1:], start=1):
        if arg == "-m" and index + 1 < len(command):
            return command[index + 1].split()[0][:80] if command[index + 1].split() else "job"
        # A shell's -c string ("DBPASS=… python3 train.py") is a command line: only its script word.
        for word in arg.split():
            if word.endswith((".py", ".sh", ".ipynb")):
                return os.path.basename(word)[:80]
    return os.path.basename(command[0])[:80] or "job"


def _wait_for_retry(control: _Control, seconds: float, out: IO[str]) -> bool:
    """Wait up to ``seconds`` for a retry, with a countdown on ``out``; False on timeout, dismiss, cancel or a signal.

    On a terminal the countdown line is redrawn every second; elsewhere (a log file) it is
    written once, and the end is always said.
    """
    deadline = time.monotonic() + seconds
    live = _isatty(out)
    shown = ""
    while True:
        left = deadline - time.monotonic()
        why = _why_stop(control, left)
        if why is not None:
            if live and shown:
                _say(out, "\r\x1b[K")
            if why:
                _say(out, f"peft-notify run: {why}\n")
            return control.retry.is_set()
        line = f"peft-notify run: waiting for Retry from the desktop — {_clock(left)} left, Ctrl-C to exit"
        if live:
            if line != shown:
                _say(out, f"\r{line}\x1b[K")
        elif not shown:
            _say(out, line + "\n")
        shown = line
        control.retry.wait(min(0.1, max(0.0, left)))


def _why_stop(control: _Control, left: float) -> str | None:
    """Why the retry window ends now ("" for a retry, said elsewhere), or None while it stays open."""
    if control.retry.is_set():
        return ""
    if control.signalled:
        return "interrupted; exiting without a retry"
    if control.quit.is_set():
        return "cancelled from the desktop; exiting"
    if control.dismissed.is_set():
        return "the failure was dismissed on the desktop; exiting"
    if left <= 0:
        return "no Retry came; exiting"
    return None


def _clock(seconds: float) -> str:
    """``9:41`` for 581.2 s (rounded up: the last second shows 0:01, never 0:00)."""
    whole = max(0, math.ceil(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _say(out: IO[str], text: str) -> None:
    try:
        out.write(text)
        out.flush()
    except (OSError, ValueError):
        pass  # our terminal went away: the window still ends on time


def _run_once(
    command: list[str], handle: Any, osc: Any, control: _Control, *, allow_pty: bool, output_dir: str | None = None
) -> int:
    """Start the child, pass its output through, report its end; returns its exit status.

    While it runs, the child's process tree, the host and ``output_dir`` are sampled for the
    resource warnings (docs/resources.md)."""
    from peft_notify import wire
    from peft_notify.cli.run_child import OutputMonitor, open_stream, pump
    from peft_notify.emitter.attach import ENV_FD, ENV_JOB_ID, ENV_URL, relay
    from peft_notify.emitter.resources import start_sampler

    monitor = OutputMonitor(handle, osc)
    read_fd, write_fd = os.pipe()
    out, err = open_stream(sys.stdout, allow_pty=allow_pty), open_stream(sys.stderr, allow_pty=allow_pty)
    public_url = handle.url.split("?")[0]  # the child's environment gets the address, not the token
    env = {**os.environ, ENV_FD: str(write_fd), ENV_JOB_ID: handle.job_id, ENV_URL: public_url, "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.Popen(command, stdout=out.child_fd, stderr=err.child_fd, env=env, pass_fds=(write_fd,))
    except OSError as exc:
        for fd in (read_fd, write_fd):
            os.close(fd)
        for stream in (out, err):
            stream.close_child_end()
            stream.close()
        handle.error(f"could not start {command[0]!r}: {exc}", "system_crash")
        handle.status(wire.JobState.FAILED, str(exc))
        print(f"peft-notify run: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127
    control.started(proc)
    sampler = start_sampler(handle, pid=proc.pid, output_dir=output_dir)
    os.close(write_fd)
    for stream in (out, err):
        stream.close_child_end()
    reports = os.fdopen(read_fd, "rb")
    threads = [
        threading.Thread(target=pump, args=(out.read_fd, sys.stdout.buffer, monitor, monitor.out), daemon=True),
        threading.Thread(target=pump, args=(err.read_fd, sys.stderr.buffer, monitor, monitor.err), daemon=True),
        threading.Thread(target=relay, args=(reports, handle, monitor.on_report), daemon=True),
    ]
    for thread in threads:
        thread.start()
    code = proc.wait()
    control.started(None)
    if sampler is not None:
        sampler.stop()
    for thread in threads:
        thread.join(timeout=10)
    _close(out, err)
    reports.close()
    monitor.finish()
    _report_end(handle, monitor, code, control, osc)
    return code


def _close(*streams: ChildStream) -> None:
    for stream in streams:
        stream.close()


def _report_end(handle: Any, monitor: OutputMonitor, code: int, control: _Control, osc: Any) -> None:
    from peft_notify import wire
    from peft_notify.termprogress import OscState

    if handle.finished:  # the child reported its own end through the pipe
        return
    if code == 0:
        handle.status(wire.JobState.COMPLETED)
        return
    if control.retry.is_set():
        handle.status(wire.JobState.CANCELLED, "stopped to relaunch (retry)")
        return
    signalled = control.signalled
    if (signalled and (-code in signalled or code in (130, 143))) or (control.quit.is_set() and code < 0):
        how = signal.Signals(signalled[-1]).name if signalled else "the app (cancel)"
        handle.status(wire.JobState.CANCELLED, f"stopped by {how}")
        return
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    error_type = monitor.error_type or "system_crash"
    handle.error(f"{how}\n{monitor.tail()}".strip(), error_type)
    handle.status(wire.JobState.FAILED, how)
    osc.set(OscState.ERROR, 1.0)
