"""Who is asking: an association request mapped to a configured client, the protected PACS
delivering a C-MOVE's instances back to the guard, or nobody (A-ASSOCIATE-RJ).

A client is its calling AE title AND its source address AND, when configured, a TLS
connection with a verified certificate of the given subject. The called AE title must be the
guard's own. The PACS is recognised by its AE title and its private address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from pacsguard.guard.config import Client, GuardConfig
from pacsguard.guard.tlsctx import same_subject

# A-ASSOCIATE-RJ (result, source, reason), PS3.8 9.3.4
REJECT_CALLED_AE = (1, 1, 7)  # permanent, service user, called AE title not recognised
REJECT_CALLING_AE = (1, 1, 3)  # permanent, service user, calling AE title not recognised
REJECT_LIMIT = (2, 3, 2)  # transient, service provider (presentation), local limit exceeded


@dataclass(frozen=True)
class Requester:
    calling_ae: str
    called_ae: str
    address: str
    tls: bool
    subject: str | None


@dataclass(frozen=True)
class Decision:
    kind: Literal["client", "upstream", "reject"]
    client: Client | None = None
    reject: tuple[int, int, int] | None = None
    reason: str | None = None


def _in(address: str, client: Client) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in client.networks)


def decide(config: GuardConfig, who: Requester) -> Decision:
    if who.called_ae not in (config.ae_title, config.move_ae_title):
        return Decision("reject", reject=REJECT_CALLED_AE, reason="called-ae")
    upstream = config.upstream
    if who.calling_ae == upstream.ae_title and who.address == upstream.host:
        return Decision("upstream")
    refusal = "unknown-client"
    for client in config.clients:
        if client.ae_title != who.calling_ae or not _in(who.address, client):
            continue
        if client.tls and not who.tls:
            refusal = "tls-required"
        elif client.certificate_subject is not None and (
            who.subject is None or not same_subject(client.certificate_subject, who.subject)
        ):
            refusal = "certificate"
        else:
            return Decision("client", client=client)
    return Decision("reject", reject=REJECT_CALLING_AE, reason=refusal)
