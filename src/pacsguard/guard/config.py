"""guard.toml, read into frozen dataclasses and checked whole before anything listens.

Every key is known: a misspelt key is an error (a typo in a permission must never widen or
silently drop it). Paths are relative to the file's folder.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pacsguard.guard.errors import ConfigError

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

    def destination(self, ae_title: str) -> Destination | None:
        return next((d for d in self.destinations if d.ae_title == ae_title), None)


class _Table:
    """One TOML table: typed getters that name the key on error and track unknown keys."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a table")
        self.data: dict[str, Any] = data
        self.where = where
        self.seen: set[str] = set()

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any, required: bool) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.where}: missing key '{key}'")
            return default
        value = self.data[key]
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            raise ConfigError(f"{self.where}.{key} must be a number")
        if not isinstance(value, kind):
            raise ConfigError(f"{self.where}.{key} has the wrong type")
        return value

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> Any:
        return self._get(key, str, default, required)

    def flag(self, key: str, default: bool) -> bool:
        return bool(self._get(key, bool, default, False))

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = float(self._get(key, (int, float), default, False))
        if value <= minimum:
            raise ConfigError(f"{self.where}.{key} must be above {minimum:g}")
        return value

    def integer(self, key: str, default: int | None, *, required: bool = False) -> Any:
        return self._get(key, int, default, required)

    def words(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(key, list, list(default), False)
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self.where}.{key} must be a list of strings")
        return tuple(value)

    def table(self, key: str) -> _Table | None:
        self.seen.add(key)
        return _Table(self.data[key], f"{self.where}.{key}") if key in self.data else None

    def tables(self, key: str) -> list[_Table]:
        self.seen.add(key)
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise ConfigError(f"{self.where}.{key} must be an array of tables")
        return [_Table(item, f"{self.where}.{key} #{i + 1}") for i, item in enumerate(value)]

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ConfigError(f"{self.where}: unknown key '{unknown[0]}'")


def _ae(table: _Table, key: str, default: str | None = None) -> str:
    value = table.text(key, default, required=default is None)
    text = str(value).strip()
    if not text or len(text) > 16 or "\\" in text or not text.isascii() or not text.isprintable():
        raise ConfigError(f"{table.where}.{key} must be 1 to 16 printable ASCII characters")
    return text


def _port(table: _Table, key: str, *, required: bool = True) -> Any:
    value = table.integer(key, None, required=required)
    if value is not None and not 0 < value < 65536:
        raise ConfigError(f"{table.where}.{key} must be a TCP port (1-65535)")
    return value


def _host(table: _Table, key: str = "host", default: str | None = None) -> str:
    value = str(table.text(key, default, required=default is None))
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(f"{table.where}.{key} must be an IP address, not a name") from None
    return value


def _limits(table: _Table | None, base: Limits) -> Limits:
    if table is None:
        return base
    return Limits(
        associations_per_minute=table.number(
            "associations_per_minute", base.associations_per_minute
        ),
        max_associations=int(table.number("max_associations", base.max_associations)),
        find_responses_per_minute=table.number(
            "find_responses_per_minute", base.find_responses_per_minute
        ),
        max_responses_per_query=int(
            table.number("max_responses_per_query", base.max_responses_per_query)
        ),
        idle_timeout=table.number("idle_timeout", base.idle_timeout),
        association_timeout=table.number("association_timeout", base.association_timeout),
    )


_LIMIT_KEYS = tuple(Limits.__dataclass_fields__)


def _client(table: _Table, base: Limits, destinations: set[str]) -> Client:
    name = str(table.text("name", required=True))
    hosts = table.words("hosts") if "hosts" in table.data else (str(table.text("host", "")),)
    networks = []
    for host in hosts:
        try:
            networks.append(ipaddress.ip_network(host, strict=False))
        except ValueError:
            raise ConfigError(f"{table.where}: '{host}' is not an address or network") from None
    if not networks or not hosts[0]:
        raise ConfigError(f"{table.where}: missing key 'host'")
    allow = table.words("allow")
    for service in allow:
        if service not in SERVICES:
            raise ConfigError(
                f"{table.where}.allow: unknown service '{service}' (one of {', '.join(SERVICES)})"
            )
    role = str(table.text("role", "clinical"))
    if role not in ROLES:
        raise ConfigError(f"{table.where}.role must be 'clinical' or 'research'")
    moves = table.words("move_destinations")
    for ae in moves:
        if ae not in destinations:
            raise ConfigError(f"{table.where}.move_destinations: '{ae}' is not a guard.destination")
    levels = tuple(level.upper() for level in table.words("find_levels", LEVELS))
    for level in levels:
        if level not in LEVELS:
            raise ConfigError(f"{table.where}.find_levels: unknown level '{level}'")
    subject = table.text("certificate_subject")
    overrides = {k: table.data[k] for k in _LIMIT_KEYS if k in table.data}
    limits = _limits(_Table(overrides, table.where), base)
    table.seen.update(overrides)
    client = Client(
        name=name,
        ae_title=_ae(table, "ae_title"),
        networks=tuple(networks),
        allow=frozenset(allow),
        role=role,  # type: ignore[arg-type]
        move_destinations=moves,
        find_levels=frozenset(levels),
        tls=table.flag("tls", subject is not None),
        certificate_subject=subject,
        limits=limits,
    )
    table.done()
    return client


def parse_config(data: dict[str, Any], base: Path) -> GuardConfig:
    """The config from parsed TOML; relative paths are resolved against ``base``."""
    root = _Table(data, "config")
    guard = root.table("guard")
    if guard is None:
        raise ConfigError("config: missing table guard")
    root.done()

    def path(table: _Table, key: str, *, required: bool = False) -> Path | None:
        value = table.text(key, required=required)
        return None if value is None else (base / str(value)).resolve()

    ae_title = _ae(guard, "ae_title")
    plain = guard.flag("plain", True)
    host = _host(guard, "host", "127.0.0.1")
    port = _port(guard, "port", required=plain)
    key_file = path(guard, "key_file")
    state = path(guard, "state") or (base / "guard-state").resolve()
    move_ae = _ae(guard, "move_ae_title", ae_title)
    max_assocs = int(guard.number("max_associations", 64))
    limits = _limits(guard.table("limits"), Limits())

    up = guard.table("upstream")
    if up is None:
        raise ConfigError("config: missing table guard.upstream")
    upstream = Upstream(
        _ae(up, "ae_title"), _host(up), _port(up, "port"), _ae(up, "calling_ae_title", ae_title),
        up.number("timeout", 30.0),
    )  # fmt: skip
    up.done()

    destinations = []
    for table in guard.tables("destination"):
        destinations.append(Destination(_ae(table, "ae_title"), _host(table), _port(table, "port")))
        table.done()
    names = [d.ae_title for d in destinations]
    if len(set(names)) != len(names):
        raise ConfigError("config: two guard.destination entries share an ae_title")

    clients = tuple(_client(t, limits, set(names)) for t in guard.tables("client"))
    if len({c.name for c in clients}) != len(clients):
        raise ConfigError("config: two guard.client entries share a name")

    tls_table = guard.table("tls")
    tls = None
    if tls_table is not None:
        cert = path(tls_table, "cert_file", required=True)
        key = path(tls_table, "key_file", required=True)
        assert cert is not None and key is not None
        tls = TlsListener(
            _host(tls_table, "host", host),
            _port(tls_table, "port"),
            cert,
            key,
            path(tls_table, "ca_file"),
            tls_table.flag("require_client_certificate", False),
        )
        tls_table.done()
        if tls.require_client_certificate and tls.ca_file is None:
            raise ConfigError("config: guard.tls.require_client_certificate needs a ca_file")
    if not plain and tls is None:
        raise ConfigError("config: guard.plain = false needs a guard.tls listener")
    if not plain:
        port = None

    research_table = guard.table("research")
    research = Research()
    if research_table is not None:
        research = Research(
            frozenset(research_table.words("options")), path(research_table, "policy")
        )
        research_table.done()
    guard.done()

    for client in clients:
        if client.tls and tls is None:
            raise ConfigError(f"config: client '{client.name}' needs TLS but there is no guard.tls")
        if client.certificate_subject and (tls is None or tls.ca_file is None):
            raise ConfigError(
                f"config: client '{client.name}' names a certificate_subject: "
                "guard.tls needs ca_file"
            )
        if client.role == "research" and key_file is None:
            raise ConfigError(f"config: research client '{client.name}' needs guard.key_file")
    if any(c.ae_title == upstream.ae_title for c in clients):
        raise ConfigError("config: a client may not use the upstream PACS's ae_title")
    return GuardConfig(
        ae_title=ae_title,
        host=host,
        port=port,
        move_ae_title=move_ae,
        key_file=key_file,
        state=state,
        upstream=upstream,
        clients=clients,
        destinations=tuple(destinations),
        tls=tls,
        research=research,
        max_associations=max_assocs,
    )


def load_config(path: Path) -> GuardConfig:
    """Read and check ``path``; every problem is one ``ConfigError`` line naming the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_config(data, path.parent.resolve())
