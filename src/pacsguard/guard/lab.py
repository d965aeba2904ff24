"""The guard's loopback lab (tests, benchmark): a weak archive behind the guard and the
peers around it, on 127.0.0.1 only, every DCMTK and Orthanc process run with TCP_NODELAY=1.

- ``start_dcmqrscp``: DCMTK's archive, accepting any calling AE title (the weak PACS), which
  knows the guard as a move destination and, for the direct benchmark, the store SCP.
- ``start_orthanc``: Orthanc with the guard registered as a modality.
- ``start_storescp``: a C-MOVE destination.
Built on ``pacsguard.lab`` (processes, sample data, certificates).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pacsguard.lab import dcmtk, orthanc
from pacsguard.lab.procs import LOOPBACK, NODELAY_ENV, Server, tool

Peer = Server  # the lab's servers run with TCP_NODELAY=1 (lab.procs.NODELAY_ENV)


@dataclass(frozen=True)
class Archive:
    server: Server
    port: int
    ae_title: str
    log: Path


def start_dcmqrscp(
    work: Path, port: int, ae_title: str, peers: dict[str, tuple[str, int]], name: str = "pacs"
) -> Archive:
    """dcmqrscp answering any calling AE; ``peers``: AE title -> (host, port) it may move to."""
    folder = work / f"dcmqrscp-{name}"
    storage = folder / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    hosts = [f"loader = ({dcmtk.LOADER_AE}, {LOOPBACK}, 0)"]
    hosts += [f"p{i} = ({ae}, {h}, {p})" for i, (ae, (h, p)) in enumerate(peers.items())]
    config = folder / "dcmqrscp.cfg"
    config.write_text(
        "\n".join(
            [
                f"NetworkTCPPort  = {port}",
                "MaxPDUSize      = 65536",
                "MaxAssociations = 32",
                "HostTable BEGIN",
                *hosts,
                "HostTable END",
                "VendorTable BEGIN",
                "VendorTable END",
                "AETable BEGIN",
                f"{ae_title} {storage} RW (2000, 2048mb) ANY",
                "AETable END",
                "",
            ]
        ),
        encoding="utf-8",
    )
    log = folder / "dcmqrscp.log"
    server = Peer(
        f"dcmqrscp {name}", [tool("dcmqrscp"), "-v", "-dhl", "-c", str(config)], log, cwd=folder
    )
    server.wait_port(port)
    return Archive(server, port, ae_title, log)


def load(archive: Archive, files: Sequence[Path], log: Path) -> None:
    """Store ``files`` into the archive with storescu (TCP_NODELAY=1)."""
    base = [tool("storescu"), "-aet", dcmtk.LOADER_AE, "-aec", archive.ae_title]
    done = subprocess.run(
        [*base, LOOPBACK, str(archive.port), *map(str, files)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env={**os.environ, **NODELAY_ENV},
        timeout=600,
        check=False,
    )
    log.write_bytes(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"storescu could not load the archive; see {log}")


@dataclass(frozen=True)
class Receiver:
    server: Server
    port: int
    folder: Path

    def received(self) -> list[Path]:
        return sorted(p for p in self.folder.rglob("*") if p.is_file())


def start_storescp(work: Path, port: int, name: str) -> Receiver:
    folder = work / f"storescp-{name}"
    received = folder / "received"
    received.mkdir(parents=True, exist_ok=True)
    # +xa: every transfer syntax, compressed ones included (the guard relays as received)
    argv = [tool("storescp"), "-v", "+xa", "-od", str(received), str(port)]
    server = Peer(f"storescp {name}", argv, folder / "storescp.log", cwd=folder)
    server.wait_port(port)
    return Receiver(server, port, received)


@dataclass(frozen=True)
class OrthancArchive:
    server: Server
    dicom_port: int
    http_port: int
    ae_title: str

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"


def start_orthanc(
    work: Path,
    dicom_port: int,
    http_port: int,
    ae_title: str,
    modalities: dict[str, tuple[str, int]],
    name: str = "pacs",
) -> OrthancArchive:
    """Orthanc answering any calling AE; ``modalities``: AE title -> (host, port)."""
    spec = orthanc.OrthancSpec(name, http_port, dicom_port, aet=ae_title)
    folder = work / f"orthanc-{name}"
    storage = folder / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = spec.config(storage)
    config.update(
        {
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomAlwaysAllowStore": True,
            "DicomModalities": {ae: [ae, h, p] for ae, (h, p) in modalities.items()},
        }
    )
    path = folder / "orthanc.json"
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    server = Peer(
        f"Orthanc {name}", [tool("Orthanc"), "--verbose", str(path)], folder / "orthanc.log",
        cwd=folder,
    )  # fmt: skip
    server.wait_port(http_port)
    server.wait_port(dicom_port)
    orthanc.upload(spec, [])
    return OrthancArchive(server, dicom_port, http_port, ae_title)


@dataclass(frozen=True)
class Pki:
    """A throwaway CA, the guard's server certificate and client certificates it signed."""

    ca: Path
    server: tuple[Path, Path]  # (key, certificate)
    clients: dict[str, tuple[Path, Path]]  # common name -> (key, certificate)


def _openssl(args: list[str], log: Path) -> None:
    with log.open("ab") as handle:
        done = subprocess.run(
            [tool("openssl"), *args], stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed; see {log}")


def make_pki(folder: Path, clients: Sequence[str], days: int = 30) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "openssl.log"
    ca_key, ca = folder / "ca.key", folder / "ca.pem"
    _openssl(
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
         str(ca), "-days", str(days), "-subj", "/CN=pacsguard-lab-ca"],
        log,
    )  # fmt: skip

    def issue(name: str) -> tuple[Path, Path]:
        key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
        _openssl(
            ["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
             str(csr), "-subj", f"/CN={name}"],
            log,
        )  # fmt: skip
        _openssl(
            ["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", str(days)],
            log,
        )  # fmt: skip
        return key, cert

    return Pki(ca, issue("pacsguard-guard"), {name: issue(name) for name in clients})
