"""An audit log of who did what on the network, as JSON lines.

A line names peers (AE titles, addresses, certificate subjects), operations, SOP classes,
counts and outcomes; never a value read from a dataset. Instances, where a line must name
one, are named by their de-identified UIDs only (the caller's duty: this module writes
what it is given, so it is given no dataset).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    """Append-only JSON lines; each line is flushed (``durable`` adds an fsync)."""

    def __init__(self, path: Path, *, durable: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._lock = threading.Lock()
        self._durable = durable

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"time": utc_now(), "event": event, **fields}, sort_keys=True)
        data = (line + "\n").encode()
        with self._lock:
            os.write(self._fd, data)  # one write with O_APPEND: lines never interleave
            if self._durable:
                os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


@dataclass
class AssociationTally:
    """Counts of one association: operations per SOP class and outcome."""

    peer: dict[str, object]
    service: str
    started: str = field(default_factory=utc_now)
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    studies: dict[str, Counter[str]] = field(default_factory=dict)  # de-identified UIDs only
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(
        self, operation: str, sop_class: str, outcome: str, n: int = 1, study: str | None = None
    ) -> None:
        """``study``: the de-identified Study Instance UID of a processed instance."""
        with self._lock:
            self.counts[(operation, sop_class, outcome)] += n
            if study is not None:
                self.studies.setdefault(study, Counter())[sop_class] += n

    def summary(self) -> list[dict[str, object]]:
        with self._lock:
            items = sorted(self.counts.items())
        return [
            {"operation": op, "sop_class": sop, "outcome": outcome, "count": n}
            for (op, sop, outcome), n in items
        ]

    def close(self, audit: AuditLog, how: str) -> None:
        audit.write(
            "association-closed",
            service=self.service,
            peer=self.peer,
            started=self.started,
            closed=how,
            operations=self.summary(),
        )


def dicom_audit_message(
    *,
    event: tuple[str, str],
    outcome: int,
    source: dict[str, object],
    destination: dict[str, object],
    studies: dict[str, Counter[str]],
    life_cycle: str | None = None,
) -> str:
    """A DICOM audit message (PS3.15 A.5, the RFC 3881 schema), e.g. "DICOM Instances
    Transferred" (``("110104", "DICOM Instances Transferred")``). ``studies`` maps a
    (de-identified) Study Instance UID to instance counts per SOP Class UID.
    ``life_cycle``: RFC 3881 ParticipantObjectDataLifeCycle code ("7": de-identification).
    ``outcome``: 0 success, 4 minor failure, 8 serious failure."""
    from xml.etree import ElementTree as ET

    root = ET.Element("AuditMessage")
    ident = ET.SubElement(root, "EventIdentification", EventActionCode="C",
                          EventDateTime=utc_now(), EventOutcomeIndicator=str(outcome))  # fmt: skip
    ET.SubElement(ident, "EventID", {"csd-code": event[0], "codeSystemName": "DCM",
                                     "originalText": event[1]})  # fmt: skip
    roles = (("110153", "Source Role ID", source, "true"),
             ("110152", "Destination Role ID", destination, "false"))  # fmt: skip
    for code, text, peer, requestor in roles:
        active = ET.SubElement(
            root, "ActiveParticipant", UserID=str(peer.get("ae", "")),
            UserIsRequestor=requestor, NetworkAccessPointID=str(peer.get("address", "")),
            NetworkAccessPointTypeCode="2",
        )  # fmt: skip
        ET.SubElement(active, "RoleIDCode", {"csd-code": code, "codeSystemName": "DCM",
                                             "originalText": text})  # fmt: skip
    ET.SubElement(root, "AuditSourceIdentification", AuditSourceID=str(destination.get("ae", "")))
    for study, classes in sorted(studies.items()):
        attributes = {"ParticipantObjectID": study, "ParticipantObjectTypeCode": "2",
                      "ParticipantObjectTypeCodeRole": "3"}  # fmt: skip
        if life_cycle is not None:
            attributes["ParticipantObjectDataLifeCycle"] = life_cycle
        obj = ET.SubElement(root, "ParticipantObjectIdentification", attributes)
        ET.SubElement(obj, "ParticipantObjectIDTypeCode", {"csd-code": "110180",
                      "codeSystemName": "DCM", "originalText": "Study Instance UID"})  # fmt: skip
        description = ET.SubElement(obj, "ParticipantObjectDescription")
        for sop_class, n in sorted(classes.items()):
            ET.SubElement(description, "SOPClass", UID=sop_class, NumberOfInstances=str(n))
    return ET.tostring(root, encoding="unicode")
