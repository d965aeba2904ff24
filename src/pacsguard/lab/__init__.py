"""A loopback lab of real PACS servers, for every capability's tests, the benchmarks and demos.

Everything listens on high ports and is reached on 127.0.0.1 only: Orthanc in three
configurations, DCMTK's dcmqrscp (any peer, one peer) and storescp (plain and TLS),
a plain web server (HTTP and HTTPS) and a closed port. The archives are loaded with
``pacsguard.sample`` data; ``Lab.expected`` is the truth a scan must find.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pacsguard.lab import dcmtk, orthanc
from pacsguard.lab.data import LabData, decompressed_for_dcmtk, make_data
from pacsguard.lab.procs import LOOPBACK, LabError, Server, free_ports
from pacsguard.lab.static import start_static
from pacsguard.sample.answer_key import Totals

__all__ = ["LOOPBACK", "Expected", "Lab", "LabData", "LabError", "Totals"]


@dataclass(frozen=True)
class Expected:
    """What a correct scan reports for one lab port."""

    name: str
    port: int
    service: str
    product: str | None
    severity: str
    access: str
    ae_titles: tuple[str, ...] = ()
    exposes_all: bool = False
    medical: bool = True
    severity_with_credentials: str | None = None


class Lab:
    """Start with ``with Lab(workdir) as lab:``; every server stops on exit."""

    def __init__(self, work: Path, *, seed: int = 7, patients: int = 3) -> None:
        self.work = work.resolve()  # servers run in their own folders: paths must be absolute
        self.seed = seed
        self.patients = patients
        self.host = LOOPBACK
        self.servers: list[Server] = []
        self.expected: list[Expected] = []
        self.closed_port = 0
        self.locked_password = secrets.token_urlsafe(18)
        self.data: LabData | None = None

    @property
    def totals(self) -> Totals:
        assert self.data is not None
        return self.data.totals

    @property
    def ports(self) -> list[int]:
        return sorted([e.port for e in self.expected] + [self.closed_port])

    def expect(self, port: int) -> Expected:
        return next(e for e in self.expected if e.port == port)

    def by_name(self, name: str) -> Expected:
        return next(e for e in self.expected if e.name == name)

    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.stop()
        self.servers.clear()

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        data = self.data = make_data(self.work / "sample", seed=self.seed, patients=self.patients)
        tls = dcmtk.make_certificate(self.work / "tls")
        ports = iter(free_ports(14))
        self.closed_port = next(ports)
        self._orthancs(data, ports)
        self._dcmtk(data, ports, tls)
        self._web(ports, tls)

    def _orthancs(self, data: LabData, it: Iterator[int]) -> None:
        specs = [
            (
                "open",
                orthanc.OrthancSpec(
                    "open", next(it), next(it), plugins=(orthanc.DICOMWEB, orthanc.WEBVIEWER)
                ),
            ),
            (
                "default",
                orthanc.OrthancSpec(
                    "default",
                    next(it),
                    next(it),
                    check_called_aet=True,
                    users={"orthanc": "orthanc"},
                    plugins=(orthanc.DICOMWEB,),
                ),
            ),
            (
                "locked",
                orthanc.OrthancSpec(
                    "locked",
                    next(it),
                    next(it),
                    aet="SITE-" + secrets.token_hex(4).upper(),
                    check_called_aet=True,
                    always_allow_find=False,
                    users={"labadmin": self.locked_password},
                ),
            ),
        ]
        for _, spec in specs:
            self.servers.append(orthanc.start(spec, self.work))
            orthanc.upload(spec, [*data.files, *data.headerless])
        open_, default, locked = (spec for _, spec in specs)
        o, d, k = open_.dicom_port, default.dicom_port, locked.dicom_port
        self.expected += [
            Expected("orthanc-open-dicom", o, "dicom", "orthanc", "critical", "anonymous",
                     ("ANY-SCP",), exposes_all=True),
            Expected("orthanc-open-http", open_.http_port, "http", "orthanc", "critical",
                     "anonymous", exposes_all=True),
            Expected("orthanc-default-dicom", d, "dicom", "orthanc", "high", "guessed-ae-title",
                     ("ORTHANC",), exposes_all=True),
            Expected("orthanc-default-http", default.http_port, "http", "orthanc", "info", "none",
                     severity_with_credentials="high"),
            Expected("orthanc-locked-dicom", k, "dicom", None, "info", "none"),
            Expected("orthanc-locked-http", locked.http_port, "http", "orthanc", "info", "none"),
        ]  # fmt: skip

    def _dcmtk(self, data: LabData, it: Iterator[int], tls: tuple[Path, Path]) -> None:
        ready = decompressed_for_dcmtk(data, self.work / "decoded")
        any_port, one_port, echo_port, tls_port = next(it), next(it), next(it), next(it)
        for name, port, any_peer in (("any", any_port, True), ("one", one_port, False)):
            server = dcmtk.start_dcmqrscp(name, port, "PACS", self.work, any_peer=any_peer)
            self.servers.append(server)
            dcmtk.storescu(port, "PACS", ready, data.headerless, self.work / f"storescu-{name}.log")
        self.servers.append(dcmtk.start_storescp("echo", echo_port, self.work))
        self.servers.append(dcmtk.start_storescp("tls", tls_port, self.work, tls=tls))
        self.expected += [
            Expected("dcmqrscp-any", any_port, "dicom", "dcmtk", "high", "guessed-ae-title",
                     ("PACS",), exposes_all=True),
            Expected("dcmqrscp-one-peer", one_port, "dicom", None, "info", "none"),
            Expected("storescp-echo", echo_port, "dicom", "dcmtk", "medium", "anonymous",
                     ("ANY-SCP",)),
            Expected("storescp-tls", tls_port, "dicom-tls", "dcmtk", "medium", "anonymous",
                     ("ANY-SCP",)),
        ]  # fmt: skip

    def _web(self, it: Iterator[int], tls: tuple[Path, Path]) -> None:
        http_port, https_port = next(it), next(it)
        self.servers.append(start_static("http", http_port, self.work))
        self.servers.append(start_static("https", https_port, self.work, tls=tls))
        self.expected += [
            Expected("plain-http", http_port, "http", None, "info", "none", medical=False),
            Expected("plain-https", https_port, "https", None, "info", "none", medical=False),
        ]
