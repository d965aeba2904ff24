"""The guard: listeners (plain and TLS), who-is-asking at A-ASSOCIATE, and the services.

One client association gets one upstream association to the PACS, opened on first use,
calling from the guard's AE title and calling the PACS's own: the PACS's weak checks never
see the client. Nothing a client is not allowed reaches the PACS.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import (
    AllStoragePresentationContexts,
    QueryRetrievePresentationContexts,
    VerificationPresentationContexts,
    _config,
    build_context,
    evt,
)
from pynetdicom.presentation import PresentationContext

from pacsguard.guard.access import REJECT_LIMIT, decide
from pacsguard.guard.config import Client, GuardConfig
from pacsguard.guard.errors import GuardError
from pacsguard.guard.limits import ClientState
from pacsguard.guard.links import LinkError, UpstreamLink, UpstreamPool, refuse_store, spool
from pacsguard.guard.report import AUDIT_FILE, DICOM_AUDIT_FILE
from pacsguard.guard.research import ResearchView
from pacsguard.guard.transport import GuardAssociation, GuardServer
from pacsguard.net import audit as da
from pacsguard.net.audit import AuditLog, AuditObject, DicomAuditTrail, Participant
from pacsguard.net.policy import Peer, peer_of
from pacsguard.net.rawstore import serve_stores_on_arrival
from pacsguard.net.sockets import NoDelayAE
from pacsguard.net.tls import server_context

# pynetdicom logs request and response identifiers at INFO by default: never here.
_config.LOG_RESPONSE_IDENTIFIERS = False
_config.LOG_REQUEST_IDENTIFIERS = False

NOT_AUTHORISED = 0x0124
PROCESSING_FAILURE = 0x0110
UNABLE_TO_PROCESS = 0xC000
OUT_OF_RESOURCES = 0xA700


def _supported_contexts() -> list[PresentationContext]:
    from pydicom.uid import UID, AllTransferSyntaxes, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    contexts = [build_context(str(cx.abstract_syntax)) for cx in VerificationPresentationContexts]
    contexts += [build_context(str(cx.abstract_syntax)) for cx in QueryRetrievePresentationContexts]
    # pynetdicom accepts the first of these that the client proposes. A C-GET's instances
    # come as the PACS sends them, most often Explicit VR Little Endian: accepted first, no
    # instance needs re-encoding for the client (Implicit first, every one did).
    first: list[str | UID] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    syntaxes = first + [uid for uid in AllTransferSyntaxes if uid not in first]
    for cx in AllStoragePresentationContexts:
        # C-GET: the client proposes to take the SCP role for the storage classes it wants
        item = build_context(str(cx.abstract_syntax), syntaxes)
        item.scu_role, item.scp_role = True, True
        contexts.append(item)
    return contexts


@dataclass
class Session:
    """One accepted association: a client's, or the PACS delivering a C-MOVE's instances."""

    kind: str
    requester: Peer
    tls: bool
    assoc: Any
    client: Client | None = None
    state: ClientState | None = None
    started: float = field(default_factory=time.monotonic)
    upstream: UpstreamLink | None = None
    get_job: Any = None  # the C-GET in progress, which takes the PACS's C-STOREs
    timer: threading.Timer | None = None
    operations: int = 0
    busy: bool = False  # an operation is using the upstream association (link() to operation())
    ended: bool = False

    @property
    def name(self) -> str:
        return self.client.name if self.client else "upstream"

    @property
    def research(self) -> bool:
        return self.client is not None and self.client.role == "research"


class Guard:
    """``Guard(config).start()`` listens; ``stop()`` closes every association and listener."""

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        state = config.state
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        state.chmod(0o700)
        self.spool_dir = state / "spool"
        shutil.rmtree(self.spool_dir, ignore_errors=True)  # a previous run's leftovers
        self.spool_dir.mkdir(mode=0o700)
        self.audit = AuditLog(state / AUDIT_FILE)
        self.dicom_audit: DicomAuditTrail | None = None
        if config.dicom_audit:
            self.dicom_audit = DicomAuditTrail(
                state / DICOM_AUDIT_FILE,
                syslog=config.dicom_audit_syslog,
                app_name="pacsguard-guard",
            )
        self.research: ResearchView | None = None
        if any(c.role == "research" for c in config.clients):
            from pacsguard.core.keys import load_key

            key = load_key(config.key_file)
            self.research = ResearchView(key, config.research, state)
        self.states = {c.name: ClientState(c) for c in config.clients}
        self._sessions: dict[int, Session] = {}
        self._lock = threading.Lock()
        self.moves: dict[int, Any] = {}  # upstream C-MOVE message ID -> its job
        self._ids = itertools.count(1)
        self._servers: list[Any] = []
        self.ae = NoDelayAE(ae_title=config.ae_title)
        self.ae.maximum_associations = config.max_associations
        self.ae.maximum_pdu_size = 262_144
        self.ae.acse_timeout = self.ae.dimse_timeout = config.upstream.timeout
        self.ae.network_timeout = config.upstream.timeout
        self.ae.connection_timeout = config.upstream.timeout
        self.addresses: list[tuple[str, int]] = []
        self.pool: UpstreamPool | None = None  # clinical C-FIND/C-MOVE upstream associations

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        from pacsguard.guard import find, retrieve

        up = self.config.upstream
        if up.pool_idle_timeout > 0 and self.pool is None:

            def make(requested: list[Any], first: list[Any]) -> UpstreamLink:
                return UpstreamLink(up.host, up.port, up.ae_title, up.calling_ae_title,
                                    up.timeout, requested, {}, refuse_store, first)  # fmt: skip

            self.pool = UpstreamPool(make, up.pool_idle_timeout)
        self._find = find.handler(self)
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_CONN_CLOSE, self._on_closed),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_FIND, self._find),
            (evt.EVT_C_STORE, self._on_store),
        ]
        contexts = _supported_contexts()
        listeners: list[tuple[str, int, ssl.SSLContext | None]] = []
        if self.config.port is not None:
            listeners.append((self.config.host, self.config.port, None))
        tls = self.config.tls
        if tls is not None:
            try:
                tls_context = server_context(
                    tls.cert_file,
                    tls.key_file,
                    tls.ca_file,
                    require_client_cert=tls.require_client_certificate,
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise GuardError(f"guard.tls: cannot load the certificate or key ({exc})") from None
            listeners.append((tls.host, tls.port, tls_context))
        try:
            for host, port, context in listeners:
                server = self.ae.make_server(
                    (host, port),
                    ae_title=self.config.ae_title,
                    contexts=contexts,
                    evt_handlers=handlers,
                    server_class=GuardServer,
                    retrieve=lambda assoc, req, cx: retrieve.serve(self, assoc, req, cx),
                    find=lambda assoc, req, cx: find.serve_raw(self, assoc, req, cx),
                    held=lambda assoc: find.serve_held(self, assoc),
                )
                assert isinstance(server, GuardServer)
                server.tls_context = context  # the handshake runs on the connection's thread
                server.on_tls_refused = self._on_tls_refused
                thread = threading.Thread(
                    target=server.serve_forever, name=f"guard-listener-{port}", daemon=True
                )
                thread.start()
                self.ae._servers.append(server)
                self._servers.append(server)
                self.addresses.append((host, int(server.server_address[1])))
        except OSError as exc:
            self.stop()
            raise GuardError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        self._dicom(da.APPLICATION_ACTIVITY, 0, event_type=da.APPLICATION_START, local=True)
        self.audit.write(
            "start",
            listeners=[f"{h}:{p}" for h, p in self.addresses],
            upstream=f"{self.config.upstream.host}:{self.config.upstream.port}",
            clients=len(self.config.clients),
        )

    def stop(self) -> None:
        for server in self._servers:
            with contextlib.suppress(Exception):
                server.shutdown()
        self._servers.clear()
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            with contextlib.suppress(Exception):
                session.assoc.abort()
            self._end(session)
        if self.pool is not None:
            self.pool.close()
        if self.research is not None:
            self.research.close()
        with contextlib.suppress(Exception):
            self.audit.write("stop")
        self.audit.close()
        if self.dicom_audit is not None:
            self._dicom(da.APPLICATION_ACTIVITY, 0, event_type=da.APPLICATION_STOP, local=True)
            self.dicom_audit.close()

    def __enter__(self) -> Guard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self.start()
        try:
            while True:
                time.sleep(3600)
        finally:
            self.stop()

    # -- sessions --------------------------------------------------------------------------

    def session(self, assoc: Any) -> Session | None:
        with self._lock:
            return self._sessions.get(id(assoc))

    def next_message_id(self) -> int:
        """Message IDs unique across every upstream association: a C-MOVE's instances come
        back on another association, and its Move Originator Message ID names the move."""
        with self._lock:
            return next(self._ids) % 65535 + 1

    @staticmethod
    def _peer(assoc: Any) -> tuple[Peer, bool]:
        """The requestor as the A-ASSOCIATE-RQ presents it, and whether it came over TLS."""
        sock = getattr(assoc.dul.socket, "socket", None)
        return peer_of(assoc), isinstance(sock, ssl.SSLSocket)

    def _on_requested(self, event: Any) -> None:
        assoc = event.assoc
        who, tls = self._peer(assoc)
        decision = decide(self.config, who, tls)
        peer = {"calling_ae": who.calling_ae, "address": who.address, "tls": tls}
        if who.subject is not None:
            peer["subject"] = who.subject
        if decision.kind == "reject":
            assert decision.reject is not None
            _reject(assoc, decision.reject)
            self.audit.write("association", outcome="rejected", reason=decision.reason, **peer)
            self._dicom(da.SECURITY_ALERT, 4, event_type=da.NODE_AUTHENTICATION, who=who)
            return
        session = Session(decision.kind, who, tls, assoc, client=decision.client)
        if decision.kind == "upstream":  # the PACS delivering a move: its socket taken over
            serve = self._serve_delivery
            serve_stores_on_arrival(assoc, serve)  # what the DUL reads before the takeover
            if isinstance(assoc, GuardAssociation):
                assoc.store_server = serve
        if decision.client is not None:
            state = self.states[decision.client.name]
            over = state.open_association()
            if over is not None:
                _reject(assoc, REJECT_LIMIT)
                self.audit.write(
                    "association", client=decision.client.name, outcome="rejected", reason=over,
                    **peer,
                )  # fmt: skip
                return
            session.state = state
            limits = decision.client.limits
            assoc.network_timeout = limits.idle_timeout
            session.timer = threading.Timer(limits.association_timeout, self._expire, (session,))
            session.timer.daemon = True
            session.timer.start()
        with self._lock:
            self._sessions[id(assoc)] = session
        self.audit.write("association", client=session.name, outcome="accepted", **peer)

    def _on_tls_refused(self, address: tuple[str, int], reason: str) -> None:
        self.audit.write(
            "association", outcome="rejected", reason="tls", detail=reason, address=address[0]
        )

    def _expire(self, session: Session) -> None:
        self.audit.write("association", client=session.name, outcome="timeout")
        with contextlib.suppress(Exception):
            session.assoc.abort()

    def _on_closed(self, event: Any) -> None:
        session = self.session(event.assoc)
        if session is not None:
            self._end(session)

    def _end(self, session: Session) -> None:
        with self._lock:
            if session.ended:
                return
            session.ended = True
            self._sessions.pop(id(session.assoc), None)
        if session.timer is not None:
            session.timer.cancel()
        if session.upstream is not None:
            # mid-operation (the client went away): abort, as a release would race the
            # operation's own messages on the upstream association
            session.upstream.close(abort=session.busy)
        if session.state is not None:
            session.state.close_association()
        self.audit.write(
            "association-end",
            client=session.name,
            operations=session.operations,
            seconds=round(time.monotonic() - session.started, 3),
        )

    def drain(self) -> None:
        """Release the idle pooled upstream associations now."""
        if self.pool is not None:
            self.pool.drain()

    def link(self, session: Session, *, handed_back: bool = True) -> Any:
        """The session's upstream association (opened on first use); raises ``LinkError``.
        ``handed_back``: for pynetdicom's own requests (not held, see ``UpstreamLink``)."""
        if session.upstream is None:
            requestor = session.assoc.requestor
            up = self.config.upstream
            session.upstream = UpstreamLink(
                up.host,
                up.port,
                up.ae_title,
                up.calling_ae_title,
                up.timeout,
                list(requestor.requested_contexts),
                dict(requestor.role_selection),
                lambda event: self._on_upstream_store(session, event),
                list(session.assoc.accepted_contexts),
            )
        session.busy = True
        return session.upstream.get() if handed_back else session.upstream.open()

    # -- services --------------------------------------------------------------------------

    def operation(self, session: Session, service: str, **fields: Any) -> None:
        """Account for one finished operation (refused or relayed) in the audit log."""
        session.busy = False
        session.operations += 1
        self.audit.write("operation", client=session.name, service=service, **fields)
        if self.dicom_audit is None:
            return
        result = fields.get("outcome")
        code = 0 if result in ("success", "cancelled") else 4 if result == "warning" else 8
        if result == "refused":
            event, kind = da.SECURITY_ALERT, da.RESTRICTED_FUNCTION
            self._dicom(event, 4, event_type=kind, who=session.requester)
        elif service == "find":
            self._dicom(da.QUERY, code, who=session.requester, sop_class=fields.get("model"))
        elif service in ("move", "get"):
            self._dicom(
                da.INSTANCES_TRANSFERRED, code, action="R", who=session.requester,
                sop_class=fields.get("model"), instances=int(fields.get("instances", 0)),
            )  # fmt: skip

    def _dicom(
        self, event: da.Code, outcome: int, *, who: Peer | None = None, local: bool = False,
        sop_class: str | None = None, instances: int | None = None, **more: Any,
    ) -> None:  # fmt: skip
        """PS3.15 A.5.3 messages for the guard's events. Participant objects name the SOP
        class only: PS3.15 would also carry the query (ParticipantObjectQuery) and the study
        UIDs, but no value read from a dataset is logged (the JSON log has the keys' names)."""
        if self.dicom_audit is None:
            return
        me = self.config.ae_title
        participants: list[Participant] = []
        if who is not None:
            participants.append(Participant(who.calling_ae, who.address, da.SOURCE_ROLE, True,
                                            alternative=f"AETITLES={who.calling_ae}"))  # fmt: skip
        if local or who is not None:
            role = da.DESTINATION_ROLE if who is not None else da.APPLICATION_ROLE
            participants.append(Participant(me, self.config.host, role, False,
                                            alternative=f"AETITLES={me}"))  # fmt: skip
        objects: tuple[AuditObject, ...] = ()
        if sop_class is not None:
            objects = (AuditObject(sop_class, da.SOP_CLASS_UID, instances=instances),)
        with contextlib.suppress(Exception):  # never let auditing break a relay
            message = da.audit_message(
                event, outcome, source_id=me, participants=tuple(participants), objects=objects,
                **more,
            )  # fmt: skip
            self.dicom_audit.write(message)

    def _on_echo(self, event: Any) -> int:
        session = self.session(event.assoc)
        if session is None or session.client is None or not session.client.may("echo"):
            if session is not None:
                self.operation(session, "echo", outcome="refused", status=NOT_AUTHORISED)
            return NOT_AUTHORISED
        try:
            reply = self.link(session).send_c_echo()
            status = int(getattr(reply, "Status", PROCESSING_FAILURE))
        except LinkError:
            status = PROCESSING_FAILURE
        self.operation(session, "echo", outcome=outcome(status), status=status)
        return status

    def _on_store(self, event: Any) -> int:
        session = self.session(event.assoc)
        if session is None:
            return NOT_AUTHORISED
        if session.kind == "upstream":
            return self._deliver_move(event)
        if session.client is None or not session.client.may("store"):
            self.operation(session, "store", outcome="refused", status=NOT_AUTHORISED)
            return NOT_AUTHORISED
        item = spool(event, self.spool_dir)
        try:
            reply = self.link(session).send_c_store(item.file(self.spool_dir))
            status = int(getattr(reply, "Status", UNABLE_TO_PROCESS))
        except LinkError:
            status = OUT_OF_RESOURCES
        finally:
            item.discard()
        self.operation(session, "store", outcome=outcome(status), status=status, instances=1)
        return status

    def _serve_delivery(
        self, _context_id: int, request: Any, transfer_syntax: str
    ) -> int | tuple[int, Any]:
        job = self._move_of(request)
        if job is None:
            return OUT_OF_RESOURCES  # not part of any move in progress: refused
        return job.deliver_then(request, transfer_syntax)  # type: ignore[no-any-return]

    def _deliver_move(self, event: Any) -> int:
        job = self._move_of(event.request)
        if job is None:
            return OUT_OF_RESOURCES
        return int(job.deliver_request(event.request, str(event.context.transfer_syntax)))

    def _move_of(self, request: Any) -> Any:
        """The guard's own C-MOVE that a C-STORE from the PACS belongs to, or None."""
        message = getattr(request, "MoveOriginatorMessageID", None)
        with self._lock:
            job = self.moves.get(int(message)) if message is not None else None
            if job is None and message is None and len(self.moves) == 1:
                job = next(iter(self.moves.values()))
        return job

    def _on_upstream_store(self, session: Session, event: Any) -> int:
        job = session.get_job
        if job is None:
            return OUT_OF_RESOURCES
        return int(job.deliver(event))


def _reject(assoc: Any, reason: tuple[int, int, int]) -> None:
    """A-ASSOCIATE-RJ, then wait for the DUL to send it before the socket closes (as
    pynetdicom's own rejections do)."""
    assoc.acse.send_reject(*reason)
    assoc.kill()


def outcome(status: int) -> str:
    if status == 0:
        return "success"
    if status in (0xFF00, 0xFF01):
        return "pending"
    if status == 0xFE00:
        return "cancelled"
    if status == NOT_AUTHORISED:
        return "refused"
    if 0xB000 <= status <= 0xBFFF or status == 0x0107 or status == 0x0116:
        return "warning"
    return "failure"
