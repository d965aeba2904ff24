"""DICOM association checks: which called AE titles are accepted, echo, fingerprint.

Only A-ASSOCIATE, C-ECHO, C-FIND, C-CANCEL and A-RELEASE are ever sent: never C-STORE,
C-MOVE, C-GET or an N-service. Every association is released (aborted only when the
peer stops answering).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.uid import UID
from pynetdicom import AE, _config, evt
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ

from pacsguard.net import refusals
from pacsguard.net.sockets import NoDelayAE
from pacsguard.scan.model import AssocAttempt, DicomInfo
from pacsguard.scan.ratelimit import RateLimits

# pynetdicom logs every C-FIND response identifier at INFO by default: never here.
_config.LOG_RESPONSE_IDENTIFIERS = False
_config.LOG_REQUEST_IDENTIFIERS = False

VERIFICATION = UID("1.2.840.10008.1.1")
STUDY_ROOT = UID("1.2.840.10008.5.1.4.1.2.2.1")
PATIENT_ROOT = UID("1.2.840.10008.5.1.4.1.2.1.1")
MODEL_NAMES = {STUDY_ROOT: "study-root", PATIENT_ROOT: "patient-root"}


@dataclass(frozen=True)
class DicomSettings:
    calling_ae: str
    timeout: float
    tls: ssl.SSLContext | None = None


@dataclass
class Attempt:
    """An association attempt; ``assoc`` is live only when accepted."""

    record: AssocAttempt
    spoke_dicom: bool
    assoc: Any = None
    pdus: list[object] = field(default_factory=list)


def _application_entity(settings: DicomSettings) -> AE:
    ae = NoDelayAE(ae_title=settings.calling_ae)  # the shared layer: read timeout, NODELAY
    for abstract_syntax in (VERIFICATION, STUDY_ROOT, PATIENT_ROOT):
        ae.add_requested_context(abstract_syntax)
    ae.acse_timeout = settings.timeout
    ae.dimse_timeout = settings.timeout
    ae.network_timeout = settings.timeout
    ae.connection_timeout = settings.timeout
    return ae


def associate(
    host: str, port: int, called_ae: str, settings: DicomSettings, limits: RateLimits
) -> Attempt:
    """Send one A-ASSOCIATE-RQ and decode what came back."""
    pdus: list[object] = []

    def on_pdu(event: Any) -> None:
        pdus.append(event.pdu)

    limits.acquire(host)
    tls_args = (settings.tls, host) if settings.tls is not None else None
    assoc = _application_entity(settings).associate(
        host, port, ae_title=called_ae, tls_args=tls_args, evt_handlers=[(evt.EVT_PDU_RECV, on_pdu)]
    )
    if assoc.is_established:
        return Attempt(AssocAttempt(called_ae, "accepted"), True, assoc, pdus)
    rejection = next((p for p in pdus if isinstance(p, A_ASSOCIATE_RJ)), None)
    if rejection is not None:
        result, source, reason = refusals.rejection(
            rejection.result, rejection.source, rejection.reason_diagnostic
        )
        return Attempt(
            AssocAttempt(called_ae, "rejected", result, source, reason), True, None, pdus
        )
    abort = next((p for p in pdus if isinstance(p, A_ABORT_RQ)), None)
    if abort is not None:
        source, reason = refusals.abort(abort.source, abort.reason_diagnostic)
        return Attempt(AssocAttempt(called_ae, "aborted", None, source, reason), True, None, pdus)
    return Attempt(AssocAttempt(called_ae, "no-answer"), False, None, pdus)


def release(assoc: Any) -> None:
    """A-RELEASE; an A-ABORT only when the peer no longer answers."""
    if assoc is None or not assoc.is_established:
        return
    try:
        assoc.release()
    except Exception:
        with contextlib.suppress(Exception):
            assoc.abort()


@contextlib.contextmanager
def released(attempt: Attempt) -> Iterator[Any]:
    try:
        yield attempt.assoc
    finally:
        release(attempt.assoc)


def describe(assoc: Any, info: DicomInfo) -> None:
    """Fingerprint and accepted query models of an established association."""
    acceptor = assoc.acceptor
    info.implementation_class_uid = _clean(acceptor.implementation_class_uid)
    info.implementation_version_name = _clean(acceptor.implementation_version_name)
    accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
    info.query_models = [MODEL_NAMES[m] for m in (STUDY_ROOT, PATIENT_ROOT) if m in accepted]


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip(" \x00")
    return text or None


def echo(assoc: Any) -> bool | None:
    """C-ECHO; ``None`` when the peer did not accept the Verification context."""
    accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
    if VERIFICATION not in accepted:
        return None
    status = assoc.send_c_echo()
    return bool(status) and int(getattr(status, "Status", -1)) == 0
