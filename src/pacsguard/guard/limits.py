"""Per-client limits: token buckets (associations, C-FIND responses) and open associations.

Each client has its own buckets and counters, so a client that floods the guard spends its
own allowance and nobody else's.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from pacsguard.guard.config import Client


@dataclass
class TokenBucket:
    """``rate_per_minute`` tokens a minute, bursts up to ``capacity``; thread-safe."""

    rate_per_minute: float
    capacity: float
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def take(self, count: float = 1.0) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(
                self.capacity, self.tokens + (now - self.stamp) * self.rate_per_minute / 60.0
            )
            self.stamp = now
            if self.tokens >= count:
                self.tokens -= count
                return True
            return False


class ClientState:
    """The live counters of one configured client."""

    def __init__(self, client: Client) -> None:
        limits = client.limits
        self.client = client
        # A burst of a tenth of a minute's allowance (at least one) is allowed at once.
        self.associations = TokenBucket(
            limits.associations_per_minute, max(1.0, limits.associations_per_minute / 10)
        )
        self.responses = TokenBucket(
            limits.find_responses_per_minute, max(1.0, limits.find_responses_per_minute)
        )
        self._open = 0
        self._lock = threading.Lock()

    def open_association(self) -> str | None:
        """Count a new association; the reason when it is over a limit (nothing counted)."""
        with self._lock:
            if self._open >= self.client.limits.max_associations:
                return "max-associations"
            if not self.associations.take():
                return "association-rate"
            self._open += 1
            return None

    def close_association(self) -> None:
        with self._lock:
            self._open = max(0, self._open - 1)

    @property
    def open_count(self) -> int:
        return self._open
