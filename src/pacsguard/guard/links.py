"""The guard's outgoing associations: to the protected PACS (one per client association,
proposing what the client proposed) and to C-MOVE destinations (contexts grown as new SOP
classes and transfer syntaxes arrive). Received instances are spooled as raw bytes, never
decoded on the way through."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydicom.filewriter import write_file_meta_info
from pynetdicom import build_context, build_role, evt
from pynetdicom.presentation import PresentationContext

from pacsguard.net.sockets import NoDelayAE

MAX_CONTEXTS = 128


class LinkError(Exception):
    """An outgoing association could not be made (the message names the peer, no values)."""


@dataclass(frozen=True)
class Spooled:
    """One instance on disk, as received: file meta + the dataset's bytes."""

    path: Path
    sop_class: str
    sop_instance: str
    transfer_syntax: str


def spool(event: Any, folder: Path) -> Spooled:
    """Write a C-STORE request's dataset, undecoded, with its file meta."""
    meta = event.file_meta
    path = folder / f"{uuid.uuid4().hex}.dcm"
    with path.open("wb") as handle:
        handle.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(cast(Any, handle), meta, enforce_standard=True)  # only .write()
        handle.write(event.request.DataSet.getvalue())
    return Spooled(
        path,
        str(meta.MediaStorageSOPClassUID),
        str(meta.MediaStorageSOPInstanceUID),
        str(meta.TransferSyntaxUID),
    )


def spooled_file(path: Path) -> Spooled:
    from pydicom.filereader import read_file_meta_info

    meta = read_file_meta_info(path)
    return Spooled(
        path,
        str(meta.MediaStorageSOPClassUID),
        str(meta.MediaStorageSOPInstanceUID),
        str(meta.TransferSyntaxUID),
    )


def _ae(calling_ae: str, timeout: float) -> NoDelayAE:
    ae = NoDelayAE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
    ae.maximum_pdu_size = 262_144
    return ae


def settle(assoc: Any, wait: float = 0.02) -> None:
    """Let a requestor association's reactor leave pynetdicom's pause checkpoint.

    pynetdicom's ``send_*`` methods pause the reactor (clear the checkpoint, spin until
    ``_is_paused``) and release it when they return. Called again at once, the next one can
    see the flag still True from the reactor's previous pause, before the reactor has run on:
    the reactor then takes the peer's response off the queue as an "unexpected" message and
    the sender waits for its DIMSE timeout (measured: a 30 s stall every few hundred
    back-to-back C-STOREs). Waiting for the reactor to wake first closes that window."""
    deadline = time.monotonic() + wait
    while assoc._is_paused and assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.0001)


def _status(value: Any) -> int:
    return int(getattr(value, "Status", 0xC000)) if value is not None else 0xC000


class UpstreamLink:
    """The association to the PACS that serves one client association, opened on first use
    with the client's own presentation contexts and SCP/SCU roles."""

    def __init__(
        self,
        host: str,
        port: int,
        called_ae: str,
        calling_ae: str,
        timeout: float,
        requested: list[PresentationContext],
        roles: dict[str, Any],
        on_store: Callable[[Any], int],
    ) -> None:
        self.address = (host, port)
        self.called_ae = called_ae
        self.timeout = timeout
        self._ae = _ae(calling_ae, timeout)
        self._contexts = [
            build_context(str(cx.abstract_syntax), list(cx.transfer_syntax))
            for cx in requested[:MAX_CONTEXTS]
        ]
        self._roles: list[Any] = [
            build_role(uid, scu_role=bool(item.scu_role), scp_role=bool(item.scp_role))
            for uid, item in roles.items()
        ]
        self._on_store = on_store
        self.assoc: Any = None

    def get(self) -> Any:
        if self.assoc is not None and self.assoc.is_established:
            settle(self.assoc)  # the previous operation may have just returned
            return self.assoc
        assoc = self._ae.associate(
            *self.address,
            ae_title=self.called_ae,
            contexts=self._contexts,
            ext_neg=self._roles or None,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
        )
        if not assoc.is_established:
            raise LinkError("the upstream PACS refused or did not answer the association")
        self.assoc = assoc
        return assoc

    def close(self, *, abort: bool = False) -> None:
        assoc, self.assoc = self.assoc, None
        if assoc is not None and assoc.is_established:
            try:
                assoc.abort() if abort else assoc.release()
            except Exception:
                with contextlib.suppress(Exception):
                    assoc.abort()


class DestinationLink:
    """The association to one C-MOVE destination, for the life of one C-MOVE; reopened with
    a wider set of presentation contexts when an instance needs one it lacks."""

    def __init__(self, host: str, port: int, called_ae: str, calling_ae: str, timeout: float):
        self.address = (host, port)
        self.called_ae = called_ae
        self._ae = _ae(calling_ae, timeout)
        self._pairs: dict[str, list[str]] = {}
        self.assoc: Any = None
        self._message = 0

    def _accepts(self, item: Spooled) -> bool:
        if self.assoc is None or not self.assoc.is_established:
            return False
        return any(
            cx.abstract_syntax == item.sop_class and cx.transfer_syntax[0] == item.transfer_syntax
            for cx in self.assoc.accepted_contexts
        )

    def _open(self, item: Spooled) -> None:
        syntaxes = self._pairs.setdefault(item.sop_class, [])
        if item.transfer_syntax not in syntaxes:
            syntaxes.append(item.transfer_syntax)
        contexts = []
        for sop_class, wanted in self._pairs.items():
            # one context per transfer syntax, so that each can be accepted on its own
            for syntax in wanted:
                contexts.append(build_context(sop_class, [syntax]))
        if len(contexts) > MAX_CONTEXTS:
            raise LinkError("the move needs more than 128 presentation contexts")
        self.close()
        assoc = self._ae.associate(*self.address, ae_title=self.called_ae, contexts=contexts)
        if not assoc.is_established:
            raise LinkError("the move destination refused or did not answer the association")
        self.assoc = assoc

    def send(self, item: Spooled, originator_ae: str, originator_id: int) -> int:
        """C-STORE one spooled instance; the destination's status (a failure if unsent)."""
        if not self._accepts(item):
            self._open(item)
            if not self._accepts(item):
                return 0x0122  # the destination accepts no context for this instance
        self._message = self._message % 65535 + 1
        reply = self.assoc.send_c_store(
            item.path,
            msg_id=self._message,
            originator_aet=originator_ae,
            originator_id=originator_id,
        )
        settle(self.assoc)
        return _status(reply)

    def close(self) -> None:
        assoc, self.assoc = self.assoc, None
        if assoc is not None and assoc.is_established:
            try:
                assoc.release()
            except Exception:
                with contextlib.suppress(Exception):
                    assoc.abort()
