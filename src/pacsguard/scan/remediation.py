"""Concrete fix text for each issue, in the words of the product found."""

from __future__ import annotations

from pacsguard.guard.snippet import config_snippet
from pacsguard.scan.model import Finding

ORTHANC = {
    "accepts-any-ae-title": (
        'Orthanc: set "DicomCheckCalledAet": true and change "DicomAet" from the default '
        "ORTHANC to a site-specific title."
    ),
    "guessable-ae-title": (
        'Orthanc: replace the well-known "DicomAet" (ORTHANC) with a site-specific title and keep '
        '"DicomCheckCalledAet": true.'
    ),
    "c-find-open": (
        'Orthanc: register only known modalities in "DicomModalities" (AET, host, port), set '
        '"DicomAlwaysAllowFind", "DicomAlwaysAllowGet" and "DicomAlwaysAllowMove" to false and '
        '"DicomCheckModalityHost": true.'
    ),
    "c-echo-open": 'Orthanc: set "DicomAlwaysAllowEcho": false if unregistered peers need no echo.',
    "cleartext-dicom": (
        'Orthanc: enable DICOM TLS ("DicomTlsEnabled": true, "DicomTlsCertificate", '
        '"DicomTlsPrivateKey", "DicomTlsRemoteCertificateRequired": true) or reach it only '
        "over a VPN."
    ),
    "orthanc-rest-open": (
        'Orthanc: set "AuthenticationEnabled": true with strong "RegisteredUsers", or '
        '"RemoteAccessAllowed": false behind an authenticating reverse proxy.'
    ),
    "dicomweb-open": "Orthanc DICOMweb plugin: it shares the REST API's authentication; enable it.",
    "viewer-open": (
        "Orthanc: the web UI and viewers follow the REST API's authentication; enable it."
    ),
    "default-credentials": (
        'Orthanc: remove the default orthanc:orthanc account from "RegisteredUsers" and use long '
        "random passwords (or an authorization plugin)."
    ),
    "cleartext-http": (
        'Orthanc: set "SslEnabled": true with "SslCertificate", or terminate TLS in a reverse '
        "proxy."
    ),
}

DCMTK = {
    "accepts-any-ae-title": (
        "DCMTK: list only known peers in the AETable (not ANY) with HostTable entries "
        "(AE title, host, port), and use a non-guessable called AE title."
    ),
    "guessable-ae-title": (
        "DCMTK: use a non-guessable called AE title and restrict the AETable peers to the "
        "HostTable entries of known modalities (not ANY)."
    ),
    "c-find-open": (
        "DCMTK dcmqrscp: restrict query access with AETable peers (not ANY) and a firewall rule "
        "limited to the modalities' addresses."
    ),
}

DCMQRSCP = {
    **DCMTK,
    "cleartext-dicom": (
        "DCMTK dcmqrscp has no TLS of its own: reach it only over a VPN or a TLS tunnel "
        "(e.g. stunnel), with a firewall rule limited to the modalities' addresses."
    ),
}

# storescp (storage only, no query) has no access list: AETable advice does not apply.
STORESCP = {
    "accepts-any-ae-title": (
        "DCMTK storescp has no list of allowed peers and accepts any calling AE title: firewall "
        "its port to the modalities' addresses, give it a non-guessable --aetitle, or receive "
        "through dcmqrscp (AETable of known peers) or a gateway instead."
    ),
    "guessable-ae-title": (
        "DCMTK storescp: set a non-guessable --aetitle and firewall the port to the "
        "modalities' addresses (storescp has no peer list)."
    ),
    "c-echo-open": (
        "DCMTK storescp answers C-ECHO from anyone: firewall the port to known addresses."
    ),
    "cleartext-dicom": (
        "DCMTK storescp: enable TLS (+tls KEY CERT, --require-peer-cert, +cf CA) or reach it "
        "only over a VPN."
    ),
}

DCM4CHEE = {
    "dcm4chee-rs-open": (
        "dcm4chee-arc: deploy the secured variant (Keycloak) so that every REST/DICOMweb "
        "request needs a token."
    ),
    "dicomweb-open": "dcm4chee-arc: protect DICOMweb with Keycloak (secured archive image).",
    "accepts-any-ae-title": (
        "dcm4chee-arc: set accepted calling AE titles (dcmAcceptedCallingAETitle) on each "
        "archive AE."
    ),
    "c-find-open": (
        "dcm4chee-arc: set accepted calling AE titles (dcmAcceptedCallingAETitle) and restrict "
        "the DICOM port to known modalities."
    ),
    "default-credentials": "dcm4chee-arc: change the default Keycloak and LDAP passwords.",
}

GENERIC = {
    "accepts-any-ae-title": (
        "Accept only registered calling AE titles and source addresses; use a non-default called "
        "AE title; firewall the DICOM port from untrusted networks."
    ),
    "guessable-ae-title": (
        "Replace the well-known called AE title with a site-specific one and accept only "
        "registered calling AE titles and addresses."
    ),
    "c-find-open": (
        "Allow queries only from registered modalities and workstations (AE title and address); "
        "never expose the DICOM port to the internet."
    ),
    "c-echo-open": "Answer only registered peers; firewall the port from untrusted networks.",
    "cleartext-dicom": "Carry DICOM over TLS (port 2762) with client certificates, or over a VPN.",
    "orthanc-rest-open": "Require authentication on the REST API.",
    "dicomweb-open": (
        "Require authentication (OAuth/OpenID Connect, or at least HTTPS and basic auth) on "
        "DICOMweb."
    ),
    "dcm4chee-rs-open": "Require authentication on the archive's REST API.",
    "viewer-open": (
        "Put the web viewer behind authentication; serve it only on the internal network."
    ),
    "default-credentials": "Remove default accounts and use long random passwords.",
    "cleartext-http": "Serve the web API over HTTPS only.",
    "legacy-tls": "Disable SSLv3, TLS 1.0 and 1.1; allow TLS 1.2 and 1.3 only.",
    "self-signed-certificate": (
        "Use a certificate from the organisation's CA so that clients can verify the server."
    ),
    "expired-certificate": "Renew the server certificate.",
}

PRODUCT_FIXES = {"orthanc": ORTHANC, "dcmtk": DCMTK, "dcm4chee": DCM4CHEE, "dcm4che": DCM4CHEE}


def _product_fixes(finding: Finding) -> dict[str, str]:
    """The fix table of the product found; DCMTK's storescp and dcmqrscp differ: only the
    query/retrieve server offers C-FIND and has an AETable."""
    if finding.product == "dcmtk":
        info = finding.dicom
        queries = info is not None and (info.find in ("answered", "refused") or info.query_models)
        return DCMQRSCP if queries else STORESCP
    return PRODUCT_FIXES.get(finding.product or "", {})


# DICOM issues that a guard in front closes while the PACS itself cannot be changed.
GUARDED_ISSUES = frozenset(
    {"accepts-any-ae-title", "guessable-ae-title", "c-echo-open", "c-find-open", "cleartext-dicom"}
)


def needs_guard(finding: Finding) -> bool:
    """An exposed DICOM service: one that answered an association without a secret."""
    dicom = finding.service in ("dicom", "dicom-tls")
    return dicom and finding.severity != "info" and bool(GUARDED_ISSUES & set(finding.issues))


def _called_ae(finding: Finding) -> str | None:
    """The called AE title clients use, where scan learned it: a guessed title opened the
    PACS; an anonymous one accepts scan's generic probe title, which no client uses."""
    guessed = finding.access == "guessed-ae-title" and finding.ae_titles
    return finding.ae_titles[0] if guessed else None


def guard_config_for(finding: Finding) -> str | None:
    """A starting guard.toml for this host (``pacsguard guard init``'s text), or None."""
    if not needs_guard(finding):
        return None
    return config_snippet(finding.host, finding.port, _called_ae(finding))


def _guard_fix(finding: Finding) -> str:
    title = _called_ae(finding)
    init = f"pacsguard guard init --pacs {finding.host}:{finding.port}"
    init = (
        f"`{init} --ae-title {title}`"
        if title
        else f"`{init}` (then set ae_title to the AE title your clients call)"
    )
    return (
        f"Until the {finding.product or 'PACS'} itself can be fixed: put pacsguard guard in "
        f"front of it. The guard takes over {finding.host}:{finding.port}, the PACS moves to a "
        "private address only the guard reaches, and only the clients listed in guard.toml "
        "(calling AE title and address, TLS for those that can) may echo, query or retrieve, "
        f"each as allowed, audited. Starting config: the report's guard.toml, or {init}."
    )


def remediation_for(finding: Finding) -> list[str]:
    """The fix text for each issue of the finding (product wording first, generic otherwise),
    then, for an exposed DICOM service, putting ``pacsguard guard`` in front."""
    specific = _product_fixes(finding)
    fixes: list[str] = []
    for issue in finding.issues:
        text = specific.get(issue) or GENERIC.get(issue)
        if text and text not in fixes:
            fixes.append(text)
    if needs_guard(finding):
        fixes.append(_guard_fix(finding))
    return fixes
