"""Who may associate: calling AE title + source address (+ client certificate subject).

Refusals use the A-ASSOCIATE-RJ codes of PS3.8 9.3.4: a peer that is on no rule is
rejected-permanent / service-user / calling-AE-title-not-recognized (the pair it presents,
title and address, is not one this node knows); a called AE title other than ours is
called-AE-title-not-recognized.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pynetdicom import evt

from pacsguard.net import refusals
from pacsguard.net.audit import AuditLog
from pacsguard.net.tls import peer_subject

PERMANENT, TRANSIENT = 0x01, 0x02
SERVICE_USER = 0x01
NO_REASON, CALLING_AE_NOT_RECOGNIZED, CALLED_AE_NOT_RECOGNIZED = 0x01, 0x03, 0x07


@dataclass(frozen=True)
class Peer:
    """What a requestor presents: its titles, its address, its certificate subject."""

    calling_ae: str
    called_ae: str
    address: str
    port: int = 0
    subject: str | None = None

    def describe(self) -> dict[str, object]:
        peer: dict[str, object] = {"ae": self.calling_ae, "address": self.address}
        if self.subject is not None:
            peer["subject"] = self.subject
        return peer


@dataclass(frozen=True)
class Rejection:
    result: int
    source: int
    reason: int
    why: str  # for the audit log: which check refused

    @property
    def words(self) -> str:
        """The reason in PS3.8's words (they depend on the source)."""
        return refusals.rejection(self.result, self.source, self.reason)[2]


@dataclass(frozen=True)
class AllowRule:
    """One allowed peer. ``host`` is an address or a network (``10.0.0.0/24``); ``None``
    for ``ae_title``, ``host`` or ``subject`` means any."""

    ae_title: str | None = None
    host: str | None = None
    subject: str | None = None

    def __post_init__(self) -> None:
        if self.host is not None:
            ipaddress.ip_network(self.host, strict=False)  # ValueError on a bad address

    def matches(self, peer: Peer) -> bool:
        if self.ae_title is not None and peer.calling_ae.strip() != self.ae_title.strip():
            return False
        if self.host is not None and not _in_network(peer.address, self.host):
            return False
        return self.subject is None or peer.subject == self.subject


def _in_network(address: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


@dataclass(frozen=True)
class AssociationPolicy:
    """Rules are OR-ed; an empty rule list admits nobody (fail closed)."""

    rules: Sequence[AllowRule]
    called_ae: str | None = None  # None: any called AE title

    def check(self, peer: Peer) -> Rejection | None:
        if self.called_ae is not None and peer.called_ae.strip() != self.called_ae.strip():
            return Rejection(PERMANENT, SERVICE_USER, CALLED_AE_NOT_RECOGNIZED, "called-ae")
        if any(rule.matches(peer) for rule in self.rules):
            return None
        return Rejection(PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNIZED, "not-on-allow-list")

    def handlers(self, audit: AuditLog | None = None, service: str = "dicom") -> list[Any]:
        """pynetdicom handlers: refuse disallowed peers before any negotiation."""

        def on_requested(event: Any) -> None:
            peer = peer_of(event.assoc)
            rejection = self.check(peer)
            if rejection is None:
                return
            if audit is not None:
                audit.write(
                    "association-rejected",
                    service=service,
                    peer=peer.describe(),
                    why=rejection.why,
                    result=rejection.result,
                    source=rejection.source,
                    reason=rejection.words,
                )
            event.assoc.acse.send_reject(rejection.result, rejection.source, rejection.reason)
            evt.trigger(event.assoc, evt.EVT_REJECTED, {})
            event.assoc.kill()

        return [(evt.EVT_REQUESTED, on_requested)]


def peer_of(assoc: Any) -> Peer:
    """The Peer of an association being requested (acceptor side)."""
    primitive = assoc.requestor.primitive
    calling = _title(getattr(primitive, "calling_ae_title", ""))
    called = _title(getattr(primitive, "called_ae_title", ""))
    sock = getattr(getattr(assoc, "dul", None), "socket", None)
    raw = getattr(sock, "socket", None)
    return Peer(calling, called, str(assoc.requestor.address), int(assoc.requestor.port or 0),
                peer_subject(raw))  # fmt: skip


def _title(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return str(value or "").strip()
