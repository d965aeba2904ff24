"""The C-STORE SCP: plain and TLS listeners, the allow-list, truthful responses, audit.

pynetdicom negotiates each association (allow-list, contexts, TLS); once it is established
its socket is read and answered raw (``net.rawserver``): each C-STORE-RQ's data set goes to
``Receiver.receive`` as the bytes that came, behind a File Meta header built from the
request, and the C-STORE-RSP carries whatever the receiver decided: Success once the
de-identified instance is durable and its row committed, a failure status otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

from pacsguard.gateway.config import GatewayConfig
from pacsguard.gateway.receive import Receiver
from pacsguard.net import (
    AssociationPolicy,
    AssociationTally,
    AuditLog,
    NoDelayAE,
    dicom_audit_message,
    start_server,
)
from pacsguard.net.audit import INSTANCES_TRANSFERRED
from pacsguard.net.part10 import file_prefix
from pacsguard.net.policy import peer_of
from pacsguard.net.rawserver import RawStoreServer, take_over_stores
from pacsguard.net.rawstore import StoreAnswer
from pacsguard.net.sockets import NoDelayServer
from pacsguard.net.tls import server_context

VERIFICATION = UID("1.2.840.10008.1.1")
TIMEOUT = 60.0


def _status(code: int, comment: str | None) -> int | Dataset:
    if code == 0:
        return 0
    status = Dataset()
    status.Status = code
    if comment:
        status.ErrorComment = comment[:64]
    return status


class StoreSCP:
    """Listeners on ``config.port`` (plain) and ``config.tls.port`` (TLS), one AE."""

    def __init__(
        self,
        config: GatewayConfig,
        receiver: Receiver,
        audit: AuditLog,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self.config, self.receiver, self.audit, self.on_stored = config, receiver, audit, on_stored
        self.policy = AssociationPolicy(config.allow, called_ae=config.ae_title)
        self.servers: list[NoDelayServer] = []
        self._tallies: dict[int, AssociationTally] = {}
        self._lock = threading.Lock()
        ae = NoDelayAE(config.ae_title)
        ae.maximum_pdu_size = config.max_pdu
        ae.maximum_associations = config.max_associations
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
        # Every standard storage SOP class, every transfer syntax pydicom reads: native
        # ones are rewritten, encapsulated pixel data is passed through unchanged.
        for context in AllStoragePresentationContexts:
            assert context.abstract_syntax is not None
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(VERIFICATION)
        self.ae = ae

    def _handlers(self, service: str) -> list[Any]:
        return [
            *self.policy.handlers(self.audit, service),
            (evt.EVT_REQUESTED, self._on_requested, [service]),
            (evt.EVT_ESTABLISHED, self._on_established, [service]),
            (evt.EVT_RELEASED, self._on_closed, ["released"]),
            (evt.EVT_ABORTED, self._on_closed, ["aborted"]),
            (evt.EVT_CONN_CLOSE, self._on_closed, ["connection-closed"]),
            (evt.EVT_C_STORE, self._on_store, [service]),
            (evt.EVT_C_ECHO, self._on_echo),
        ]

    def start(self) -> None:
        cfg = self.config
        self.servers.append(
            start_server(
                self.ae,
                cfg.host,
                cfg.port,
                self._handlers("dicom"),
                ae_title=cfg.ae_title,
                server_class=RawStoreServer,
            )
        )
        if cfg.tls is not None:
            context = server_context(
                cfg.tls.cert_file,
                cfg.tls.key_file,
                cfg.tls.ca_file,
                require_client_cert=cfg.tls.require_client_cert,
            )
            self.servers.append(
                start_server(
                    self.ae,
                    cfg.host,
                    cfg.tls.port,
                    self._handlers("dicom-tls"),
                    tls=context,
                    on_tls_refused=self._on_tls_refused,
                    ae_title=cfg.ae_title,
                    server_class=RawStoreServer,
                )
            )

    @property
    def ports(self) -> list[int]:
        return [int(s.server_address[1]) for s in self.servers]

    def stop_listening(self) -> None:
        for server in self.servers:
            server.shutdown()

    def active(self) -> int:
        """Established associations (a bare connection that never asked counts for none)."""
        return sum(a.is_established for s in self.servers for a in s.active_associations)

    def abort_all(self) -> None:
        for server in self.servers:
            for assoc in server.active_associations:
                assoc.abort()

    def _on_tls_refused(self, address: tuple[str, int], reason: str) -> None:
        self.audit.write(
            "tls-refused", service="dicom-tls", peer={"address": address[0]}, reason=reason
        )

    def _on_established(self, event: Any, service: str) -> None:
        peer = peer_of(event.assoc).describe()
        with self._lock:
            self._tallies[id(event.assoc)] = AssociationTally(peer, service)
        self.audit.write("association-accepted", service=service, peer=peer)

    def _on_requested(self, event: Any, service: str) -> None:
        assoc = event.assoc

        def serve(context_id: int, request: Any, syntax: str) -> StoreAnswer:
            sop_class = str(request.AffectedSOPClassUID)
            data = request.DataSet.getvalue()
            prefix = file_prefix(sop_class, str(request.AffectedSOPInstanceUID), syntax)
            code, comment = self._store(assoc, service, sop_class, prefix + data)
            return StoreAnswer(code, comment)

        take_over_stores(assoc, serve, on_echo=lambda: self._echoed(assoc))

    def _on_closed(self, event: Any, how: str) -> None:
        if how == "connection-closed":  # a taken-over association ends here only
            how = "released" if event.assoc.is_released else how
            how = "aborted" if event.assoc.is_aborted else how
        with self._lock:
            tally = self._tallies.pop(id(event.assoc), None)
        if tally is None:
            return
        tally.close(self.audit, how)
        if self.config.dicom_audit and tally.studies:
            self._dicom_audit(tally, how)

    def _dicom_audit(self, tally: AssociationTally, how: str) -> None:
        """PS3.15 A.5.3.2 DICOM Instances Transferred, the objects named by their
        de-identified Study Instance UIDs, life cycle 7 (de-identification)."""
        failed = any(o != "success" for (_, _, o) in tally.counts)
        message = dicom_audit_message(
            event=INSTANCES_TRANSFERRED,
            outcome=4 if failed or how == "aborted" else 0,
            source=tally.peer,
            destination={"ae": self.config.ae_title, "address": self.config.host},
            studies=tally.studies,
            life_cycle="7",
        )
        with self._lock, self.config.dicom_audit_log.open("a", encoding="utf-8") as handle:
            handle.write(message + "\n")

    def _on_echo(self, event: Any) -> int:
        self._echoed(event.assoc)
        return 0

    def _echoed(self, assoc: Any) -> None:
        self._tally_of(assoc).count("C-ECHO", str(VERIFICATION), "success")

    def _tally(self, event: Any) -> AssociationTally:
        return self._tally_of(event.assoc)

    def _tally_of(self, assoc: Any) -> AssociationTally:
        with self._lock:
            tally = self._tallies.get(id(assoc))
        return tally or AssociationTally(peer_of(assoc).describe(), "dicom")

    def _on_store(self, event: Any, service: str) -> int | Dataset:
        """An association pynetdicom serves itself (not taken over)."""
        sop_class = str(event.request.AffectedSOPClassUID)
        try:
            data = event.encoded_dataset(include_meta=True)
        except Exception:
            self._tally(event).count("C-STORE", sop_class, "0xC000")
            return _status(0xC000, "the data set could not be read")
        return _status(*self._store(event.assoc, service, sop_class, data))

    def _store(
        self, assoc: Any, service: str, sop_class: str, data: bytes
    ) -> tuple[int, str | None]:
        calling = str(assoc.requestor.ae_title).strip()
        result = self.receiver.receive(data, calling, service, sop_class=sop_class)
        outcome = "success" if result.ok else f"0x{result.status:04X}"
        self._tally_of(assoc).count("C-STORE", sop_class, outcome, study=result.study)
        if result.ok:
            self.on_stored()
        return result.status, result.reason
