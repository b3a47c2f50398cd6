"""``peft-notify run -- CMD ...``: serve a job for an unmodified training command.

The command's stdout and stderr pass through unchanged (pipes; ``PYTHONUNBUFFERED=1`` so
Python children flush as they go). Progress comes from its output (tqdm bars, Transformers
log dicts; see :mod:`peft_notify.emitter.outparse`) unless the child reports itself: the
child inherits ``PEFT_NOTIFY_FD`` (a pipe), ``PEFT_NOTIFY_JOB_ID`` and ``PEFT_NOTIFY_URL``,
and ``peft_notify.job()`` / the callbacks inside it then report through that pipe instead
of starting a second server, and output parsing of progress stops — one job, reported once.
Exit 0 → completed; otherwise an error (OOM / CUDA recognised in the output) with the exit
code and the last lines of stderr, then failed. SIGINT/SIGTERM are forwarded to the child;
the exit status is the child's (128 + N when it died of signal N).
"""

from __future__ import annotations

import argparse
import codecs
import logging
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
from typing import IO, Any

from peft_notify.emitter.outparse import BarSeen, ErrorSeen, LogSeen, OutputParser

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``run`` sub-command."""
    p = subparsers.add_parser(
        "run",
        help="run a training command and report its progress",
        description="Run CMD unchanged, derive progress from its output and serve it as a job.",
        usage="peft-notify run [options] -- CMD [ARG ...]",
    )
    p.add_argument("--name", help="job name (default: the command)")
    p.add_argument("--job-id", default=None, help="job id in the URL (default: random)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--token", help="require this token (generated for non-loopback binds)")
    p.add_argument("--linger", type=float, default=3.0, help="seconds to let clients catch up at the end")
    osc = p.add_mutually_exclusive_group()
    osc.add_argument("--osc", dest="osc", action="store_true", default=None, help="force OSC 9;4 progress")
    osc.add_argument("--no-osc", dest="osc", action="store_false", help="never emit OSC 9;4 progress")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command to run (after --)")
    p.set_defaults(handler=run)


class _Monitor:
    """Turns the child's output and pipe reports into JobHandle calls (thread-safe)."""

    def __init__(self, handle: Any, osc: Any) -> None:
        self.handle = handle
        self.osc = osc
        self.structured = False  # the child reports itself: stop guessing from output
        self.out = OutputParser()
        self.err = OutputParser()
        self._lock = threading.Lock()
        self._loss: float | None = None
        self._step: int | None = None

    def on_report(self) -> None:
        self.structured = True

    def parse(self, parser: OutputParser, text: str) -> None:
        with self._lock:
            events = parser.feed(text)
            for event in events:
                self._apply(event)

    def finish(self) -> None:
        with self._lock:
            for parser in (self.out, self.err):
                for event in parser.finish():
                    self._apply(event)

    def _apply(self, event: BarSeen | LogSeen | ErrorSeen) -> None:
        from peft_notify.termprogress import OscState

        if self.structured or isinstance(event, ErrorSeen):
            return  # errors are classified once, at exit, from the whole output
        if isinstance(event, BarSeen):
            self._step = event.step
            self.handle.progress(event.step, event.total, loss=self._loss)
            self.osc.set(OscState.VALUE, event.step / event.total)
            return
        values = event.values
        loss = values.get("loss")
        if loss is not None and not math.isfinite(loss):
            self.handle.error(f"loss is {loss} in the training log", "loss_divergence")
        elif loss is not None:
            self._loss = loss
        if self._step is not None:  # a log dict names no step: attach it to the bar's
            metrics = {k: v for k, v in values.items() if k.startswith("eval_") and math.isfinite(v)}
            self.handle.progress(
                self._step,
                loss=loss,
                learning_rate=values.get("learning_rate"),
                grad_norm=values.get("grad_norm"),
                epoch=values.get("epoch"),
                metrics=metrics or None,
            )

    @property
    def error_type(self) -> str | None:
        types = {self.err.error_type, self.out.error_type} - {None}
        if "oom_error" in types:
            return "oom_error"
        return next(iter(types), None)


def _pump(stream: IO[bytes], sink: IO[bytes], monitor: _Monitor, parser: OutputParser) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    fd = stream.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        try:
            sink.write(chunk)
            sink.flush()
        except (OSError, ValueError):
            pass  # our terminal went away; keep draining so the child never blocks
        try:
            monitor.parse(parser, decoder.decode(chunk))
        except Exception:  # parsing must never stop the pass-through
            log.debug("output parsing failed", exc_info=True)


def run(args: argparse.Namespace) -> int:
    """Handler: run the command; returns its exit status (see the module docstring)."""
    from peft_notify import wire
    from peft_notify.emitter import JobServer, PortInUseError
    from peft_notify.emitter.attach import ENV_FD, ENV_JOB_ID, ENV_URL, relay
    from peft_notify.termprogress import OscProgress

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("peft-notify run: no command given (usage: peft-notify run -- python train.py)", file=sys.stderr)
        return 2
    server = JobServer(host=args.host, port=args.port, token=args.token)
    try:
        server.start()
    except PortInUseError as exc:
        print(f"peft-notify run: {exc.strerror}", file=sys.stderr)
        return 2
    name = args.name or " ".join(shlex.quote(c) for c in command)[:80]
    handle = server.add_job(args.job_id, name=name, capabilities=["cancel"])
    url = handle.url
    print(
        f"peft-notify: serving {name!r} at {url}" + (f"?token={server.token}" if server.token else ""), file=sys.stderr
    )
    osc = OscProgress(sys.stderr, enabled=args.osc)
    monitor = _Monitor(handle, osc)
    read_fd, write_fd = os.pipe()
    env = {**os.environ, ENV_FD: str(write_fd), ENV_JOB_ID: handle.job_id, ENV_URL: url, "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, pass_fds=(write_fd,))
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        handle.error(f"could not start {command[0]!r}: {exc}", "system_crash")
        handle.status(wire.JobState.FAILED, str(exc))
        server.stop(linger=args.linger)
        print(f"peft-notify run: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127
    os.close(write_fd)
    signalled: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        signalled.append(signum)
        if proc.poll() is None:
            proc.send_signal(signum)

    handle.on_action(lambda action: proc.terminate() if action.action == "cancel" else None)
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    assert proc.stdout is not None
    assert proc.stderr is not None
    threads = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout.buffer, monitor, monitor.out), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr.buffer, monitor, monitor.err), daemon=True),
    ]
    reports = os.fdopen(read_fd, "rb")
    threads.append(threading.Thread(target=relay, args=(reports, handle, monitor.on_report), daemon=True))
    handle.status(wire.JobState.RUNNING)
    for thread in threads:
        thread.start()
    try:
        code = proc.wait()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    for thread in threads:
        thread.join(timeout=10)
    for stream in (proc.stdout, proc.stderr, reports):
        stream.close()
    monitor.finish()
    _report_end(handle, monitor, code, signalled, osc)
    server.stop(linger=args.linger)
    if code == 0:
        osc.clear()
    return code if code >= 0 else 128 - code


def _report_end(handle: Any, monitor: _Monitor, code: int, signalled: list[int], osc: Any) -> None:
    from peft_notify import wire
    from peft_notify.termprogress import OscState

    if handle.finished:  # the child reported its own end through the pipe
        return
    if code == 0:
        handle.status(wire.JobState.COMPLETED)
        return
    if signalled and (-code in signalled or code in (130, 143)):
        handle.status(wire.JobState.CANCELLED, f"stopped by {signal.Signals(signalled[-1]).name}")
        return
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    tail = "\n".join(list(monitor.err.tail)[-8:]) or "\n".join(list(monitor.out.tail)[-8:])
    error_type = monitor.error_type or "system_crash"
    handle.error(f"{how}\n{tail}".strip(), error_type)
    handle.status(wire.JobState.FAILED, how)
    osc.set(OscState.ERROR, 1.0)
