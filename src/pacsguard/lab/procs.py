"""Processes of the loopback lab: free ports, waiting for a listener, clean stops."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pacsguard.core.errors import PacsguardError

LOOPBACK = "127.0.0.1"


class LabError(PacsguardError):
    """The lab could not start (a tool is missing or a server did not come up)."""


# Set by a test runner that runs several processes at once (pytest-xdist workers): each
# process then takes its ports from its own range, in turn, below the kernel's ephemeral range,
# so two processes can never be handed the same port between choosing it and binding it.
PORT_RANGE: range | None = None
_next_in_range = 0


def _bound() -> socket.socket:
    global _next_in_range
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if PORT_RANGE is None:
        sock.bind((LOOPBACK, 0))
        return sock
    for _ in range(len(PORT_RANGE)):
        port = PORT_RANGE[_next_in_range % len(PORT_RANGE)]
        _next_in_range += 1
        try:
            sock.bind((LOOPBACK, port))
            return sock
        except OSError:
            continue  # something else holds it: the next one
    sock.close()
    raise LabError(f"no free port left in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with _bound() as sock:
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (held open together while choosing)."""
    socks = []
    try:
        for _ in range(count):
            socks.append(_bound())
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


def tool(name: str) -> str:
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if path is None:
        raise LabError(f"{name} is not installed (see scripts/debian-packages.txt)")
    return path


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if the test or benchmark process dies abruptly."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# DCMTK and Orthanc leave Nagle's algorithm on unless told (~40 ms per instance: DESIGN.md).
NODELAY_ENV = {"TCP_NODELAY": "1"}


class Server:
    """A lab server process, run with TCP_NODELAY=1; its output goes to a log file."""

    def __init__(self, name: str, argv: list[str], log: Path, cwd: Path | None = None) -> None:
        self.name = name
        self.log = log
        self._handle = log.open("wb")
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **NODELAY_ENV},
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def wait_port(self, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LabError(f"{self.name} exited with {self.process.returncode}; see {self.log}")
            if listening(port):
                return
            time.sleep(0.05)
        raise LabError(f"{self.name} did not listen on port {port} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        with contextlib.suppress(OSError):
            self._handle.close()


def run(argv: list[str], log: Path, timeout: float = 120.0) -> None:
    """Run a helper (storescu, openssl, ...) to completion; an error names its log."""
    with log.open("ab") as handle:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if done.returncode != 0:
        raise LabError(f"{Path(argv[0]).name} failed with {done.returncode}; see {log}")
