"""A-ASSOCIATE-RJ and A-ABORT fields in the words of PS3.8 (Tables 9-21 and 9-26)."""

from __future__ import annotations

RESULTS = {1: "rejected-permanent", 2: "rejected-transient"}
SOURCES = {
    1: "service-user",
    2: "service-provider (ACSE)",
    3: "service-provider (presentation)",
}
REASONS = {
    1: {
        1: "no-reason-given",
        2: "application-context-name-not-supported",
        3: "calling-AE-title-not-recognized",
        7: "called-AE-title-not-recognized",
    },
    2: {1: "no-reason-given", 2: "protocol-version-not-supported"},
    3: {0: "reserved", 1: "temporary-congestion", 2: "local-limit-exceeded"},
}
ABORT_SOURCES = {0: "service-user", 1: "reserved", 2: "service-provider"}
ABORT_REASONS = {
    0: "reason-not-specified",
    1: "unrecognized-PDU",
    2: "unexpected-PDU",
    4: "unrecognized-PDU-parameter",
    5: "unexpected-PDU-parameter",
    6: "invalid-PDU-parameter-value",
}


def _code(value: object) -> int | None:
    return value if isinstance(value, int) else None


def rejection(result: object, source: object, reason: object) -> tuple[str, str, str]:
    """Decoded (result, source, reason); unknown codes are shown as ``code N``."""
    r, s, d = _code(result), _code(source), _code(reason)
    return (
        RESULTS.get(r or -1, f"code {result}"),
        SOURCES.get(s or -1, f"code {source}"),
        REASONS.get(s or -1, {}).get(d if d is not None else -1, f"code {reason}"),
    )


def abort(source: object, reason: object) -> tuple[str, str]:
    s, d = _code(source), _code(reason)
    return (
        ABORT_SOURCES.get(s if s is not None else -1, f"code {source}"),
        ABORT_REASONS.get(d if d is not None else -1, f"code {reason}") if s == 2 else "-",
    )
