"""An audit log of who did what on the network, as JSON lines, and as DICOM audit
messages (PS3.15 A.5): one builder (``audit_message``) and one writer (``DicomAuditTrail``)
for every capability.

A line names peers (AE titles, addresses, certificate subjects), operations, SOP classes,
counts and outcomes; never a value read from a dataset. Instances, where a line must name
one, are named by their de-identified UIDs only (the caller's duty: this module writes
what it is given, so it is given no dataset).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET


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


# -- DICOM audit messages (PS3.15 A.5) ---------------------------------------------------

DCM = "DCM"
Code = tuple[str, str]  # (code value, meaning), coding scheme DCM
APPLICATION_ACTIVITY: Code = ("110100", "Application Activity")
APPLICATION_START: Code = ("110120", "Application Start")
APPLICATION_STOP: Code = ("110121", "Application Stop")
SECURITY_ALERT: Code = ("110113", "Security Alert")
NODE_AUTHENTICATION: Code = ("110126", "Node Authentication")
RESTRICTED_FUNCTION: Code = ("110132", "Use of Restricted Function")
QUERY: Code = ("110112", "Query")
INSTANCES_TRANSFERRED: Code = ("110104", "DICOM Instances Transferred")
SOURCE_ROLE: Code = ("110153", "Source Role ID")
DESTINATION_ROLE: Code = ("110152", "Destination Role ID")
APPLICATION_ROLE: Code = ("110150", "Application")
SOP_CLASS_UID: Code = ("110181", "SOP Class UID")
STUDY_INSTANCE_UID: Code = ("110180", "Study Instance UID")


@dataclass(frozen=True)
class Participant:
    """An ActiveParticipant: an AE (its title, address) in a role; ``user`` defaults to the
    AE title; ``alternative`` is written as AlternativeUserID when given."""

    ae: str
    address: str
    role: Code
    requestor: bool
    user: str | None = None
    alternative: str | None = None


@dataclass(frozen=True)
class AuditObject:
    """A ParticipantObjectIdentification: a study (``kind`` STUDY_INSTANCE_UID) or a SOP
    class (SOP_CLASS_UID), never a value read from a dataset other than a de-identified UID.
    ``sop_classes``: instance counts per SOP Class UID (PS3.15 A.5.2 ParticipantObject
    Description); ``instances``: a ParticipantObjectDetail count; ``life_cycle``: RFC 3881
    ParticipantObjectDataLifeCycle ("7": de-identification)."""

    id: str
    kind: Code
    sop_classes: dict[str, int] | None = None
    instances: int | None = None
    life_cycle: str | None = None


def _code(parent: ET.Element, tag: str, code: Code) -> None:
    ET.SubElement(parent, tag, {"csd-code": code[0], "codeSystemName": DCM,
                                "originalText": code[1]})  # fmt: skip


def audit_message(
    event: Code,
    outcome: int,
    *,
    source_id: str,
    action: str = "E",
    event_type: Code | None = None,
    participants: tuple[Participant, ...] = (),
    objects: tuple[AuditObject, ...] = (),
) -> str:
    """One PS3.15 A.5.1 ``AuditMessage`` (the RFC 3881 schema) as one line of XML.
    ``outcome``: 0 success, 4 minor failure, 8 serious failure; ``action``: C R U D E."""
    root = ET.Element("AuditMessage")
    ident = ET.SubElement(root, "EventIdentification", EventActionCode=action,
                          EventDateTime=utc_now(), EventOutcomeIndicator=str(outcome))  # fmt: skip
    _code(ident, "EventID", event)
    if event_type is not None:
        _code(ident, "EventTypeCode", event_type)
    for who in participants:
        attributes = {"UserID": who.user if who.user is not None else who.ae}
        if who.alternative is not None:
            attributes["AlternativeUserID"] = who.alternative
        attributes.update(UserIsRequestor="true" if who.requestor else "false",
                          NetworkAccessPointID=who.address,
                          NetworkAccessPointTypeCode="2")  # an IP address  # fmt: skip
        _code(ET.SubElement(root, "ActiveParticipant", attributes), "RoleIDCode", who.role)
    ET.SubElement(root, "AuditSourceIdentification", AuditSourceID=source_id)
    for item in objects:
        attributes = {"ParticipantObjectID": item.id, "ParticipantObjectTypeCode": "2",
                      "ParticipantObjectTypeCodeRole": "3"}  # fmt: skip
        if item.life_cycle is not None:
            attributes["ParticipantObjectDataLifeCycle"] = item.life_cycle
        obj = ET.SubElement(root, "ParticipantObjectIdentification", attributes)
        _code(obj, "ParticipantObjectIDTypeCode", item.kind)
        if item.sop_classes is not None:
            description = ET.SubElement(obj, "ParticipantObjectDescription")
            for sop_class, n in sorted(item.sop_classes.items()):
                ET.SubElement(description, "SOPClass", UID=sop_class, NumberOfInstances=str(n))
        if item.instances is not None:
            value = base64.b64encode(str(item.instances).encode()).decode()  # xs:base64Binary
            ET.SubElement(obj, "ParticipantObjectDetail", type="instances", value=value)
    return ET.tostring(root, encoding="unicode")


def dicom_audit_message(
    *,
    event: Code,
    outcome: int,
    source: dict[str, object],
    destination: dict[str, object],
    studies: dict[str, Counter[str]],
    life_cycle: str | None = None,
) -> str:
    """``audit_message`` for instances received from ``source`` by ``destination`` (its AE
    title is the audit source), e.g. "DICOM Instances Transferred". ``studies`` maps a
    (de-identified) Study Instance UID to instance counts per SOP Class UID."""
    participants = (
        Participant(str(source.get("ae", "")), str(source.get("address", "")), SOURCE_ROLE, True),
        Participant(str(destination.get("ae", "")), str(destination.get("address", "")),
                    DESTINATION_ROLE, False),
    )  # fmt: skip
    objects = tuple(
        AuditObject(study, STUDY_INSTANCE_UID, sop_classes=dict(classes), life_cycle=life_cycle)
        for study, classes in sorted(studies.items())
    )
    return audit_message(
        event, outcome, source_id=str(destination.get("ae", "")), action="C",
        participants=participants, objects=objects,
    )  # fmt: skip


class DicomAuditTrail:
    """Writes audit messages, one per line, to a file (mode 0600, O_APPEND) and, with
    ``syslog=(host, port)``, as RFC 5424 syslog messages over UDP (RFC 5426) to an audit
    record repository. Thread-safe; a lost datagram never raises into the caller."""

    def __init__(self, path: Path, *, syslog: tuple[str, int] | None = None,
                 app_name: str = "pacsguard") -> None:  # fmt: skip
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._lock = threading.Lock()
        self._syslog = syslog
        self._app = app_name
        self._sock: socket.socket | None = None
        if syslog is not None:
            family = socket.AF_INET6 if ":" in syslog[0] else socket.AF_INET
            self._sock = socket.socket(family, socket.SOCK_DGRAM)

    def write(self, xml: str) -> None:
        data = (xml + "\n").encode("utf-8")
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, data)  # one write with O_APPEND: lines never interleave
            if self._sock is not None and self._syslog is not None:
                header = (
                    f"<85>1 {utc_now()} {socket.gethostname()} {self._app} {os.getpid()} "
                    "IHE+RFC-3881 - "
                )  # PRI 85: facility authpriv (10), severity notice (5)
                payload = header.encode() + b"\xef\xbb\xbf" + xml.encode()  # BOM: UTF-8 MSG
                with contextlib.suppress(OSError):
                    self._sock.sendto(payload, self._syslog)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._sock is not None:
                self._sock.close()
                self._sock = None
