"""The child side of ``peft-notify run``: its output streams (pipes or ptys) and what we read in them.

:func:`open_stream` gives the child a pty when our own stream is a terminal (POSIX), so
tqdm, colours and line buffering behave as if the child ran directly (output
post-processing is switched off on the pty so bytes pass through unchanged); a pipe
otherwise. :func:`pump` copies one stream to ours and feeds :class:`OutputMonitor`, which
turns tqdm bars and log dicts into progress (and OSC 9;4) until the child reports itself.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import math
import os
import threading
from dataclasses import dataclass
from typing import IO, Any

from peft_notify.emitter.outparse import BarSeen, ErrorSeen, LogSeen, OutputParser
from peft_notify.termprogress import OscProgress, OscState

__all__ = ["ChildStream", "OutputMonitor", "open_stream", "pump"]

log = logging.getLogger(__name__)


@dataclass
class ChildStream:
    """One output stream of the child: the fd it writes to and the fd we read."""

    child_fd: int
    read_fd: int
    is_pty: bool

    def close_child_end(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.child_fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.read_fd)


def _isatty(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def open_stream(ours: IO[Any], *, allow_pty: bool = True) -> ChildStream:
    """A pty when ``ours`` is a terminal (POSIX and ``allow_pty``), else a pipe."""
    if allow_pty and os.name == "posix" and _isatty(ours):
        try:
            return _open_pty(ours)
        except OSError:
            log.debug("no pty available; using a pipe", exc_info=True)
    read_fd, child_fd = os.pipe()
    return ChildStream(child_fd=child_fd, read_fd=read_fd, is_pty=False)


def _open_pty(ours: IO[Any]) -> ChildStream:
    import fcntl
    import termios

    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST  # no "\n" → "\r\n": the child's bytes reach our terminal unchanged
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    with contextlib.suppress(OSError):  # same width as ours, so progress bars fit
        size = fcntl.ioctl(ours.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        if size[2:4] != b"\0\0":  # an unsized terminal (0 columns) would hide tqdm's bars
            fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
    return ChildStream(child_fd=slave, read_fd=master, is_pty=True)


class OutputMonitor:
    """Turns the child's output and pipe reports into JobHandle calls (thread-safe)."""

    def __init__(self, handle: Any, osc: OscProgress) -> None:
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
            for event in parser.feed(text):
                self._apply(event)

    def finish(self) -> None:
        with self._lock:
            for parser in (self.out, self.err):
                for event in parser.finish():
                    self._apply(event)

    def _apply(self, event: BarSeen | LogSeen | ErrorSeen) -> None:
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

    def tail(self, lines: int = 8) -> str:
        """The last lines of stderr (of stdout when stderr said nothing)."""
        return "\n".join(list(self.err.tail)[-lines:]) or "\n".join(list(self.out.tail)[-lines:])


def pump(fd: int, sink: IO[bytes], monitor: OutputMonitor, parser: OutputParser) -> None:
    """Copy ``fd`` to ``sink`` until EOF (EIO on a pty whose child is gone), parsing as we go."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
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
