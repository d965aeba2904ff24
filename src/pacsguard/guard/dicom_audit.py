"""DICOM audit messages (PS3.15 A.5) for the guard's events, as well as its JSON audit log.

Each message is the ``AuditMessage`` XML of PS3.15 A.5.1 on one line, appended to
``state/dicom-audit.xml.log`` and, with ``dicom_audit_syslog = "host:port"``, sent as an
RFC 5424 syslog message over UDP (RFC 5426) to an audit record repository.

Mapped events (PS3.15 A.5.3): the guard starting and stopping (Application Activity,
110100), an association refused (Security Alert 110113, "Node Authentication" 110126), a
C-FIND relayed (Query 110112), a C-MOVE/C-GET relayed (DICOM Instances Transferred 110104),
a request refused (Security Alert 110113, "Use of Restricted Function" 110132).
Participant objects name the SOP class only. PS3.15 would also carry the query itself
(ParticipantObjectQuery) and the study UIDs; the guard's rule is that no value read from a
dataset is logged, so those are left out: the JSON audit log has the keys' keywords.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree as ET

DICOM_AUDIT_FILE = "dicom-audit.xml.log"
DCM = "DCM"
APPLICATION_ACTIVITY = ("110100", "Application Activity")
APPLICATION_START = ("110120", "Application Start")
APPLICATION_STOP = ("110121", "Application Stop")
SECURITY_ALERT = ("110113", "Security Alert")
NODE_AUTHENTICATION = ("110126", "Node Authentication")
RESTRICTED_FUNCTION = ("110132", "Use of Restricted Function")
QUERY = ("110112", "Query")
INSTANCES_TRANSFERRED = ("110104", "DICOM Instances Transferred")
SOURCE_ROLE = ("110153", "Source Role ID")
DESTINATION_ROLE = ("110152", "Destination Role ID")
APPLICATION_ROLE = ("110150", "Application")
SOP_CLASS_UID = ("110181", "SOP Class UID")


def _code(parent: ET.Element, tag: str, code: tuple[str, str]) -> None:
    ET.SubElement(
        parent, tag, {"csd-code": code[0], "codeSystemName": DCM, "originalText": code[1]}
    )


class DicomAudit:
    """Builds and writes the messages; thread-safe; never raises into the caller's path."""

    def __init__(self, state: Path, source_id: str, syslog: tuple[str, int] | None) -> None:
        self.path = state / DICOM_AUDIT_FILE
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._fd = fd
        self._lock = threading.Lock()
        self.source_id = source_id
        self._syslog = syslog
        self._sock: socket.socket | None = None
        if syslog is not None:
            family = socket.AF_INET6 if ":" in syslog[0] else socket.AF_INET
            self._sock = socket.socket(family, socket.SOCK_DGRAM)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def message(
        self,
        event: tuple[str, str],
        outcome: int,
        *,
        action: str = "E",
        event_type: tuple[str, str] | None = None,
        requestor: dict[str, str] | None = None,
        local: dict[str, str] | None = None,
        sop_class: str | None = None,
        instances: int | None = None,
    ) -> None:
        """``outcome``: 0 success, 4 minor failure, 8 serious failure (PS3.15 A.5.2)."""
        root = ET.Element("AuditMessage")
        ident = ET.SubElement(
            root,
            "EventIdentification",
            {
                "EventActionCode": action,
                "EventDateTime": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "EventOutcomeIndicator": str(outcome),
            },
        )
        _code(ident, "EventID", event)
        if event_type is not None:
            _code(ident, "EventTypeCode", event_type)
        for who, is_requestor, role in (
            (requestor, True, SOURCE_ROLE),
            (local, False, DESTINATION_ROLE if requestor else APPLICATION_ROLE),
        ):
            if who is None:
                continue
            participant = ET.SubElement(
                root,
                "ActiveParticipant",
                {
                    "UserID": who.get("user", ""),
                    "AlternativeUserID": f"AETITLES={who.get('ae', '')}",
                    "UserIsRequestor": "true" if is_requestor else "false",
                    "NetworkAccessPointID": who.get("address", ""),
                    "NetworkAccessPointTypeCode": "2",  # an IP address
                },
            )
            _code(participant, "RoleIDCode", role)
        ET.SubElement(root, "AuditSourceIdentification", {"AuditSourceID": self.source_id})
        if sop_class is not None:
            obj = ET.SubElement(
                root,
                "ParticipantObjectIdentification",
                {
                    "ParticipantObjectID": sop_class,
                    "ParticipantObjectTypeCode": "2",  # system object
                    "ParticipantObjectTypeCodeRole": "3",  # report
                },
            )
            _code(obj, "ParticipantObjectIDTypeCode", SOP_CLASS_UID)
            if instances is not None:
                ET.SubElement(
                    obj, "ParticipantObjectDetail", {"type": "instances", "value": _b64(instances)}
                )
        self._emit(ET.tostring(root, encoding="unicode"))

    def _emit(self, xml: str) -> None:
        data = (xml + "\n").encode("utf-8")
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, data)
            if self._sock is not None and self._syslog is not None:
                header = (
                    f"<85>1 {datetime.now(UTC).isoformat(timespec='milliseconds')} "
                    f"{socket.gethostname()} pacsguard-guard {os.getpid()} IHE+RFC-3881 - "
                )  # PRI 85: facility authpriv (10), severity notice (5)
                payload = header.encode() + b"\xef\xbb\xbf" + xml.encode()  # BOM: UTF-8 MSG
                with contextlib.suppress(OSError):
                    self._sock.sendto(payload, self._syslog)


def _b64(count: int) -> str:
    import base64

    return base64.b64encode(str(count).encode()).decode()
