"""Who is asking: an association request mapped to a configured client, the protected PACS
delivering a C-MOVE's instances back to the guard, or nobody (A-ASSOCIATE-RJ).

A client is its calling AE title AND its source address AND, when configured, a TLS
connection with a verified certificate of the given subject (each matched by the shared
``pacsguard.net.policy.AllowRule``). The called AE title must be the guard's own. The PACS is
recognised by its AE title and its private address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pacsguard.guard.config import Client, GuardConfig
from pacsguard.net.policy import (
    CALLED_AE_NOT_RECOGNIZED,
    CALLING_AE_NOT_RECOGNIZED,
    PERMANENT,
    SERVICE_USER,
    TRANSIENT,
    AllowRule,
    Peer,
)

# A-ASSOCIATE-RJ (result, source, reason), PS3.8 9.3.4
REJECT_CALLED_AE = (PERMANENT, SERVICE_USER, CALLED_AE_NOT_RECOGNIZED)
REJECT_CALLING_AE = (PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNIZED)
PROVIDER_PRESENTATION, LOCAL_LIMIT_EXCEEDED = 0x03, 0x02
REJECT_LIMIT = (TRANSIENT, PROVIDER_PRESENTATION, LOCAL_LIMIT_EXCEEDED)


@dataclass(frozen=True)
class Decision:
    kind: Literal["client", "upstream", "reject"]
    client: Client | None = None
    reject: tuple[int, int, int] | None = None
    reason: str | None = None


def rules(client: Client) -> list[AllowRule]:
    return [
        AllowRule(client.ae_title, str(network), client.certificate_subject)
        for network in client.networks
    ]


def decide(config: GuardConfig, peer: Peer, tls: bool) -> Decision:
    if peer.called_ae not in (config.ae_title, config.move_ae_title):
        return Decision("reject", reject=REJECT_CALLED_AE, reason="called-ae")
    upstream = config.upstream
    if peer.calling_ae == upstream.ae_title and peer.address == upstream.host:
        return Decision("upstream")
    refusal = "unknown-client"
    for client in config.clients:
        anyone = Peer(peer.calling_ae, peer.called_ae, peer.address, peer.port, None)
        if not any(AllowRule(r.ae_title, r.host).matches(anyone) for r in rules(client)):
            continue
        if client.tls and not tls:
            refusal = "tls-required"
        elif not any(rule.matches(peer) for rule in rules(client)):
            refusal = "certificate"
        else:
            return Decision("client", client=client)
    return Decision("reject", reject=REJECT_CALLING_AE, reason=refusal)
