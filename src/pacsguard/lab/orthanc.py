"""Orthanc (Debian package) in the lab: one process per configuration, loaded over REST."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pacsguard.lab.procs import LOOPBACK, LabError, Server, tool

PLUGIN_DIR = Path("/usr/share/orthanc/plugins")
DICOMWEB = "libOrthancDicomWeb.so"
WEBVIEWER = "libOrthancWebViewer.so"


@dataclass
class OrthancSpec:
    name: str
    http_port: int
    dicom_port: int
    aet: str = "ORTHANC"
    check_called_aet: bool = False
    always_allow_find: bool = True
    users: dict[str, str] = field(default_factory=dict)
    plugins: Sequence[str] = ()

    def config(self, storage: Path) -> dict[str, Any]:
        plugins = [str(PLUGIN_DIR / p) for p in self.plugins if (PLUGIN_DIR / p).exists()]
        config: dict[str, Any] = {
            "Name": self.name,
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            # The scanner runs on 127.0.0.1: same answers, and the lab stays off the network.
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": self.users,
            "DicomCheckCalledAet": self.check_called_aet,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowFind": self.always_allow_find,
            "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False,
            "DicomModalities": {},
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "Plugins": plugins,
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            "StableAge": 1,
            "SaveJobs": False,
        }
        if DICOMWEB in self.plugins:
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": False}
        return config


def start(spec: OrthancSpec, work: Path) -> Server:
    folder = work / f"orthanc-{spec.name}"
    storage = folder / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = folder / "orthanc.json"
    config.write_text(json.dumps(spec.config(storage), indent=1), encoding="utf-8")
    server = Server(
        f"Orthanc {spec.name}", [tool("Orthanc"), str(config)], folder / "orthanc.log", cwd=folder
    )
    server.wait_port(spec.http_port)
    server.wait_port(spec.dicom_port)
    return server


def upload(spec: OrthancSpec, files: Sequence[Path]) -> None:
    """POST /instances for each file, with the lab's own account when the API is protected."""
    auth = next(iter(spec.users.items()), None)
    base = f"http://{LOOPBACK}:{spec.http_port}"
    with httpx.Client(base_url=base, auth=auth, timeout=30, trust_env=False) as client:
        for path in files:
            reply = client.post("/instances", content=path.read_bytes())
            if reply.status_code != 200:
                raise LabError(f"Orthanc {spec.name} refused {path.name} ({reply.status_code})")
        stats = client.get("/statistics").json()
    if int(stats.get("CountInstances", 0)) < len(files):
        raise LabError(
            f"Orthanc {spec.name} holds {stats.get('CountInstances')} of {len(files)} instances"
        )
