"""A C-STORE destination's association is kept between batches (one association for a
steady stream, not one per batch), released once idle for ``KEEP_ALIVE``, and a kept
association the peer has dropped is replaced without failing the batch. The peer is a
real DCMTK storescp whose log counts the associations it received."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from pacsguard.gateway import forward
from pacsguard.gateway.config import load_config
from pacsguard.gateway.forward import DicomSender
from pacsguard.gateway.queue import Item
from pacsguard.lab import dcmtk
from pacsguard.lab.procs import free_ports
from pacsguard.sample import generate_ct_corpus
from test_gateway_support import wait_for, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def nodelay_peers() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TCP_NODELAY", "1")
        yield


def _items(root: Path) -> list[Item]:
    items = []
    for n, path in enumerate(sorted(root.rglob("*.dcm"))):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        relative = path.relative_to(root).as_posix()
        syntax = str(ds.file_meta.TransferSyntaxUID)
        items.append(Item(n, "scp", str(ds.SOPInstanceUID), str(ds.SOPClassUID), syntax,
                          relative, relative, 0, 0.0, 0.0))  # fmt: skip
    return items


def _associations(log: Path) -> int:
    """Associations storescp acknowledged (its port probe is received, never acknowledged)."""
    return log.read_text(errors="replace").count("Association Acknowledged")


def test_association_kept_between_batches_released_when_idle_and_replaced_when_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus"
    generate_ct_corpus(corpus, files=8, rows=32, cols=32, patients=1, seed=9)
    items = _items(corpus)
    (scp_port,) = free_ports(1)
    config = load_config(
        write_config(tmp_path, port=11112, destinations=[
            {"name": "scp", "type": "dicom", "ae_title": "STORESCP", "host": "127.0.0.1",
             "port": scp_port}])
    )  # fmt: skip
    sender = DicomSender(config.destinations[0], config.ae_title)
    log = tmp_path / "storescp-keep" / "storescp.log"
    scp = dcmtk.start_storescp("keep", scp_port, tmp_path, extra=("-v",))
    try:
        for batch in (items[0:2], items[2:4]):
            assert [error for _, error in sender.send(batch, corpus)] == [None, None]
        sender.settle(idle=True, changed=False)  # idle, but not for KEEP_ALIVE yet: kept
        assert _associations(log) == 1
        monkeypatch.setattr(forward, "KEEP_ALIVE", 0.0)
        sender.settle(idle=True, changed=False)  # idle long enough: released
        assert [error for _, error in sender.send(items[4:5], corpus)] == [None]
        assert _associations(log) == 2
    finally:
        scp.stop()
    # the peer goes away and comes back: the kept association is dead, the batch still goes
    scp = dcmtk.start_storescp("keep", scp_port, tmp_path, extra=("-v",))
    try:
        results = sender.send(items[5:8], corpus)
        assert [error for _, error in results] == [None, None, None]
        wait_for(lambda: len(list((tmp_path / "storescp-keep" / "received").iterdir())) == 8, 30)
    finally:
        sender.release()
        scp.stop()
