"""DICOMweb STOW-RS receiver (PS3.18 10.5): ``POST /studies`` and ``POST /studies/{study}``
with multipart/related parts of type application/dicom, each received exactly like a
C-STORE (``Receiver.receive``). With a Study Instance UID in the path (the sender's own,
before de-identification), a part of another study is not stored: it is listed in the
Failed SOP Sequence with Failure Reason C409 (a "cannot understand" class code, the one
dcm4chee uses for "different Study Instance UID"), so the reply is 202 when some parts
were stored and 409 when none were (PS3.18 10.5.3).

Responses: 200 when every instance was stored, 202 when some were, 409 when none were
(503 when none could be for lack of resources); 400 for a malformed body, 411 without a
Content-Length, 413 over the size limit, 415 for a media type other than
multipart/related; type="application/dicom", 403 for a peer not on the allow-list. The
body names stored instances by their de-identified UIDs.
"""

from __future__ import annotations

import io
import json
import re
import ssl
import threading
from collections import Counter
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pydicom

from pacsguard.gateway.receive import OUT_OF_RESOURCES, Receiver
from pacsguard.net import AllowRule, AssociationPolicy, AuditLog, Peer, nodelay
from pacsguard.net.tls import peer_subject

MAX_BODY = 1 << 30
SOURCE = "stow"
OTHER_STUDY = 0xC409  # the part's Study Instance UID differs from the one in the path
UID_SYNTAX = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


class MultipartError(ValueError):
    """A body that is not well-formed multipart/related (the message says why)."""


@dataclass(frozen=True)
class Part:
    content_type: str
    data: bytes


def _params(header: str) -> tuple[str, dict[str, str]]:
    message = Message()
    message["Content-Type"] = header
    params = {k.lower(): v for k, v in message.get_params(failobj=[], header="content-type")[1:]}
    return message.get_content_type(), params


def parse_multipart(body: bytes, boundary: str) -> list[Part]:
    """Split a multipart body (RFC 2046 5.1); strict: any deviation is a ``MultipartError``."""
    if not boundary or len(boundary) > 70:
        raise MultipartError("the boundary parameter is missing or longer than 70 characters")
    delimiter = b"--" + boundary.encode("ascii", errors="strict")
    start = body.find(delimiter)
    if start < 0 or (start > 0 and body[start - 2 : start] != b"\r\n"):
        raise MultipartError("the body does not start with the boundary delimiter")
    parts: list[Part] = []
    position = start + len(delimiter)
    while True:
        if body[position : position + 2] == b"--":
            break
        if body[position : position + 2] != b"\r\n":
            raise MultipartError("a boundary delimiter is not followed by CRLF")
        position += 2
        end_headers = body.find(b"\r\n\r\n", position)
        if end_headers < 0:
            raise MultipartError("a part has no header section end (CRLF CRLF)")
        headers = body[position:end_headers].decode("latin-1").split("\r\n")
        content_type = ""
        for line in headers:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise MultipartError("a part header line has no ':'")
            if name.strip().lower() == "content-type":
                content_type = _params(value.strip())[0]
        if not content_type:
            raise MultipartError("a part has no Content-Type")
        data_start = end_headers + 4
        next_delimiter = body.find(b"\r\n" + delimiter, data_start)
        if next_delimiter < 0:
            raise MultipartError("the body ends without the closing boundary delimiter")
        parts.append(Part(content_type, body[data_start:next_delimiter]))
        position = next_delimiter + 2 + len(delimiter)
    if not parts:
        raise MultipartError("the body holds no part")
    return parts


def _uids(data: bytes) -> tuple[str | None, str | None]:
    """SOP Class and Instance UIDs of a part the sender sent, for its failure entry."""
    return _header(data)[:2]


def _header(data: bytes) -> tuple[str | None, str | None, str | None]:
    """SOP Class, SOP Instance and Study Instance UIDs of a part as the sender sent it (the
    header only: the pixel data is not read)."""
    try:
        ds = pydicom.dcmread(
            io.BytesIO(data),
            stop_before_pixels=True,
            specific_tags=["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"],
        )
    except Exception:
        return None, None, None
    sop_class, sop_instance, study = (
        str(ds.get(name, "") or "") or None
        for name in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID")
    )
    return sop_class, sop_instance, study


def study_in_path(path: str) -> tuple[bool, str | None]:
    """``/studies`` -> (True, None); ``/studies/{uid}`` -> (True, uid); else (False, None).
    A query string is ignored; the UID is checked by the caller."""
    parts = path.split("?", 1)[0].rstrip("/").split("/")
    if parts[:2] != ["", "studies"] or len(parts) > 3:
        return False, None
    return True, (parts[2] if len(parts) == 3 else None)


def _entry(
    sop_class: str | None, sop_instance: str | None, reason: int | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if sop_class:
        entry["00081150"] = {"vr": "UI", "Value": [sop_class]}
    if sop_instance:
        entry["00081155"] = {"vr": "UI", "Value": [sop_instance]}
    if reason is not None:
        entry["00081197"] = {"vr": "US", "Value": [reason]}
    return entry


class StowServer(ThreadingHTTPServer):
    daemon_threads = True
    tls_context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        sock = nodelay(sock)
        if self.tls_context is not None:  # the handshake runs in the request's thread
            sock = self.tls_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, address


def serve_stow(
    receiver: Receiver,
    rules: tuple[AllowRule, ...],
    audit: AuditLog,
    host: str,
    port: int,
    tls: ssl.SSLContext | None = None,
    on_stored: Any = lambda: None,
) -> StowServer:
    # An HTTP client presents no AE title: only the address and certificate parts apply.
    policy = AssociationPolicy([AllowRule(None, r.host, r.subject) for r in rules])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _reply(self, code: int, body: dict[str, Any] | str) -> None:
            if isinstance(body, str):
                data, kind = (body + "\n").encode(), "text/plain; charset=utf-8"
            else:
                data, kind = json.dumps(body).encode(), "application/dicom+json"
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _refuse(self, code: int, why: str, peer: Peer) -> None:
            audit.write("stow-refused", service=SOURCE, peer=peer.describe(), http=code, reason=why)
            self.close_connection = True
            self._reply(code, why)

        def do_POST(self) -> None:
            peer = Peer(
                "",
                "",
                self.client_address[0],
                self.client_address[1],
                peer_subject(self.connection),
            )
            if policy.check(peer) is not None:
                self._refuse(403, "this address (or certificate) is not on the allow-list", peer)
                return
            served, study = study_in_path(self.path)
            if not served:
                self._refuse(404, "only POST /studies and /studies/{study} are served", peer)
                return
            if study is not None and (len(study) > 64 or not UID_SYNTAX.fullmatch(study)):
                self._refuse(400, "the Study Instance UID in the path is not a valid UID", peer)
                return
            kind, params = _params(self.headers.get("Content-Type", ""))
            if (
                kind != "multipart/related"
                or params.get("type", "application/dicom").lower() != "application/dicom"
            ):
                self._refuse(415, 'send multipart/related; type="application/dicom"', peer)
                return
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self._refuse(411, "a Content-Length is required", peer)
                return
            if int(length) > MAX_BODY:
                self._refuse(413, f"the body is larger than {MAX_BODY} bytes", peer)
                return
            body = self.rfile.read(int(length))
            if len(body) != int(length):
                self._refuse(400, "the body is shorter than its Content-Length", peer)
                return
            try:
                parts = parse_multipart(body, params.get("boundary", ""))
            except MultipartError as exc:
                self._refuse(400, f"malformed multipart body: {exc}", peer)
                return
            if any(p.content_type != "application/dicom" for p in parts):
                self._refuse(415, "every part must be application/dicom", peer)
                return
            self._store(parts, peer, study)

        def _store(self, parts: list[Part], peer: Peer, study: str | None) -> None:
            stored, failed, outcomes = [], [], Counter[str]()
            for part in parts:
                if study is not None:
                    sop_class, sop_instance, part_study = _header(part.data)
                    if part_study != study:
                        failed.append(((sop_class, sop_instance), OTHER_STUDY))
                        outcomes[f"0x{OTHER_STUDY:04X}"] += 1
                        continue
                result = receiver.receive(part.data, SOURCE, SOURCE)
                if result.ok:
                    stored.append(_entry(result.sop_class, result.uid))
                    outcomes["success"] += 1
                    on_stored()
                else:
                    failed.append((_uids(part.data), result.status))
                    outcomes[f"0x{result.status:04X}"] += 1
            body: dict[str, Any] = {}
            if stored:
                body["00081199"] = {"vr": "SQ", "Value": stored}
            if failed:
                body["00081198"] = {"vr": "SQ", "Value": [_entry(c, i, s) for (c, i), s in failed]}
            code = 200 if not failed else 202 if stored else 409
            if not stored and all(s == OUT_OF_RESOURCES for _, s in failed):
                code = 503
            operations = [
                {"operation": "STOW-RS", "outcome": k, "count": n}
                for k, n in sorted(outcomes.items())
            ]
            audit.write(
                "stow", service=SOURCE, peer=peer.describe(), http=code, operations=operations
            )
            self._reply(code, body)

    server = StowServer((host, port), Handler)
    server.tls_context = tls
    threading.Thread(target=server.serve_forever, name="gateway-stow", daemon=True).start()
    return server
