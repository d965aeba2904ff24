"""Targets (hosts, CIDR ranges, scope files, exclusions) and port lists."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path

from pacsguard.scan.errors import TargetError

DEFAULT_PORTS: tuple[int, ...] = (104, 11112, 4242, 2761, 2762, 8042, 80, 443, 8080)
MAX_HOSTS = 1 << 16

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ports(text: str) -> list[int]:
    """``"104,4242,8000-8010"`` -> sorted unique ports; a clear error on anything else."""
    ports: set[int] = set()
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        low_text, sep, high_text = part.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if sep else low
        except ValueError:
            raise TargetError(
                f"port list: {part!r} is not a port or a range like 8000-8010"
            ) from None
        if not (1 <= low <= 65535 and 1 <= high <= 65535) or low > high:
            raise TargetError(f"port list: {part!r} is out of range (1-65535, low-high)")
        ports.update(range(low, high + 1))
    if not ports:
        raise TargetError("port list is empty")
    return sorted(ports)


def read_scope(path: Path) -> list[str]:
    """One target per line; ``#`` starts a comment; commas or blanks also separate."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TargetError(f"scope file {path}: {exc.strerror or exc}") from None
    items: list[str] = []
    for line in text.splitlines():
        body = line.split("#", 1)[0].replace(",", " ")
        items.extend(body.split())
    return items


def _network(item: str) -> Network | None:
    try:
        return ipaddress.ip_network(item, strict=False)
    except ValueError:
        return None


def _resolve(name: str) -> str:
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise TargetError(
            f"target {name!r} is neither an address, a CIDR range nor a known host name"
        ) from None
    addresses = [str(info[4][0]) for info in infos]
    ipv4 = [a for a in addresses if ":" not in a]
    return (ipv4 or addresses)[0]


def _looks_like_range(item: str) -> bool:
    return "/" in item or item.replace(".", "").isdigit() or ":" in item


def _expand_one(item: str) -> Iterable[str]:
    network = _network(item)
    if network is None:
        if _looks_like_range(item):
            raise TargetError(f"target {item!r} is not a valid address or CIDR range")
        yield _resolve(item)
        return
    if network.num_addresses > MAX_HOSTS:
        raise TargetError(
            f"range {item} holds {network.num_addresses} addresses; split it (max {MAX_HOSTS})"
        )
    if network.num_addresses <= 2:
        yield from (str(a) for a in network)
    else:
        yield from (str(a) for a in network.hosts())


def _excluded(address: str, excludes: Sequence[Network]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in excludes)


def expand_targets(targets: Sequence[str], exclude: Sequence[str] = ()) -> list[str]:
    """Every host address to scan, in order, without duplicates or excluded ones."""
    excludes: list[Network] = []
    for item in exclude:
        network = _network(item)
        if network is None:
            if _looks_like_range(item):
                raise TargetError(f"exclusion {item!r} is not a valid address or CIDR range")
            network = ipaddress.ip_network(_resolve(item))
        excludes.append(network)
    hosts: dict[str, None] = {}
    for item in targets:
        for address in _expand_one(item.strip()):
            if not _excluded(address, excludes):
                hosts[address] = None
            if len(hosts) > MAX_HOSTS:
                raise TargetError(f"more than {MAX_HOSTS} hosts in scope; narrow the targets")
    return list(hosts)
