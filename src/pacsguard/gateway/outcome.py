"""What a destination's refusal means: retry it later (transient) or never (permanent).

A permanent failure is one that sending the same bytes to the same destination again cannot
fix: the destination does not take the SOP class or transfer syntax, or it says the data
set is wrong (PS3.4 B.2.3 Annex C status classes A9xx, Cxxx; PS3.7 C general statuses such
as 0122 SOP class not supported). It goes to the dead-letter folder at once, with the status
and its meaning, instead of being retried until ``max_age``; ``gateway retry DEST`` requeues
it once the destination has been changed. Out of resources (A7xx), processing failure
(0110), resource limitation (0213), no response, a lost association, HTTP 5xx, 408, 429:
transient, retried with backoff. Rules are data: the tables below.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    """Why a delivery failed (no value from the instance in it), and whether a retry can
    ever succeed."""

    reason: str
    permanent: bool = False


# PS3.7 Annex C general statuses and PS3.4 C-STORE statuses a retry cannot change.
PERMANENT_STATUS = {
    0x0105: "no such attribute",
    0x0106: "invalid attribute value",
    0x0111: "duplicate SOP instance",
    0x0112: "no such SOP instance",
    0x0115: "invalid argument value",
    0x0117: "invalid object instance",
    0x0118: "no such SOP class",
    0x0119: "class-instance conflict",
    0x0120: "missing attribute",
    0x0121: "missing attribute value",
    0x0122: "SOP class not supported",
    0x0123: "no such action",
    0x0124: "not authorized",
    0x0211: "unrecognized operation",
    0x0212: "mistyped argument",
}
TRANSIENT_STATUS = {
    0x0110: "processing failure",
    0x0210: "duplicate invocation",
    0x0213: "resource limitation",
    0xFE00: "cancelled",
}
# by the high byte (PS3.4 B.2.3): the classes the standard leaves to the implementation
PERMANENT_CLASS = {0xA9: "data set does not match SOP class", 0xC0: "cannot understand"}
TRANSIENT_CLASS = {0xA7: "out of resources"}

# HTTP statuses of a whole STOW-RS request that a resend cannot change (PS3.18 10.5.3):
# the body or media type is refused. 401/403/404 are the destination's configuration,
# fixed there, so they stay transient (retried until max_age), as are 5xx, 408 and 429.
PERMANENT_HTTP = {400: "bad request", 409: "conflict", 413: "payload too large",
                  415: "unsupported media type", 422: "unprocessable"}  # fmt: skip


def store_failure(code: int) -> Failure:
    """A C-STORE failure status (or a STOW-RS Failure Reason, the same codes)."""
    if code in PERMANENT_STATUS:
        return Failure(f"status 0x{code:04X} ({PERMANENT_STATUS[code]})", permanent=True)
    if code in TRANSIENT_STATUS:
        return Failure(f"status 0x{code:04X} ({TRANSIENT_STATUS[code]})")
    high = code >> 8
    if 0xC0 <= high <= 0xCF:
        return Failure(f"status 0x{code:04X} ({PERMANENT_CLASS[0xC0]})", permanent=True)
    if high in PERMANENT_CLASS:
        return Failure(f"status 0x{code:04X} ({PERMANENT_CLASS[high]})", permanent=True)
    if high in TRANSIENT_CLASS:
        return Failure(f"status 0x{code:04X} ({TRANSIENT_CLASS[high]})")
    return Failure(f"status 0x{code:04X}")  # unknown: retrying loses nothing


def http_failure(code: int) -> Failure:
    if code in PERMANENT_HTTP:
        return Failure(f"STOW-RS HTTP {code} ({PERMANENT_HTTP[code]})", permanent=True)
    return Failure(f"STOW-RS HTTP {code}")
