"""Politeness: global and per-host limits on new connections per second."""

from __future__ import annotations

import threading
import time

# A whole C-FIND or HTTP request may take this many times --timeout (which bounds each wait):
# a peer that trickles its answer (a response every 1.5 s, a byte a second) is left then.
WHOLE = 10


class TokenBucket:
    """Allows ``rate`` events per second on average, ``burst`` at once; thread-safe."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate / 10)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        """Take one token now (possibly going negative); return how long to wait."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> None:
        delay = self._reserve()
        if delay > 0:
            time.sleep(delay)


class RateLimits:
    """One bucket for the whole scan, one per host; each connection takes a token of both."""

    def __init__(self, global_rate: float, host_rate: float) -> None:
        self._global = TokenBucket(global_rate)
        self._host_rate = host_rate
        self._hosts: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def _host(self, host: str) -> TokenBucket:
        with self._lock:
            bucket = self._hosts.get(host)
            if bucket is None:
                bucket = self._hosts[host] = TokenBucket(self._host_rate)
            return bucket

    def acquire(self, host: str) -> None:
        self._host(host).acquire()
        self._global.acquire()
