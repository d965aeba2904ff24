"""Gateway pieces on their own: configuration errors, routes, backoff, the STOW-RS
multipart parser against mutated bodies, and the truthful answer when the disk is full."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from pacsguard.gateway import load_config
from pacsguard.gateway.config import Route
from pacsguard.gateway.forward import backoff
from pacsguard.gateway.stow import MultipartError, parse_multipart
from pacsguard.lab import dcmtk
from pacsguard.lab.procs import free_ports
from pacsguard.net import ConfigError
from pacsguard.sample import generate_ct_corpus
from test_gateway_support import (
    GatewayProcess,
    gateway_status,
    pacsguard,
    storescu,
    wait_for,
    write_config,
)

FOLDER = {"name": "out", "type": "folder", "path": "out"}


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    good = write_config(tmp_path, port=11120, destinations=[FOLDER])
    config = load_config(good)
    assert config.destinations[0].path == tmp_path / "out"  # relative to the file
    assert config.allow[0].ae_title == "MODALITY1"
    text = good.read_text()
    cases = {
        "unknown key": text.replace("[gateway]\n", "[gateway]\nprot = 1\n"),
        "must be one of dicom, stow, folder": text.replace('type = "folder"', 'type = "ftp"'),
        "empty: no peer could send": text.split("[[gateway.allow]]")[0]
        + "[[destination]]\n"
        + text.split("[[destination]]")[1],
        "at least one [[destination]]": text.split("[[destination]]")[0],
        "unknown option": text.replace("retain-long-modified-dates", "retain-everything"),
        "not an address or network": text.replace('host = "127.0.0.1"\n\n[[destination]]',
                                                   'host = "pacs.example"\n\n[[destination]]'),
        "must be between 1 and 32": text + "concurrency = 0\n",
        # the quarantine (original files) inside a folder whose copies are meant to be shared
        "must live outside destination 'out'": re.sub(
            r"(?m)^state = .*$", 'state = "out/state"', text
        ),
        "outside destination": re.sub(r"(?m)^state = .*$", 'state = "out"', text),
    }  # fmt: skip
    for message, body in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text(body)
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_config(bad)


def test_routes_and_backoff() -> None:
    route = Route(calling_ae=("CT1",), modality=("CT", "MR"))
    assert route.matches("CT1", "MR", "1.2")
    assert not route.matches("CT2", "MR", "1.2")
    assert not route.matches("CT1", "SR", "1.2")
    assert Route().matches("ANY", "", "")
    for attempt in range(1, 30):
        delay = backoff(attempt, 2.0, 300.0)
        nominal = min(300.0, 2.0 * 2 ** (attempt - 1))
        assert 0.5 * nominal <= delay < 1.5 * nominal


def _body(parts: list[bytes], boundary: str = "b0undary") -> bytes:
    chunks = [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n"
              for p in parts]  # fmt: skip
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


def test_multipart_parser_round_trip_and_mutations() -> None:
    rng = random.Random(10)
    parts = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(5)]
    parsed = parse_multipart(_body(parts), "b0undary")
    assert [p.data for p in parsed] == parts
    assert {p.content_type for p in parsed} == {"application/dicom"}
    body = _body(parts)
    for _ in range(400):  # truncations and byte flips: parsed exactly or refused, never a crash
        mutated = bytearray(body)
        if rng.random() < 0.5:
            del mutated[rng.randrange(len(mutated)) :]
        else:
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            result = parse_multipart(bytes(mutated), "b0undary")
        except MultipartError:
            continue
        assert all(isinstance(p.data, bytes) for p in result)
    for bad, why in [(b"", "does not start"), (b"--b0undary\r\nno-colon\r\n\r\nx", "no ':'"),
                     (b"--b0undary--\r\n", "no part"), (body, "boundary parameter")]:  # fmt: skip
        with pytest.raises(MultipartError, match=why):
            parse_multipart(bad, "" if why == "boundary parameter" else "b0undary")


def test_full_disk_answers_out_of_resources(tmp_path: Path) -> None:
    """The spool cannot take a 0.5 MB instance: A700, never Success; small ones still pass."""
    generate_ct_corpus(tmp_path / "small", files=2, rows=64, cols=64, patients=1, seed=1)
    generate_ct_corpus(tmp_path / "large", files=2, rows=512, cols=512, patients=1, seed=2)
    (port,) = free_ports(1)
    config = write_config(tmp_path, port=port, destinations=[FOLDER])
    gateway = GatewayProcess(config, port, tmp_path / "gateway.log", max_file_size=200_000)
    gateway.start()
    try:
        small = sorted((tmp_path / "small").rglob("*.dcm"))
        large = sorted((tmp_path / "large").rglob("*.dcm"))
        done = storescu(port, [*large, *small], "-nh", "-v")
        refused = "Received Store Response (Refused: OutOfResources)"
        assert done.stderr.count(refused) == 2, done.stderr
        status = gateway_status(config)
        assert status["accepted"] == 2 and status["refused"] == 2
    finally:
        gateway.terminate()
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2


def test_forwarding_over_dicom_tls_to_storescp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TLS destination: DCMTK storescp with the BCP 195 non-downgrading profile."""
    monkeypatch.setenv("TCP_NODELAY", "1")
    generate_ct_corpus(tmp_path / "in", files=3, rows=64, cols=64, patients=1, seed=4)
    key, cert = dcmtk.make_certificate(tmp_path / "tls")
    archive, port = free_ports(2)
    server = dcmtk.start_storescp("tls-dest", archive, tmp_path, tls=(key, cert))
    config = write_config(
        tmp_path,
        port=port,
        destinations=[{"name": "secure", "type": "dicom", "ae_title": "ANY-SCP",
                       "host": "127.0.0.1", "port": archive, "tls": True, "ca_file": str(cert)}],
    )  # fmt: skip
    gateway = GatewayProcess(config, port, tmp_path / "gateway.log").start()
    try:
        done = storescu(port, sorted((tmp_path / "in").rglob("*.dcm")))
        assert done.returncode == 0, done.stderr
        wait_for(lambda: gateway_status(config)["destinations"]["secure"]["sent"] == 3)
    finally:
        gateway.terminate()
        server.stop()
    assert len(list((tmp_path / "storescp-tls-dest" / "received").iterdir())) == 3


def test_cli_status_retry_and_check_errors(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=11120, destinations=[FOLDER])
    status = gateway_status(config)  # no queue yet: zeros, every destination listed
    assert status["received"] == 0 and status["destinations"]["out"]["queued"] == 0
    done = pacsguard("gateway", "status", "--config", str(config))
    assert done.returncode == 0 and "out: queued 0, sent 0, dead letter 0" in done.stdout
    done = pacsguard("gateway", "retry", "nosuch", "--config", str(config))
    assert done.returncode == 2 and "no destination named 'nosuch'" in " ".join(done.stderr.split())
    (tmp_path / "project.key").unlink()
    done = pacsguard("gateway", "check", "--config", str(config))
    assert done.returncode == 2 and done.stderr.startswith("error:")
    assert "project key file" in " ".join(done.stderr.split()) and "Traceback" not in done.stderr
