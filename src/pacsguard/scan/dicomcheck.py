"""One DICOM port: which called AE titles open it, echo, fingerprint, and what C-FIND shows."""

from __future__ import annotations

from collections.abc import Sequence

from pacsguard.scan import dimse
from pacsguard.scan.count import Finder, count_exposure
from pacsguard.scan.model import Access, DicomInfo, Finding
from pacsguard.scan.products import GENERIC_AE, toolkit, version_of
from pacsguard.scan.ratelimit import WHOLE, RateLimits


def check_dicom(
    host: str,
    port: int,
    settings: dimse.DicomSettings,
    limits: RateLimits,
    ae_titles: Sequence[str],
    cap: int,
) -> Finding | None:
    """``None`` when the port does not speak DICOM (in the transport given by ``settings``)."""
    attempt = dimse.associate(host, port, GENERIC_AE, settings, limits)
    if not attempt.spoke_dicom:
        return None
    info = DicomInfo(attempts=[attempt.record])
    access: Access = "anonymous" if attempt.assoc is not None else "none"
    if attempt.assoc is None:
        for title in (t for t in ae_titles if t != GENERIC_AE):
            attempt = dimse.associate(host, port, title, settings, limits)
            info.attempts.append(attempt.record)
            if attempt.assoc is not None:
                access = "guessed-ae-title"
                break
            if not attempt.spoke_dicom:
                break  # the peer stopped answering: do not insist
    finding = Finding(
        host=host,
        port=port,
        service="dicom-tls" if settings.tls is not None else "dicom",
        medical=True,
        access=access,
        dicom=info,
    )
    if attempt.assoc is None:
        return finding
    finding.ae_titles = [attempt.record.called_ae]
    with dimse.released(attempt) as assoc:
        dimse.describe(assoc, info)
        info.echo = dimse.echo(assoc)
        finder = Finder(assoc, cap, WHOLE * settings.timeout)
        info.find, finding.exposed = count_exposure(finder)
    finding.product = toolkit(info.implementation_class_uid, info.implementation_version_name)
    finding.version = version_of(info.implementation_version_name)
    if finding.product == "dcmtk" and attempt.record.called_ae == "ORTHANC":
        finding.product, finding.version = "orthanc", None
    return finding
