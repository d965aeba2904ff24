"""Which ports of a host accept a TCP connection: a windowed, rate-limited connect sweep."""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections.abc import Callable, Sequence

from pacsguard.scan.ratelimit import RateLimits

WINDOW = 32


def _start(host: str, port: int) -> socket.socket | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    code = sock.connect_ex((host, port))
    if code in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
        return sock
    sock.close()
    return None


def _finish(sock: socket.socket) -> bool:
    """Whether the connection came up; closed at once either way (nothing is sent)."""
    ok = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    sock.close()
    return ok


def open_ports(
    host: str,
    ports: Sequence[int],
    limits: RateLimits,
    timeout: float,
    on_done: Callable[[int], None] | None = None,
) -> list[int]:
    """The ports of ``host`` that accept a connection, at most ``WINDOW`` attempts in flight."""
    pending = list(ports)
    pending.reverse()
    found: list[int] = []
    selector = selectors.DefaultSelector()
    deadlines: dict[socket.socket, tuple[int, float]] = {}

    def settle(sock: socket.socket, port: int, ok: bool) -> None:
        selector.unregister(sock)
        del deadlines[sock]
        if ok:
            found.append(port)
        if on_done is not None:
            on_done(port)

    try:
        while pending or deadlines:
            while pending and len(deadlines) < WINDOW:
                port = pending.pop()
                limits.acquire(host)
                sock = _start(host, port)
                if sock is None:
                    if on_done is not None:
                        on_done(port)
                    continue
                deadlines[sock] = (port, time.monotonic() + timeout)
                selector.register(sock, selectors.EVENT_WRITE)
            for key, _ in selector.select(timeout=0.05):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                settle(ready, deadlines[ready][0], _finish(ready))
            now = time.monotonic()
            for sock, (port, deadline) in list(deadlines.items()):
                if now >= deadline:
                    settle(sock, port, False)
                    sock.close()
    finally:
        for sock in deadlines:
            sock.close()
        selector.close()
    return sorted(found)
