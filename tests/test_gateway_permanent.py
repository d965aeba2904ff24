"""Permanent delivery failures go to the dead letters at once, with the status and its
meaning; transient ones are retried. The peer is a real DCMTK storescp configured (``-xf``)
to accept MR Image Storage only, so the gateway's CT instances are refused at association
negotiation, which no retry can change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from pacsguard.gateway.outcome import http_failure, store_failure
from pacsguard.lab import dcmtk
from pacsguard.lab.procs import free_ports
from pacsguard.sample import generate_ct_corpus
from test_gateway_support import GatewayProcess, gateway_status, storescu, wait_for, write_config

MR_ONLY = r"""
[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = OppositeEndianExplicit
TransferSyntax3 = LittleEndianImplicit

[[PresentationContexts]]
[MROnly]
PresentationContext1 = VerificationSOPClass\Uncompressed
PresentationContext2 = MRImageStorage\Uncompressed

[[Profiles]]
[MROnly]
PresentationContexts = MROnly
"""
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture(scope="module", autouse=True)
def nodelay_peers() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TCP_NODELAY", "1")
        yield


@pytest.mark.parametrize(
    ("code", "permanent", "meaning"),
    [
        (0xA700, False, "out of resources"),
        (0xA7FF, False, "out of resources"),
        (0xA900, True, "data set does not match SOP class"),
        (0xA9FF, True, "data set does not match SOP class"),
        (0xC000, True, "cannot understand"),
        (0xCFFF, True, "cannot understand"),
        (0x0122, True, "SOP class not supported"),
        (0x0124, True, "not authorized"),
        (0x0110, False, "processing failure"),
        (0x0213, False, "resource limitation"),
        (0xFE00, False, "cancelled"),
        (0xA801, False, ""),  # a code this table does not know: retried, not dropped
    ],
)
def test_store_statuses_are_classified(code: int, permanent: bool, meaning: str) -> None:
    failure = store_failure(code)
    assert failure.permanent is permanent
    assert f"0x{code:04X}" in failure.reason and meaning in failure.reason


@pytest.mark.parametrize(
    ("code", "permanent"),
    [(400, True), (409, True), (415, True), (401, False), (404, False), (429, False),
     (500, False), (503, False)],
)  # fmt: skip
def test_stow_http_statuses_are_classified(code: int, permanent: bool) -> None:
    assert http_failure(code).permanent is permanent


@pytest.mark.slow
def test_refused_sop_class_is_a_dead_letter_at_once(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    generate_ct_corpus(corpus, files=6, rows=32, cols=32, patients=1, seed=5)
    ct = sorted(corpus.rglob("*.dcm"))
    mr = Path(str(get_testdata_file("MR_small.dcm")))
    profile = tmp_path / "mr-only.cfg"
    profile.write_text(MR_ONLY)
    gw_port, scp_port = free_ports(2)
    scp = dcmtk.start_storescp("mr-only", scp_port, tmp_path, extra=("-xf", str(profile), "MROnly"))
    config = write_config(
        tmp_path,
        port=gw_port,
        destinations=[
            # a transient failure would wait a minute before its retry and an hour before
            # the dead letters: only a permanent one gets there within the test
            {"name": "mr-only", "type": "dicom", "ae_title": "MRONLY", "host": "127.0.0.1",
             "port": scp_port, "retry_initial": 60, "retry_max": 60, "max_age": 3600},
        ],
    )  # fmt: skip
    gateway = GatewayProcess(config, gw_port, tmp_path / "gateway.log").start()
    try:
        # CT alone: the peer accepts no presentation context at all (pynetdicom aborts)
        assert storescu(gw_port, ct[:3]).returncode == 0
        wait_for(lambda: gateway_status(config)["destinations"]["mr-only"]["dead_letter"] == 3, 60)
        # MR and CT in one association: the MR goes, the CT context is refused
        assert storescu(gw_port, [mr, *ct[3:]]).returncode == 0

        def settled() -> bool:
            dest = gateway_status(config)["destinations"]["mr-only"]
            return bool(dest["dead_letter"] == 6 and dest["sent"] == 1)

        wait_for(settled, 60)
        status = gateway_status(config)["destinations"]["mr-only"]
        assert status["queued"] == 0 and status["retrying"] == 0
        letters = [
            json.loads(p.read_text())
            for p in (tmp_path / "state" / "dead-letter" / "mr-only").glob("*.json")
        ]
        assert len(letters) == 6
        for letter in letters:
            assert letter["permanent"] is True and letter["attempts"] == 1
            assert letter["reason"].startswith(f"the destination refuses SOP class {CT_IMAGE}")
        assert len(list((tmp_path / "storescp-mr-only" / "received").iterdir())) == 1
    finally:
        gateway.terminate()
        scp.stop()
