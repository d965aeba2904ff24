"""Units of `pacsguard guard` without a network: the research role's query policing against
randomly built queries, client identification, limits, config checks, the report."""

from __future__ import annotations

import json
import random
import stat
from pathlib import Path
from typing import Any

import pytest
from pydicom.datadict import DicomDictionary, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pacsguard.core.keys import ProjectKey
from pacsguard.core.pseudonym import Pseudonymizer
from pacsguard.guard import ConfigError, parse_config
from pacsguard.guard.access import REJECT_CALLED_AE, REJECT_CALLING_AE, decide
from pacsguard.guard.config import GuardConfig, Research
from pacsguard.guard.limits import ClientState, TokenBucket
from pacsguard.guard.report import summarise
from pacsguard.guard.research import FREE_MATCH, PATIENT_ID, UID_KEYS, RefusedKey, ResearchView
from pacsguard.net.policy import Peer

VALUES = {
    "PN": "DOE^JANE", "LO": "123456", "SH": "X1", "DA": "19700101", "TM": "101010",
    "UI": "1.2.3.4", "CS": "CT", "DS": "1.5", "IS": "3", "AE": "SOMEAE", "LT": "note",
    "ST": "text", "AS": "045Y", "DT": "20200101101010", "UT": "text", "UC": "text",
}  # fmt: skip


def _config(tmp_path: Path, **guard: Any) -> GuardConfig:
    base: dict[str, Any] = {
        "ae_title": "PACS", "port": 11130, "state": "state", "key_file": "k",
        "upstream": {"ae_title": "ARCHIVE", "host": "127.0.0.1", "port": 11131},
        "client": [
            {"name": "viewer", "ae_title": "VIEWER", "host": "127.0.0.1", "allow": ["echo"]},
            {"name": "lan", "ae_title": "LAN", "hosts": ["10.1.0.0/16", "::1"], "allow": []},
            {"name": "cert", "ae_title": "VIEWER", "host": "10.9.9.9", "tls": True,
             "certificate_subject": "CN=ws1"},
        ],
    }  # fmt: skip
    base.update(guard)
    base["tls"] = {"port": 2762, "cert_file": "c.pem", "key_file": "k.pem", "ca_file": "ca.pem"}
    return parse_config({"guard": base}, tmp_path / "guard.toml")


def test_clients_are_calling_ae_and_address_and_certificate(tmp_path: Path) -> None:
    config = _config(tmp_path)

    def who(calling: str, address: str, called: str = "PACS", subject: str | None = None,
            tls: bool = False) -> Any:  # fmt: skip
        return decide(config, Peer(calling, called, address, 0, subject), tls)

    assert who("VIEWER", "127.0.0.1").client.name == "viewer"
    assert who("LAN", "10.1.200.3").client.name == "lan"
    assert who("LAN", "::1").client.name == "lan"
    assert who("LAN", "10.2.0.1").reject == REJECT_CALLING_AE
    assert who("VIEWER", "127.0.0.1", called="ARCHIVE").reject == REJECT_CALLED_AE
    assert who("ARCHIVE", "127.0.0.1").kind == "upstream"
    assert who("ARCHIVE", "127.0.0.2").reject == REJECT_CALLING_AE
    assert who("VIEWER", "10.9.9.9").reason == "tls-required"
    assert who("VIEWER", "10.9.9.9", subject="CN=ws2", tls=True).reason == "certificate"
    assert who("VIEWER", "10.9.9.9", subject="CN=ws1", tls=True).client.name == "cert"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"port": 0}, "port"),
        ({"ae_title": "A" * 17}, "ae_title"),
        ({"host": "pacs.example"}, "IP address"),
        (
            {
                "client": [
                    {
                        "name": "x",
                        "ae_title": "X",
                        "host": "1.2.3.4",
                        "allow": ["move"],
                        "move_destinations": ["NOPE"],
                    }
                ]
            },
            "NOPE",
        ),
        (
            {"client": [{"name": "x", "ae_title": "X", "host": "1.2.3.4", "find_levels": ["ALL"]}]},
            "unknown level",
        ),
        ({"client": [{"name": "x", "ae_title": "ARCHIVE", "host": "1.2.3.4"}]}, "upstream"),
        (
            {
                "client": [
                    {"name": "x", "ae_title": "X", "host": "1.2.3.4", "max_responses_per_query": 0}
                ]
            },
            "max_responses_per_query",
        ),
        ({"limits": {"idle_timeot": 3}}, "idle_timeot"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, **change)


def test_limits_are_per_client() -> None:
    bucket = TokenBucket(rate_per_minute=60, capacity=2)
    assert bucket.take() and bucket.take() and not bucket.take()
    bucket.stamp -= 1.0  # one second later: one more token
    assert bucket.take() and not bucket.take()
    config = parse_config(
        {"guard": {"ae_title": "PACS", "port": 1, "state": "s",
                   "upstream": {"ae_title": "A", "host": "127.0.0.1", "port": 2},
                   "client": [{"name": "a", "ae_title": "A1", "host": "127.0.0.1",
                               "max_associations": 1, "associations_per_minute": 600}]}},
        Path("/tmp/guard.toml"),
    )  # fmt: skip
    state = ClientState(config.clients[0])
    assert state.open_association() is None
    assert state.open_association() == "max-associations"
    state.close_association()
    assert state.open_association() is None


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> ResearchView:
    return ResearchView(ProjectKey(bytes(range(32))), Research(), tmp_path_factory.mktemp("rv"))


def _random_element(rng: random.Random) -> DataElement | None:
    tag = rng.choice(TAGS)
    vr = DicomDictionary[tag][0].split(" or ")[0]
    if vr == "SQ":
        item = Dataset()
        inner = _random_element(rng)
        if inner is not None and inner.VR != "SQ":
            item.add(inner)
        return DataElement(tag, vr, Sequence([item]))
    if vr not in VALUES:
        return None
    return DataElement(tag, vr, VALUES[vr] if rng.random() < 0.6 else None)


TAGS = [t for t in DicomDictionary if t >> 16 not in (0x0000, 0x0002) and t & 0xFFFF]


def test_research_query_policing_on_random_queries(view: ResearchView) -> None:
    """Thousands of random identifiers: either refused, naming a key that carried a value, or
    passed upstream with values only in the keys allowed to match (pseudonyms translated)."""
    view.mapping.remember([("patient-id", "PGKNOWN", "REAL-77"), ("uid", "2.25.1", "1.2.3.4")])
    rng = random.Random(20261201)
    refused = passed = 0
    for _ in range(3000):
        ds = Dataset()
        ds.QueryRetrieveLevel = rng.choice(["PATIENT", "STUDY", "SERIES", "IMAGE"])
        for _ in range(rng.randint(1, 6)):
            element = _random_element(rng)
            if element is not None:
                ds.add(element)
        if rng.random() < 0.3:
            ds.PatientID = rng.choice(["PGKNOWN", "PGUNKNOWN", "REAL-77", "PG*", ""])
        if rng.random() < 0.3:
            ds.StudyInstanceUID = rng.choice(["2.25.1", "1.2.3.4", "", "2.25.1\\2.25.9"])
        try:
            query = view.query(ds, add_patient_id=True)
        except RefusedKey as refusal:
            refused += 1
            assert refusal.keyword  # names a key, never a value
            assert refusal.keyword not in VALUES.values()
            continue
        passed += 1
        if query.upstream is None:
            continue
        for element in query.upstream:
            value = element.value
            if element.VR == "SQ":
                assert all(all(e.value in (None, "", b"") for e in item) for item in value)
            elif value not in (None, "", b"", []):
                assert element.tag in FREE_MATCH or element.tag in (PATIENT_ID, *UID_KEYS)
                if element.tag == PATIENT_ID:
                    assert value == "REAL-77"  # only ever a mapped pseudonym's real value
                if element.tag in UID_KEYS:
                    assert value == "1.2.3.4"
    assert refused > 500 and passed > 500


def test_research_responses_hold_only_what_was_asked(view: ResearchView) -> None:
    response = Dataset()
    response.QueryRetrieveLevel = "STUDY"
    response.PatientID = "REAL-99"
    response.PatientName = "DOE^JANE"
    response.StudyInstanceUID = "1.2.3.99"
    response.StudyDescription = "Jane Doe brain"
    response.InstitutionName = "St Elsewhere"
    asked = Dataset()
    asked.QueryRetrieveLevel = "STUDY"
    asked.StudyInstanceUID = ""
    asked.PatientName = ""
    asked.RetrieveAETitle = ""
    out = view.response(response, tuple(e.tag for e in asked), "PACS")
    keywords = {keyword_for_tag(e.tag) for e in out}
    assert keywords <= {"QueryRetrieveLevel", "StudyInstanceUID", "PatientName",
                        "RetrieveAETitle", "SpecificCharacterSet"}  # fmt: skip
    text = str(out)
    assert "DOE" not in text and "Elsewhere" not in text and "1.2.3.99" not in text
    assert str(out.RetrieveAETitle) == "PACS"
    # the mapping now leads from the pseudonyms back to the real values
    assert view.mapping.real("uid", str(out.StudyInstanceUID)) == "1.2.3.99"
    pseudonym = Pseudonymizer(ProjectKey(bytes(range(32)))).patient_id("REAL-99")
    assert view.mapping.real("patient-id", pseudonym) == "REAL-99"
    assert stat.S_IMODE(view.mapping.path.stat().st_mode) == 0o600


def test_report_counts_from_an_audit_log(tmp_path: Path) -> None:
    lines = [
        {"event": "association", "client": "a", "outcome": "accepted"},
        {"event": "association", "calling_ae": "X", "outcome": "rejected"},
        {"event": "operation", "client": "a", "service": "find", "outcome": "success",
         "responses": 4},
        {"event": "operation", "client": "a", "service": "move", "outcome": "success",
         "instances": 7},
        {"event": "operation", "client": "a", "service": "get", "outcome": "refused"},
    ]  # fmt: skip
    (tmp_path / "audit.jsonl").write_text(
        "\n".join(json.dumps(line) for line in lines) + '\n{"torn', encoding="utf-8"
    )
    rows = {r.client: r for r in summarise(tmp_path)}
    a = rows["a"]
    assert (a.associations, a.queries, a.responses, a.retrieves, a.instances_retrieved) == (
        1, 1, 4, 1, 7,
    )  # fmt: skip
    assert a.refusals == 1
    assert rows["unknown (X)"].associations_rejected == 1


def test_init_snippet_is_a_valid_fail_closed_config(tmp_path: Path) -> None:
    import tomllib

    from pacsguard.guard.snippet import config_snippet

    text = config_snippet("10.1.2.3", 104, "ARCHIVE1")
    config = parse_config(tomllib.loads(text), tmp_path / "guard.toml")
    assert (config.host, config.port, config.ae_title) == ("10.1.2.3", 104, "ARCHIVE1")
    upstream = config.upstream
    assert (upstream.host, upstream.port, upstream.ae_title) == ("10.1.2.3", 105, "ARCHIVE1")
    assert config.clients == ()  # nobody is admitted until the operator lists clients
    moved = config_snippet("10.1.2.3", 104, None, private_host="192.168.7.7", private_port=11112)
    upstream = parse_config(tomllib.loads(moved), tmp_path / "guard.toml").upstream
    assert (upstream.host, upstream.port, upstream.ae_title) == ("192.168.7.7", 11112, "PACS")


def test_init_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    exe = str(Path(sys.executable).with_name("pacsguard"))
    done = subprocess.run(
        [exe, "guard", "init", "--pacs", "127.0.0.1:4242", "--ae-title", "ORTHANC"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (tmp_path / "guard.toml").write_text(done.stdout, encoding="utf-8")
    check = subprocess.run(
        [exe, "guard", "check", "--config", str(tmp_path / "guard.toml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    bad = subprocess.run(
        [exe, "guard", "init", "--pacs", "nowhere"], capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr


def test_dicom_audit_messages(tmp_path: Path) -> None:
    import socket
    from xml.etree import ElementTree as ET

    from pynetdicom import AE

    from pacsguard.guard import Guard
    from pacsguard.guard.report import DICOM_AUDIT_FILE
    from pacsguard.lab.procs import free_ports

    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(5)
    port, upstream = free_ports(2)
    config = parse_config(
        {"guard": {"ae_title": "PACS", "port": port, "state": "state",
                   "dicom_audit_syslog": f"127.0.0.1:{collector.getsockname()[1]}",
                   "upstream": {"ae_title": "ARCHIVE", "host": "127.0.0.1", "port": upstream},
                   "client": [{"name": "v", "ae_title": "VIEWER", "host": "127.0.0.1"}]}},
        tmp_path / "guard.toml",
    )  # fmt: skip
    with Guard(config):
        ae = AE("VIEWER")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0124  # allowed nothing
        assoc.release()
        stranger = AE("STRANGER")
        stranger.add_requested_context("1.2.840.10008.1.1")
        assert stranger.associate("127.0.0.1", port, ae_title="PACS").is_rejected
    lines = (config.state / DICOM_AUDIT_FILE).read_text().splitlines()
    events = []
    for line in lines:
        root = ET.fromstring(line)
        assert root.tag == "AuditMessage"
        ident = root.find("EventIdentification")
        assert ident is not None
        event = ident.find("EventID")
        kind = ident.find("EventTypeCode")
        assert event is not None and event.get("codeSystemName") == "DCM"
        events.append((event.get("csd-code"), None if kind is None else kind.get("csd-code")))
        assert root.find("AuditSourceIdentification") is not None
    assert events == [
        ("110100", "110120"),  # application start
        ("110113", "110132"),  # use of a restricted function (the refused C-ECHO)
        ("110113", "110126"),  # node authentication (the rejected association)
        ("110100", "110121"),  # application stop
    ]
    received = [collector.recv(65536) for _ in events]
    assert all(
        b"<AuditMessage>" in datagram and datagram.startswith(b"<85>1 ") for datagram in received
    )
    collector.close()


def test_error_line_keeps_bracketed_table_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI prints errors as text, not Rich markup: "[guard.upstream]" must survive."""
    from pacsguard.cli import main

    config = tmp_path / "guard.toml"
    config.write_text(
        '[guard]\nae_title = "PACS"\nport = 11130\nstate = "s"\n'
        '[guard.upstream]\nae_title = "ARCHIVE"\nhost = "127.0.0.1"\nport = 0\n',
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as stopped:
        main(["guard", "check", "--config", str(config)])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert stopped.value.code == 2
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "[guard.upstream]" in lines[0], lines[0]


STUDY_ROOT = "1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_ROOT = "1.2.840.10008.5.1.4.1.2.1.1"


def _asked(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_a_research_find_asks_the_pacs_whose_response_it_is(view: ResearchView) -> None:
    """A C-FIND asking StudyDescription alone got the patient's name in it: the PACS answers
    the keys asked only, so the engine never saw the name it had to clean (campaign D, 04).
    The identifying keys the level allows are asked too, then dropped."""
    query = view.query(
        _asked("STUDY", StudyInstanceUID="", StudyDescription=""), add_patient_id=True,
        model=STUDY_ROOT,
    )  # fmt: skip
    assert query.upstream is not None
    upstream = {keyword_for_tag(e.tag) for e in query.upstream}
    assert {"PatientID", "PatientName", "PatientBirthDate", "AccessionNumber"} <= upstream
    assert all(e.value in (None, "") for e in query.upstream if e.keyword != "QueryRetrieveLevel")
    assert query.asked == tuple(e.tag for e in _asked("STUDY", StudyInstanceUID="",
                                                     StudyDescription=""))  # fmt: skip
    # Patient Root's STUDY level takes only the patient's unique key; SERIES, none at all
    patient_root = view.query(_asked("STUDY", StudyInstanceUID=""), add_patient_id=True,
                              model=PATIENT_ROOT).upstream  # fmt: skip
    assert patient_root is not None and "PatientName" not in patient_root
    assert "PatientID" in patient_root
    series = view.query(_asked("SERIES", SeriesInstanceUID=""), add_patient_id=True).upstream
    assert series is not None and "PatientID" not in series and "PatientName" not in series


def test_a_description_naming_the_patient_is_cleaned_when_the_name_was_not_asked(
    tmp_path: Path,
) -> None:
    view = ResearchView(
        ProjectKey(bytes(range(32))), Research(options=frozenset({"clean-descriptors"})), tmp_path
    )
    try:
        response = _asked("STUDY", StudyInstanceUID="1.2.3.77", StudyDescription="TDM BONNET")
        response.PatientID, response.PatientName = "REAL-77", "BONNET^Lucie"
        asked = _asked("STUDY", StudyInstanceUID="", StudyDescription="")
        out = view.response(response, tuple(e.tag for e in asked), "PACS")
        assert "BONNET" not in str(out.StudyDescription) and "PatientName" not in out
    finally:
        view.close()


def test_a_pacs_that_ignores_the_cancel_is_left_after_a_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the guard's C-CANCEL (at the response cap) the PACS went on sending pending
    responses: the guard drained them for ever, the client never got its final status and
    no audit record was written (campaign D, 05)."""
    import time as clock
    from types import SimpleNamespace

    from pacsguard.guard import find

    monkeypatch.setattr(find, "CANCEL_GRACE", 0.2)
    monkeypatch.setattr(find, "_answer", lambda guard, session, response, asked, syntax: response)
    cancels: list[int] = []
    closed: list[bool] = []

    def endless(query: object, model: str, message: int) -> Any:
        while True:
            yield SimpleNamespace(Status=0xFF00), Dataset()

    link = SimpleNamespace(
        find=endless, cancel=lambda message, model: cancels.append(message),
        close=lambda abort=False: closed.append(abort),
    )  # fmt: skip
    client = SimpleNamespace(limits=SimpleNamespace(max_responses_per_query=3))
    state = SimpleNamespace(responses=SimpleNamespace(take=lambda: True))
    session = SimpleNamespace(state=state, client=client, research=False)
    guard = SimpleNamespace(next_message_id=lambda: 7)
    event = SimpleNamespace(request=SimpleNamespace(AffectedSOPClassUID="1.2"), is_cancelled=False)
    record: dict[str, Any] = {"responses": 0}
    done: dict[str, Any] = {}
    started = clock.monotonic()
    got = list(find._responses(guard, session, event, link, Dataset(), (), record, done, None))  # type: ignore[arg-type]
    assert len(got) == 3 and cancels == [7] and closed == [True]
    assert done["reason"] == "response-cap" and done["status"] == 0xA700
    assert clock.monotonic() - started < 5


def test_a_date_without_its_patient_is_answered_empty(tmp_path: Path) -> None:
    """At SERIES and IMAGE levels no key may ask the PACS for the Patient ID, which keys the
    date shift: every patient's dates were shifted alike, so one real date known gave all
    (campaign D, 01). Unkeyed, a date is answered empty; keyed, it is shifted."""
    view = ResearchView(
        ProjectKey(bytes(range(32))),
        Research(options=frozenset({"retain-long-modified-dates"})),
        tmp_path,
    )
    try:
        asked = tuple(e.tag for e in _asked("SERIES", SeriesInstanceUID="", SeriesDate=""))
        series = _asked("SERIES", SeriesInstanceUID="1.2.3.5", SeriesDate="20200315")
        assert view.response(series, asked, "PACS").SeriesDate in (None, "")
        series.PatientID = "REAL-1"
        shifted = view.response(series, asked, "PACS").SeriesDate
        assert shifted and str(shifted) != "20200315"
    finally:
        view.close()
