"""Does a port speak TLS, which version, and what does its certificate say."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import socket
import ssl
import warnings

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from pacsguard.scan.model import Certificate, TlsInfo
from pacsguard.scan.ratelimit import RateLimits

CERT_REQUIRED_MARKERS = ("CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE", "BAD_CERTIFICATE")


def client_context() -> ssl.SSLContext:
    """Accepts any certificate and old protocol versions: the scanner reports, it does not trust."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ValueError, ssl.SSLError), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old versions are what we look for
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("ALL:@SECLEVEL=0")
    return context


def _cn(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _key(cert: x509.Certificate) -> tuple[str, int | None]:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec", key.curve.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "dsa", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448", 456
    return "other", None


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:
        return False
    return True


def certificate_facts(der: bytes, now: dt.datetime | None = None) -> Certificate:
    cert = x509.load_der_x509_certificate(der)
    now = now or dt.datetime.now(dt.UTC)
    not_after = cert.not_valid_after_utc
    key_type, key_bits = _key(cert)
    return Certificate(
        subject_cn=_cn(cert.subject),
        issuer_cn=_cn(cert.issuer),
        self_signed=_self_signed(cert),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=not_after.isoformat(),
        expired=not_after < now,
        days_left=(not_after - now).days,
        key_type=key_type,
        key_bits=key_bits,
        sha256=hashlib.sha256(der).hexdigest(),
    )


def probe(host: str, port: int, timeout: float, limits: RateLimits) -> TlsInfo | None:
    """A TLS handshake (nothing else is sent); ``None`` when the port does not speak TLS."""
    limits.acquire(host)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None
    context = client_context()
    try:
        with context.wrap_socket(raw, do_handshake_on_connect=False) as tls:
            try:
                tls.do_handshake()
            except ssl.SSLError as exc:
                if any(m in str(exc).upper() for m in CERT_REQUIRED_MARKERS):
                    return TlsInfo(None, None, client_cert_required=True)
                return None
            except OSError:
                return None
            info = TlsInfo(tls.version(), (tls.cipher() or (None,))[0])
            der = tls.getpeercert(binary_form=True)
            if der:
                info.certificate = certificate_facts(der)
            info.client_cert_required = _refused_after_handshake(tls)
            return info
    finally:
        raw.close()


def _refused_after_handshake(tls: ssl.SSLSocket) -> bool:
    """TLS 1.3 servers that demand a client certificate say so just after the handshake."""
    tls.settimeout(0.4)
    try:
        tls.recv(1)
    except ssl.SSLError as exc:
        return any(m in str(exc).upper() for m in CERT_REQUIRED_MARKERS)
    except OSError:
        return False
    return False
