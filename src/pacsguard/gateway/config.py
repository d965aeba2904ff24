"""``gateway.toml``: validated into frozen dataclasses; secrets stay in their files.

The file names secret *files* (the project key, a destination's token or password, TLS
keys); ``describe()`` prints the effective settings with those paths and never a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pacsguard.net.config import ConfigError, Section, load_toml
from pacsguard.net.policy import AllowRule

DESTINATION_TYPES = ("dicom", "stow", "folder")
DEFAULT_MAX_AGE = 7 * 24 * 3600.0


@dataclass(frozen=True)
class TlsServer:
    port: int
    cert_file: Path
    key_file: Path
    ca_file: Path | None
    require_client_cert: bool


@dataclass(frozen=True)
class StowServer:
    port: int
    host: str
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class Route:
    """Which instances a destination takes; an empty list matches everything."""

    calling_ae: tuple[str, ...] = ()
    modality: tuple[str, ...] = ()
    sop_class: tuple[str, ...] = ()

    def matches(self, calling_ae: str, modality: str, sop_class: str) -> bool:
        return (
            (not self.calling_ae or calling_ae in self.calling_ae)
            and (not self.modality or modality in self.modality)
            and (not self.sop_class or sop_class in self.sop_class)
        )


@dataclass(frozen=True)
class Destination:
    name: str
    type: str
    ae_title: str | None = None
    host: str | None = None
    port: int | None = None
    calling_ae: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    url: str | None = None
    token_file: Path | None = None
    token_env: str | None = None
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    path: Path | None = None
    concurrency: int = 2
    batch: int = 32
    timeout: float = 30.0
    retry_initial: float = 2.0
    retry_max: float = 300.0
    max_age: float = DEFAULT_MAX_AGE
    routes: tuple[Route, ...] = ()

    def accepts(self, calling_ae: str, modality: str, sop_class: str) -> bool:
        return not self.routes or any(
            r.matches(calling_ae, modality, sop_class) for r in self.routes
        )


@dataclass(frozen=True)
class GatewayConfig:
    file: Path
    ae_title: str
    host: str
    port: int
    key_file: Path | None
    state: Path
    options: tuple[str, ...]
    policy: Path | None
    allow: tuple[AllowRule, ...]
    destinations: tuple[Destination, ...]
    tls: TlsServer | None = None
    stow: StowServer | None = None
    status_port: int | None = None
    status_host: str = "127.0.0.1"
    max_pdu: int = 0
    dicom_audit: bool = False
    max_associations: int = 16
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def spool(self) -> Path:
        return self.state / "spool"

    @property
    def database(self) -> Path:
        return self.state / "queue.sqlite"

    @property
    def quarantine(self) -> Path:
        return self.state / "quarantine"

    @property
    def dead_letter(self) -> Path:
        return self.state / "dead-letter"

    @property
    def audit_log(self) -> Path:
        return self.state / "audit.jsonl"

    @property
    def dicom_audit_log(self) -> Path:
        """PS3.15 A.5 audit messages, one XML message per line."""
        return self.state / "audit-dicom.xml"

    def destination(self, name: str) -> Destination:
        for dest in self.destinations:
            if dest.name == name:
                return dest
        known = ", ".join(d.name for d in self.destinations)
        raise ConfigError(f"{self.file}: no destination named {name!r} (known: {known})")

    def describe(self) -> dict[str, Any]:
        """The effective settings, with secret files named by path only."""

        def clean(value: Any) -> Any:
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, tuple | list):
                return [clean(v) for v in value]
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items() if v not in (None, (), [])}
            if hasattr(value, "__dataclass_fields__"):
                return clean({k: getattr(value, k) for k in value.__dataclass_fields__})
            return value

        out = clean({k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"})
        assert isinstance(out, dict)
        return out


def _allow(section: Section) -> AllowRule:
    ae = section.ae_title("ae_title", None)
    host = section.string("host", None)
    subject = section.string("subject", None)
    section.done()
    try:
        return AllowRule(ae, host, subject)
    except ValueError:
        raise section.error("host", f"not an address or network: {host!r}") from None


def _route(section: Section) -> Route:
    route = Route(
        tuple(section.strings("calling_ae", [])),
        tuple(section.strings("modality", [])),
        tuple(section.strings("sop_class", [])),
    )
    section.done()
    return route


def _destination(section: Section) -> Destination:
    name = section.string("name")
    kind = section.string("type", choices=DESTINATION_TYPES)
    common: dict[str, Any] = {
        "concurrency": section.integer("concurrency", 2, low=1, high=32),
        "batch": section.integer("batch", 32, low=1, high=500),
        "timeout": section.number("timeout", 30.0, low=0.1),
        "retry_initial": section.number("retry_initial", 2.0, low=0.0),
        "retry_max": section.number("retry_max", 300.0, low=0.0),
        "max_age": section.number("max_age", DEFAULT_MAX_AGE, low=0.0),
        "routes": tuple(_route(s) for s in section.tables("route")),
    }
    if kind == "dicom":
        dest = Destination(
            name,
            kind,
            ae_title=section.ae_title("ae_title"),
            host=section.string("host"),
            port=section.integer("port", low=1, high=65535),
            calling_ae=section.ae_title("calling_ae", None),
            tls=section.boolean("tls", False),
            ca_file=section.path("ca_file", None),
            cert_file=section.path("cert_file", None),
            key_file=section.path("key_file", None),
            **common,
        )
    elif kind == "stow":
        url = section.string("url")
        if not url.startswith(("http://", "https://")):
            raise section.error("url", "must start with http:// or https://")
        dest = Destination(
            name,
            kind,
            url=url.rstrip("/"),
            token_file=section.path("token_file", None),
            token_env=section.string("token_env", None),
            username=section.string("username", None),
            password_file=section.path("password_file", None),
            password_env=section.string("password_env", None),
            ca_file=section.path("ca_file", None),
            **common,
        )
        if dest.username is None and (dest.password_file or dest.password_env):
            raise section.error("username", "is required with password_file or password_env")
    else:
        dest = Destination(name, kind, path=section.path("path"), **common)
    section.done()
    return dest


def load_config(path: Path) -> GatewayConfig:
    """Read and validate ``gateway.toml``; every mistake is one ``ConfigError`` line."""
    path = path.resolve()
    root = Section(load_toml(path), path, "")
    gw = root.table("gateway")
    options = tuple(gw.strings("options", []))
    from pacsguard.deid.options import OptionError, validate_options

    try:
        validate_options(options)
    except OptionError as exc:
        raise gw.error("options", str(exc)) from None
    tls_section = gw.table("tls")
    tls = None
    if tls_section.data:
        tls = TlsServer(
            tls_section.integer("port", low=1, high=65535),
            tls_section.path("cert_file"),
            tls_section.path("key_file"),
            tls_section.path("ca_file", None),
            tls_section.boolean("require_client_cert", True),
        )
        if tls.require_client_cert and tls.ca_file is None:
            raise tls_section.error("ca_file", "is required when require_client_cert = true")
        tls_section.done()
    stow_section = gw.table("stow")
    stow = None
    host = gw.string("host", "127.0.0.1")
    if stow_section.data:
        stow = StowServer(
            stow_section.integer("port", low=1, high=65535),
            stow_section.string("host", host),
            stow_section.path("cert_file", None),
            stow_section.path("key_file", None),
        )
        stow_section.done()
    status_section = gw.table("status")
    status_port = status_section.integer("port", None, low=1, high=65535)
    status_host = status_section.string("host", "127.0.0.1")
    status_section.done()
    audit_section = gw.table("audit")
    dicom_audit = audit_section.boolean("dicom_messages", False)
    audit_section.done()
    allow = tuple(_allow(s) for s in gw.tables("allow"))
    config = GatewayConfig(
        file=path,
        ae_title=gw.ae_title("ae_title", "PGGATE"),
        host=host,
        port=gw.integer("port", 11120, low=0, high=65535),
        key_file=gw.path("key_file", None),
        state=gw.path("state", "gateway-state"),
        options=options,
        policy=gw.path("policy", None),
        allow=allow,
        destinations=tuple(_destination(s) for s in root.tables("destination")),
        tls=tls,
        stow=stow,
        status_port=status_port,
        status_host=status_host,
        max_pdu=gw.integer("max_pdu", 0, low=0),
        dicom_audit=dicom_audit,
        max_associations=gw.integer("max_associations", 16, low=1, high=1000),
    )
    gw.done()
    root.done()
    names = [d.name for d in config.destinations]
    if not names:
        raise ConfigError(f"{path}: at least one [[destination]] is required")
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: destination names must be unique")
    if not allow:
        raise ConfigError(f"{path}: [[gateway.allow]] is empty: no peer could send (fail closed)")
    state = config.state.resolve()
    for dest in config.destinations:
        folder = dest.path.resolve() if dest.type == "folder" and dest.path else None
        if folder is not None and (state == folder or folder in state.parents):
            raise ConfigError(
                f"{path}: the state folder ({config.state}) must live outside destination "
                f"{dest.name!r} ({dest.path}): it holds the quarantine of original files"
            )
    return config
