"""The one DIMSE / TLS / audit layer that scan, gateway and guard share.

Sockets (``pacsguard.net.sockets``)
    ``NoDelayAE(ae_title)``: a pynetdicom ``AE`` whose requestor sockets have TCP_NODELAY
    and a read timeout once connected. ``start_server(ae, host, port, handlers, tls=None,
    on_tls_refused=None)``: a threaded association server whose accepted sockets have
    TCP_NODELAY; with ``tls`` the handshake runs in the connection's own thread (a slow or
    plain client never blocks the listener). ``nodelay(sock)`` for any other socket.
TLS (``pacsguard.net.tls``)
    ``server_context(cert, key, client_ca=None, require_client_cert=False)`` and
    ``client_context(ca=None, cert=None, key=None, verify=True)``: the DICOM
    Non-downgrading BCP 195 profile (PS3.15 B.10): TLS 1.2 or later only, the profile's
    AEAD ECDHE/DHE suites, no compression, no renegotiation. ``peer_subject(sock)``: the
    verified client certificate's subject (RFC 4514) or ``None``.
Association policy (``pacsguard.net.policy``)
    ``AllowRule(ae_title, host, subject)`` and ``AssociationPolicy(rules, called_ae)``;
    ``policy.check(Peer)`` returns ``None`` or a ``Rejection`` (result, source, reason of
    PS3.8 9.3.4); ``policy.handlers(audit)`` binds it to EVT_REQUESTED, sending the
    A-ASSOCIATE-RJ and writing one audit line per refusal.
Refusals in words (``pacsguard.net.refusals``)
    ``rejection(result, source, reason)`` and ``abort(source, reason)``: the A-ASSOCIATE-RJ
    and A-ABORT fields in the words of PS3.8 (Tables 9-21, 9-26), for what a node sends
    (``Rejection.words``) and what the scanner is told.
Audit (``pacsguard.net.audit``)
    ``AuditLog(path)``: JSON lines naming peers, operations and counts (never a value read
    from a dataset); ``AssociationTally`` per association, written when it closes;
    ``audit_message(...)``: a PS3.15 A.5 audit message (XML), from ``Participant``s and
    ``AuditObject``s; ``dicom_audit_message(...)`` for instances transferred;
    ``DicomAuditTrail(path, syslog=None)`` writes them (file, and RFC 5424 over UDP).
Raw C-STORE relaying (``pacsguard.net.rawstore``)
    ``RawStore(assoc)``: a negotiated requestor association taken over, each C-STORE-RQ's
    dataset framed as P-DATA-TF PDUs and written with one ``sendall``, the response read off
    the socket (``submit``/``collect``: the response read at the next request).
    ``serve_taken_over(assoc, serve)``: an acceptor association read and answered PDU by PDU
    (C-STORE, C-ECHO, release; ``serve`` may return (status, then): ``then()`` runs once the
    response is out). ``serve_stores_on_arrival``: C-STOREs answered on pynetdicom's DUL
    thread. ``Held(assoc)``: an established association read and written by one thread for
    a while (reactor paused, DUL not reading: ``BulkRecvSocket.holder``), then handed back;
    ``Message``, and hand-encoded C-FIND/C-MOVE/C-GET/C-CANCEL requests and responses.
    ``BulkRecvSocket`` and ``SharedContexts`` (sockets): whole-PDU reads, and no
    per-association deep copy of an acceptor's supported contexts.
    ``rawserver.RawStoreServer`` (a ``server_class`` for ``start_server``) with
    ``take_over_stores(assoc, serve)`` at EVT_REQUESTED: a C-STORE SCP whose established
    associations are served by ``serve_taken_over``. ``part10.file_prefix`` (the File Meta
    of a received data set, as pynetdicom builds it) and ``part10.dataset_offset`` (where a
    file's data set begins, the meta walked).
Configuration (``pacsguard.net.config``)
    ``load_toml(path)`` and ``Section``: typed getters that raise ``ConfigError`` naming the
    file, the table and the key; unknown keys are errors (a typo never silently drops a
    setting).
"""

from __future__ import annotations

from pacsguard.net.audit import AssociationTally, AuditLog, dicom_audit_message
from pacsguard.net.config import ConfigError, Section, load_toml
from pacsguard.net.policy import AllowRule, AssociationPolicy, Peer, Rejection
from pacsguard.net.sockets import NoDelayAE, nodelay, start_server
from pacsguard.net.tls import client_context, peer_subject, server_context

__all__ = [
    "AllowRule",
    "AssociationPolicy",
    "AssociationTally",
    "AuditLog",
    "ConfigError",
    "NoDelayAE",
    "Peer",
    "Rejection",
    "Section",
    "client_context",
    "dicom_audit_message",
    "load_toml",
    "nodelay",
    "peer_subject",
    "server_context",
    "start_server",
]
