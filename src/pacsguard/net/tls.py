"""TLS contexts of the DICOM Non-downgrading BCP 195 profile (PS3.15 B.10).

TLS 1.2 or later only (never negotiated down), and for TLS 1.2 only the AEAD suites with
forward secrecy that BCP 195 (RFC 7525 4.2, RFC 9325) recommends; TLS 1.3 uses OpenSSL's
default suites, all of them AEAD. Compression and renegotiation are off.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from cryptography import x509

BCP195_TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
    )
)


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(BCP195_TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def server_context(
    cert: Path, key: Path, client_ca: Path | None = None, *, require_client_cert: bool = False
) -> ssl.SSLContext:
    """A server context; with ``client_ca`` client certificates are verified against it
    (and demanded when ``require_client_cert``)."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    elif require_client_cert:
        raise ValueError("require_client_cert needs a client_ca to verify certificates against")
    return context


def client_context(
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    *,
    verify: bool = True,
    check_hostname: bool = False,
) -> ssl.SSLContext:
    """A client context verifying the server against ``ca`` (the system store when None);
    ``cert``/``key`` present a client certificate. DICOM peers are named by AE title and
    address, rarely by a DNS name on their certificate: hostname checks are opt-in."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    context.check_hostname = check_hostname and verify
    if verify:
        context.verify_mode = ssl.CERT_REQUIRED
        if ca is not None:
            context.load_verify_locations(cafile=ca)
        else:
            context.load_default_certs()
    else:
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def peer_subject(sock: socket.socket | None) -> str | None:
    """The subject (RFC 4514) of the peer's verified certificate, or ``None``."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    try:
        der = sock.getpeercert(binary_form=True)
    except (ValueError, OSError):
        return None
    if not der or sock.context.verify_mode == ssl.CERT_NONE:
        return None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()
