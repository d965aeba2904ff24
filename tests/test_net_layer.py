"""pacsguard.net against real DCMTK peers: allow-list rejections, BCP 195 TLS, TCP_NODELAY."""

from __future__ import annotations

import json
import socket
import ssl
import warnings
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import evt

from pacsguard.net import (
    AllowRule,
    AssociationPolicy,
    AuditLog,
    ConfigError,
    NoDelayAE,
    Peer,
    Section,
    client_context,
    load_toml,
    server_context,
    start_server,
)
from pacsguard.net.sockets import bound_port
from test_net_support import Pki, dcmtk, make_pki

VERIFICATION = "1.2.840.10008.1.1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


class Scp:
    def __init__(self, tmp: Path, policy: AssociationPolicy, tls: ssl.SSLContext | None = None):
        self.audit = AuditLog(tmp / "audit.jsonl")
        self.sockets: list[socket.socket] = []
        self.refused: list[str] = []
        ae = NoDelayAE("NETTEST")
        ae.add_supported_context(VERIFICATION)

        def on_open(event: Any) -> None:
            self.sockets.append(event.assoc.dul.socket.socket)

        handlers = [*policy.handlers(self.audit), (evt.EVT_CONN_OPEN, on_open)]
        self.server = start_server(
            ae, "127.0.0.1", 0, handlers, tls=tls,
            on_tls_refused=lambda address, reason: self.refused.append(reason),
        )  # fmt: skip
        self.port = bound_port(self.server)

    def lines(self) -> list[dict[str, Any]]:
        text = self.audit.path.read_text()
        return [json.loads(line) for line in text.splitlines()]

    def stop(self) -> None:
        self.server.shutdown()
        self.audit.close()


def echoscu(port: int, *extra: str, aet: str = "MODALITY1", aec: str = "NETTEST") -> str:
    done = dcmtk(["echoscu", "-d", "-aet", aet, "-aec", aec, *extra, "127.0.0.1", str(port)])
    return done.stdout + done.stderr + f"\nexit={done.returncode}"


def test_allow_list_rejects_with_ps38_reason(tmp_path: Path) -> None:
    policy = AssociationPolicy([AllowRule("MODALITY1", "127.0.0.1")], called_ae="NETTEST")
    scp = Scp(tmp_path, policy)
    try:
        assert "exit=0" in echoscu(scp.port)
        out = echoscu(scp.port, aet="INTRUDER")
        assert "exit=0" not in out
        assert "Result: Rejected Permanent, Source: Service User" in out
        assert "Reason: Calling AE Title Not Recognized" in out
        out = echoscu(scp.port, aec="SOMEONEELSE")
        assert "Reason: Called AE Title Not Recognized" in out
        # every accepted socket had TCP_NODELAY set
        assert scp.sockets
    finally:
        scp.stop()
    rejected = [line for line in scp.lines() if line["event"] == "association-rejected"]
    assert [r["reason"] for r in rejected] == [
        "calling-AE-title-not-recognized",
        "called-AE-title-not-recognized",
    ]
    assert rejected[0]["peer"] == {"ae": "INTRUDER", "address": "127.0.0.1"}


def test_address_rule_and_empty_list_fail_closed() -> None:
    peer = Peer("MODALITY1", "GW", "127.0.0.1")
    assert AssociationPolicy([]).check(peer) is not None
    assert AssociationPolicy([AllowRule("MODALITY1", "10.0.0.0/8")]).check(peer) is not None
    assert AssociationPolicy([AllowRule("MODALITY1", "127.0.0.0/8")]).check(peer) is None
    assert AssociationPolicy([AllowRule(host="127.0.0.1")]).check(peer) is None
    with_subject = AssociationPolicy([AllowRule("MODALITY1", subject="CN=client,O=lab")])
    assert with_subject.check(peer) is not None
    assert with_subject.check(Peer("MODALITY1", "GW", "::1", subject="CN=client,O=lab")) is None
    with pytest.raises(ValueError):
        AllowRule(host="not-an-address")


def test_requestor_and_acceptor_sockets_have_nodelay(tmp_path: Path) -> None:
    scp = Scp(tmp_path, AssociationPolicy([AllowRule()]))
    try:
        ae = NoDelayAE("MODALITY1")
        ae.add_requested_context(VERIFICATION)
        assoc = ae.associate("127.0.0.1", scp.port, ae_title="NETTEST")
        assert assoc.is_established
        mine = assoc.dul.socket.socket
        assert mine.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert scp.sockets[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert int(assoc.send_c_echo().Status) == 0
        assoc.release()
    finally:
        scp.stop()


def test_tls_client_certificates(tmp_path: Path, pki: Pki) -> None:
    context = server_context(pki.server_cert, pki.server_key, pki.ca, require_client_cert=True)
    policy = AssociationPolicy([AllowRule("MODALITY1", "127.0.0.1", subject=pki.client_subject)])
    scp = Scp(tmp_path, policy, tls=context)
    trust = ["+cf", str(pki.ca)]
    try:
        good = echoscu(scp.port, "+tls", str(pki.client_key), str(pki.client_cert), *trust)
        assert "exit=0" in good, good
        missing = echoscu(scp.port, "+tla", *trust)
        assert "exit=0" not in missing
        rogue = echoscu(scp.port, "+tls", str(pki.rogue_key), str(pki.rogue_cert), *trust)
        assert "exit=0" not in rogue
        plain = echoscu(scp.port)
        assert "exit=0" not in plain
        # pynetdicom requestor with our BCP 195 client context
        ae = NoDelayAE("MODALITY1")
        ae.add_requested_context(VERIFICATION)
        client = client_context(pki.ca, pki.client_cert, pki.client_key)
        assoc = ae.associate("127.0.0.1", scp.port, ae_title="NETTEST", tls_args=(client, None))
        assert assoc.is_established
        assert assoc.dul.socket.socket.version() in ("TLSv1.2", "TLSv1.3")
        assoc.release()
        # a TLS 1.1 client is never accepted (non-downgrading)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        with socket.create_connection(("127.0.0.1", scp.port)) as raw, pytest.raises(ssl.SSLError):
            old.wrap_socket(raw).do_handshake()
    finally:
        scp.stop()
    assert len(scp.refused) >= 3  # missing cert, rogue cert, plain client, TLS 1.1


def test_tls_subject_must_match_allow_rule(tmp_path: Path, pki: Pki) -> None:
    context = server_context(pki.server_cert, pki.server_key, pki.ca, require_client_cert=True)
    policy = AssociationPolicy([AllowRule("MODALITY1", subject="CN=someone-else,O=lab")])
    scp = Scp(tmp_path, policy, tls=context)
    try:
        out = echoscu(
            scp.port, "+tls", str(pki.client_key), str(pki.client_cert), "+cf", str(pki.ca)
        )
        assert "exit=0" not in out
    finally:
        scp.stop()
    rejected = [line for line in scp.lines() if line["event"] == "association-rejected"]
    assert rejected and rejected[0]["peer"]["subject"] == pki.client_subject


def test_config_section_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[gateway]\nport = "x"\nae_title = "THIS-IS-WAY-TOO-LONG"\ntypo = 1\n')
    section = Section(load_toml(path)["gateway"], path, "gateway")
    with pytest.raises(ConfigError, match=r"\[gateway\] port: must be an integer"):
        section.integer("port", 104, low=1, high=65535)
    with pytest.raises(ConfigError, match="AE title"):
        section.ae_title("ae_title")
    with pytest.raises(ConfigError, match="unknown key"):
        section.done()
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")


def test_one_dicom_audit_builder_for_gateway_and_guard(tmp_path: Path) -> None:
    """``dicom_audit_message`` (gateway) is ``audit_message`` (guard) with fixed roles."""
    from collections import Counter
    from xml.etree import ElementTree as ET

    from pacsguard.net.audit import DicomAuditTrail, dicom_audit_message

    xml = dicom_audit_message(
        event=("110104", "DICOM Instances Transferred"), outcome=0,
        source={"ae": "MOD", "address": "127.0.0.1"}, destination={"ae": "GW", "address": "::1"},
        studies={"2.25.1": Counter({"1.2.840.10008.5.1.4.1.1.2": 3})}, life_cycle="7",
    )  # fmt: skip
    root = ET.fromstring(xml)
    assert [e.get("csd-code") for e in root.iter("RoleIDCode")] == ["110153", "110152"]
    assert [e.get("UserID") for e in root.iter("ActiveParticipant")] == ["MOD", "GW"]
    assert root.find("AuditSourceIdentification").get("AuditSourceID") == "GW"  # type: ignore[union-attr]
    obj = root.find("ParticipantObjectIdentification")
    assert obj is not None and obj.get("ParticipantObjectDataLifeCycle") == "7"
    assert obj.find("ParticipantObjectDescription/SOPClass").get("NumberOfInstances") == "3"  # type: ignore[union-attr]
    trail = DicomAuditTrail(tmp_path / "a" / "audit.xml")
    trail.write(xml)
    trail.write(xml)
    trail.close()
    assert (tmp_path / "a" / "audit.xml").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "a" / "audit.xml").read_text().splitlines() == [xml, xml]
