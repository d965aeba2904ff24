"""DCMTK servers in the lab: dcmqrscp (an archive) and storescp (echo and store, optional TLS)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pacsguard.lab.procs import LOOPBACK, Server, run, tool

LOADER_AE = "LABLOADER"


def dcmqrscp_config(port: int, aet: str, storage: Path, peers: str) -> str:
    """``peers``: ``ANY`` or the symbolic name of the one HostTable entry allowed."""
    return "\n".join(
        [
            f"NetworkTCPPort  = {port}",
            "MaxPDUSize      = 16384",
            "MaxAssociations = 16",
            "HostTable BEGIN",
            f"loader = ({LOADER_AE}, {LOOPBACK}, 0)",
            "HostTable END",
            "VendorTable BEGIN",
            "VendorTable END",
            "AETable BEGIN",
            f"{aet} {storage} RW (1000, 1024mb) {peers}",
            "AETable END",
            "",
        ]
    )


def start_dcmqrscp(name: str, port: int, aet: str, work: Path, *, any_peer: bool) -> Server:
    folder = work / f"dcmqrscp-{name}"
    storage = folder / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = folder / "dcmqrscp.cfg"
    config.write_text(
        dcmqrscp_config(port, aet, storage, "ANY" if any_peer else "loader"), encoding="utf-8"
    )
    server = Server(
        f"dcmqrscp {name}",
        [tool("dcmqrscp"), "-dhl", "-c", str(config)],
        folder / "dcmqrscp.log",
        cwd=folder,
    )
    server.wait_port(port)
    return server


def storescu(
    port: int, called_ae: str, files: Sequence[Path], headerless: Sequence[Path], log: Path
) -> None:
    """Load an archive: files with meta, then bare datasets (``-f``)."""
    base = [tool("storescu"), "-aet", LOADER_AE, "-aec", called_ae]
    if files:
        run([*base, LOOPBACK, str(port), *map(str, files)], log)
    if headerless:
        run([*base, "-f", LOOPBACK, str(port), *map(str, headerless)], log)


def make_certificate(
    folder: Path, common_name: str = "pacsguard-lab", days: int = 30
) -> tuple[Path, Path]:
    """A throwaway self-signed certificate (RSA 2048) and its unencrypted key."""
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / "key.pem", folder / "cert.pem"
    run(
        [
            tool("openssl"),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            str(days),
            "-subj",
            f"/CN={common_name}",
        ],
        folder / "openssl.log",
    )
    return key, cert


def start_storescp(
    name: str,
    port: int,
    work: Path,
    tls: tuple[Path, Path] | None = None,
    extra: tuple[str, ...] = (),
) -> Server:
    """``extra``: more storescp options (``-xf FILE PROFILE`` to accept fewer SOP classes)."""
    folder = work / f"storescp-{name}"
    received = folder / "received"
    received.mkdir(parents=True, exist_ok=True)
    argv = [tool("storescp"), "-od", str(received), *extra]
    if tls is not None:
        key, cert = tls
        argv += ["+tls", str(key), str(cert), "-pw", "-ic"]
    server = Server(f"storescp {name}", [*argv, str(port)], folder / "storescp.log", cwd=folder)
    server.wait_port(port)
    return server
