"""TLS for the guard's listener: the BCP 195 non-downgrading profile (TLS 1.2 or 1.3,
forward-secret AEAD suites only, no compression, no renegotiation), optional client
certificates, and the peer certificate's subject as an RFC 4514 string.

(General, not guard-specific: a candidate for the shared ``pacsguard.net`` layer.)
"""

from __future__ import annotations

import ssl
from pathlib import Path

from pacsguard.guard.errors import ConfigError

# BCP 195 (RFC 9325) recommended TLS 1.2 suites; TLS 1.3 suites are all AEAD and stay enabled.
BCP195_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"


def server_context(
    cert_file: Path, key_file: Path, ca_file: Path | None, require_client_certificate: bool
) -> ssl.SSLContext:
    """A server context; client certificates are verified against ``ca_file`` when given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(BCP195_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    try:
        context.load_cert_chain(cert_file, key_file)
        if ca_file is not None:
            context.load_verify_locations(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"guard.tls: cannot load the certificate or key ({exc})") from None
    if ca_file is not None:
        context.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL
    return context


def peer_subject(sock: object) -> str | None:
    """The verified client certificate's subject (RFC 4514), or None without one."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    der = sock.getpeercert(binary_form=True)
    if not der:
        return None
    from cryptography import x509

    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def same_subject(a: str, b: str) -> bool:
    """RFC 4514 strings compared component by component, ignoring spaces around separators
    and the case of attribute names."""

    def parts(text: str) -> list[tuple[str, str]]:
        out = []
        for part in text.split(","):
            name, _, value = part.partition("=")
            out.append((name.strip().upper(), value.strip()))
        return out

    return parts(a) == parts(b)
