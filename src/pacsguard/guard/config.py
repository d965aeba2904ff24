"""guard.toml, read into frozen dataclasses and checked whole before anything listens.

Read with the shared ``pacsguard.net.config`` helpers: every key is known, and a misspelt
key is an error (a typo in a permission must never widen or silently drop it). Paths are
relative to the file's folder.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pacsguard.net.config import ConfigError, Section, load_toml

SERVICES = ("echo", "find", "move", "get", "store")
LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
ROLES = ("clinical", "research")

Service = Literal["echo", "find", "move", "get", "store"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Limits:
    """Per client (every key may be set in ``[guard.limits]`` and overridden per client)."""

    associations_per_minute: float = 120.0
    max_associations: int = 8  # open at the same time
    find_responses_per_minute: float = 10_000.0
    max_responses_per_query: int = 1_000
    idle_timeout: float = 60.0  # seconds without a PDU
    association_timeout: float = 3_600.0  # seconds, whatever happens


@dataclass(frozen=True)
class Upstream:
    ae_title: str
    host: str
    port: int
    calling_ae_title: str
    timeout: float = 30.0
    # idle pooled associations (clinical C-FIND and C-MOVE) are released after this many
    # seconds; 0: no pool, every client association opens its own
    pool_idle_timeout: float = 15.0


@dataclass(frozen=True)
class Destination:
    ae_title: str
    host: str
    port: int


@dataclass(frozen=True)
class Client:
    name: str
    ae_title: str
    networks: tuple[Network, ...]
    allow: frozenset[str]
    role: Literal["clinical", "research"]
    move_destinations: tuple[str, ...]
    find_levels: frozenset[str]
    tls: bool
    certificate_subject: str | None
    limits: Limits

    def may(self, service: str) -> bool:
        return service in self.allow


@dataclass(frozen=True)
class TlsListener:
    host: str
    port: int
    cert_file: Path
    key_file: Path
    ca_file: Path | None
    require_client_certificate: bool


@dataclass(frozen=True)
class Research:
    options: frozenset[str] = frozenset()
    policy: Path | None = None


@dataclass(frozen=True)
class GuardConfig:
    ae_title: str
    host: str
    port: int | None  # None: no plain listener (TLS only)
    move_ae_title: str
    key_file: Path | None
    state: Path
    upstream: Upstream
    clients: tuple[Client, ...]
    destinations: tuple[Destination, ...]
    tls: TlsListener | None
    research: Research = field(default_factory=Research)
    max_associations: int = 64
    dicom_audit: bool = False
    dicom_audit_syslog: tuple[str, int] | None = None

    def destination(self, ae_title: str) -> Destination | None:
        return next((d for d in self.destinations if d.ae_title == ae_title), None)


POSITIVE = 1e-9


def _host(section: Section, key: str = "host", default: Any = None) -> str:
    value = section.string(key) if default is None else section.string(key, default)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise section.error(key, "must be an IP address, not a name") from None
    return str(value)


def _port(section: Section, key: str = "port", default: Any = None) -> Any:
    if default is None:
        return section.integer(key, low=1, high=65535)
    return section.integer(key, default, low=1, high=65535)


def _limits(section: Section, base: Limits) -> Limits:
    return Limits(
        associations_per_minute=section.number(
            "associations_per_minute", base.associations_per_minute, low=POSITIVE
        ),
        max_associations=section.integer("max_associations", base.max_associations, low=1),
        find_responses_per_minute=section.number(
            "find_responses_per_minute", base.find_responses_per_minute, low=POSITIVE
        ),
        max_responses_per_query=section.integer(
            "max_responses_per_query", base.max_responses_per_query, low=1
        ),
        idle_timeout=section.number("idle_timeout", base.idle_timeout, low=POSITIVE),
        association_timeout=section.number(
            "association_timeout", base.association_timeout, low=POSITIVE
        ),
    )


def _client(section: Section, base: Limits, destinations: set[str]) -> Client:
    name = section.string("name")
    hosts = section.strings("hosts") if section.has("hosts") else [section.string("host")]
    networks = []
    for host in hosts:
        try:
            networks.append(ipaddress.ip_network(host, strict=False))
        except ValueError:
            raise section.error("host", f"'{host}' is not an address or network") from None
    allow = section.strings("allow", [])
    for service in allow:
        if service not in SERVICES:
            raise section.error(
                "allow", f"unknown service '{service}' (one of {', '.join(SERVICES)})"
            )
    role = section.string("role", "clinical", choices=ROLES)
    moves = section.strings("move_destinations", [])
    for ae in moves:
        if ae not in destinations:
            raise section.error("move_destinations", f"'{ae}' is not a guard.destination")
    levels = [level.upper() for level in section.strings("find_levels", list(LEVELS))]
    for level in levels:
        if level not in LEVELS:
            raise section.error("find_levels", f"unknown level '{level}'")
    subject = section.string("certificate_subject", None)
    client = Client(
        name=name,
        ae_title=section.ae_title("ae_title"),
        networks=tuple(networks),
        allow=frozenset(allow),
        role=role,
        move_destinations=tuple(moves),
        find_levels=frozenset(levels),
        tls=section.boolean("tls", subject is not None),
        certificate_subject=subject,
        limits=_limits(section, base),
    )
    section.done()
    return client


def parse_config(data: dict[str, Any], file: Path) -> GuardConfig:
    """The config from parsed TOML; ``file`` names it in errors and anchors relative paths."""
    root = Section(data, file, "")
    if not root.has("guard"):
        raise ConfigError(f"{file}: no [guard] table")
    guard = root.table("guard")
    root.done()

    ae_title = guard.ae_title("ae_title")
    plain = guard.boolean("plain", True)
    host = _host(guard, "host", "127.0.0.1")
    port = _port(guard) if plain else guard.integer("port", None, low=1, high=65535)
    key_file = guard.path("key_file", None)
    state = guard.path("state", "guard-state")
    move_ae = guard.ae_title("move_ae_title", ae_title)
    max_assocs = guard.integer("max_associations", 64, low=1)
    dicom_audit = guard.boolean("dicom_audit", False)
    syslog = None
    if guard.has("dicom_audit_syslog"):
        target = guard.string("dicom_audit_syslog")
        where, _, number = target.rpartition(":")
        try:
            ipaddress.ip_address(where.strip("[]"))
            syslog = (where.strip("[]"), int(number))
        except ValueError:
            raise guard.error("dicom_audit_syslog", "must be ADDRESS:PORT") from None
        dicom_audit = True
    limits_section = guard.table("limits")
    limits = _limits(limits_section, Limits())
    limits_section.done()

    if not guard.has("upstream"):
        raise guard.error("upstream", "is required (the protected PACS)")
    up = guard.table("upstream")
    upstream = Upstream(
        up.ae_title("ae_title"), _host(up), _port(up), up.ae_title("calling_ae_title", ae_title),
        up.number("timeout", 30.0, low=POSITIVE), up.number("pool_idle_timeout", 15.0),
    )  # fmt: skip
    up.done()

    destinations = []
    for section in guard.tables("destination"):
        destinations.append(
            Destination(section.ae_title("ae_title"), _host(section), _port(section))
        )
        section.done()
    names = [d.ae_title for d in destinations]
    if len(set(names)) != len(names):
        raise guard.error("destination", "two destinations share an ae_title")

    clients = tuple(_client(t, limits, set(names)) for t in guard.tables("client"))
    if len({c.name for c in clients}) != len(clients):
        raise guard.error("client", "two clients share a name")

    tls = None
    if guard.has("tls"):
        section = guard.table("tls")
        tls = TlsListener(
            _host(section, "host", host),
            _port(section),
            section.path("cert_file"),
            section.path("key_file"),
            section.path("ca_file", None),
            section.boolean("require_client_certificate", False),
        )
        section.done()
        if tls.require_client_certificate and tls.ca_file is None:
            raise section.error("require_client_certificate", "needs a ca_file")
    if not plain and tls is None:
        raise guard.error("plain", "false needs a [guard.tls] listener")

    research = Research()
    if guard.has("research"):
        section = guard.table("research")
        research = Research(frozenset(section.strings("options", [])), section.path("policy", None))
        section.done()
    guard.done()

    for client in clients:
        if client.tls and tls is None:
            raise guard.error("client", f"'{client.name}' needs TLS but there is no [guard.tls]")
        if client.certificate_subject and (tls is None or tls.ca_file is None):
            raise guard.error(
                "client", f"'{client.name}' names a certificate_subject: [guard.tls] needs ca_file"
            )
        if client.role == "research" and key_file is None:
            raise guard.error("key_file", f"is required by the research client '{client.name}'")
    if any(c.ae_title == upstream.ae_title for c in clients):
        raise guard.error("client", "a client may not use the upstream PACS's ae_title")
    return GuardConfig(
        ae_title=ae_title,
        host=host,
        port=port if plain else None,
        move_ae_title=move_ae,
        key_file=None if key_file is None else Path(key_file).resolve(),
        state=Path(state).resolve(),
        upstream=upstream,
        clients=clients,
        destinations=tuple(destinations),
        tls=tls,
        research=research,
        max_associations=max_assocs,
        dicom_audit=dicom_audit,
        dicom_audit_syslog=syslog,
    )


def load_config(path: Path) -> GuardConfig:
    """Read and check ``path``; every problem is one ``ConfigError`` line naming the key."""
    return parse_config(load_toml(path), path)
