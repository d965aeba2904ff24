"""`pacsguard guard` overhead: the same C-FIND and C-MOVE straight to the PACS and through
the guard, in one run, on 127.0.0.1.

    .venv/bin/python bench/guard_bench.py --workdir DIR [--instances 300] [--finds 50]

The PACS is DCMTK's dcmqrscp holding one CT series (512x512 16-bit slices, ~0.5 MB each,
identifiers in descriptions, a private block); the C-MOVE destination is DCMTK's storescp;
the guard runs as its own process (`pacsguard guard run`). Run it on a quiet machine: the
guard is one Python process with a thread per association, and on a loaded 2-core machine
the GIL's hand-offs, not the bytes, set its pace. Every DCMTK process runs with
TCP_NODELAY=1 in its environment, and the guard sets TCP_NODELAY on all its sockets.

C-FIND latency: median of --finds STUDY-level queries on one open association (pynetdicom
client), and median of --finds whole `findscu` runs (process start included).
C-MOVE throughput: `movescu` of the whole series, direct (the PACS sends to storescp) and
through the guard (the PACS sends to the guard, which relays each instance), median of
--rounds, direct and guard rounds interleaved. C-GET: `getscu` of the same series, likewise
(no aim in the issue; the guard relays it on the client's own association). TLS: the client
side of the guard over TLS (upstream stays plain), reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from pacsguard.guard import lab
from pacsguard.lab.procs import LOOPBACK, free_ports, listening
from pacsguard.net.sockets import NoDelayAE, settle
from pacsguard.net.tls import client_context

PACSGUARD = str(Path(sys.executable).with_name("pacsguard"))
# Study Root Query/Retrieve Information Model - FIND and - MOVE
STUDY_FIND, STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.1", "1.2.840.10008.5.1.4.1.2.2.2"
ENV = {**os.environ, "TCP_NODELAY": "1"}


def make_series(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    study, series = generate_uid(), generate_uid()
    paths = []
    for index in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "MARTIN^Claire", "8812345", "19610423"
        ds.AccessionNumber, ds.StudyID = "ACC20991", "1"
        ds.StudyDate, ds.StudyTime, ds.Modality = "20240305", "101500", "CT"
        ds.StudyDescription = "CT thorax Claire Martin 8812345"
        ds.SeriesDescription = "Axial 1mm (ref. Dr Dupont)"
        ds.InstitutionName, ds.ReferringPhysicianName = "CHU Exemple", "DUPONT^Jean"
        ds.SeriesNumber, ds.InstanceNumber = 1, index + 1
        ds.add_new(0x00090010, "LO", "ACME_CT")
        ds.add_new(0x00091001, "LO", "operator: Martin")
        ds.Rows = ds.Columns = 512
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = rng.integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
        path = folder / f"ct{index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=900, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr[-800:]}")
    return seconds


def find_latency(port: int, called: str, rounds: int) -> float:
    # TCP_NODELAY on the client too: without it, Nagle's algorithm holds the C-FIND-RQ's
    # data set PDU for the peer's delayed ACK (~40 ms), which hid the guard's overhead
    ae = NoDelayAE(ae_title="BENCH")
    ae.add_requested_context(STUDY_FIND)
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    query.PatientID = ""
    assoc = ae.associate(LOOPBACK, port, ae_title=called)
    if not assoc.is_established:
        raise SystemExit(f"no association with port {port}")
    times = []
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            for status, _ in assoc.send_c_find(query, STUDY_FIND):
                if status.Status not in (0xFF00, 0xFF01) and status.Status != 0:
                    raise SystemExit(f"C-FIND failed: 0x{status.Status:04X}")
            times.append(time.perf_counter() - start)
            settle(assoc)  # pynetdicom's pause race loses back-to-back responses otherwise
    finally:
        assoc.release()
    return statistics.median(times)


def findscu(port: int, called: str, rounds: int, tls: tuple[str, ...] = ()) -> float:
    argv = ["findscu", "-S", *tls, "-aet", "BENCH", "-aec", called, "-k",
            "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", LOOPBACK, str(port)]  # fmt: skip
    return statistics.median(timed(argv) for _ in range(rounds))


def movescu(port: int, called: str, destination: str, study: str, receiver: lab.Receiver,
            rounds: int, tls: tuple[str, ...] = ()) -> float:  # fmt: skip
    times = []
    for _ in range(rounds):
        shutil.rmtree(receiver.folder)
        receiver.folder.mkdir()
        times.append(timed(["movescu", "-S", *tls, "-aet", "BENCH", "-aec", called, "-aem",
                            destination, "-k", "QueryRetrieveLevel=STUDY",
                            "-k", f"StudyInstanceUID={study}", LOOPBACK, str(port)]))  # fmt: skip
    return statistics.median(times)


def getscu(port: int, called: str, study: str, folder: Path) -> float:
    """One `getscu` of the whole series into ``folder`` (emptied first)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return timed(["getscu", "-S", "-aet", "BENCH", "-aec", called, "-od", str(folder),
                  "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
                  LOOPBACK, str(port)])  # fmt: skip


def pynetdicom_move(port: int, called: str, destination: str, study: str,
                    receiver: lab.Receiver, rounds: int, tls: Any = None) -> float:  # fmt: skip
    """C-MOVE from a pynetdicom client (DCMTK 3.6.7's movescu has no TLS)."""
    MOVE = STUDY_MOVE

    ae = NoDelayAE(ae_title="BENCH")
    ae.add_requested_context(MOVE)
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study
    times = []
    for _ in range(rounds):
        shutil.rmtree(receiver.folder)
        receiver.folder.mkdir()
        start = time.perf_counter()
        tls_args = (tls, LOOPBACK) if tls is not None else None
        assoc = ae.associate(LOOPBACK, port, ae_title=called, tls_args=tls_args)
        if not assoc.is_established:
            raise SystemExit(f"no association with port {port}")
        final = None
        for status, _ in assoc.send_c_move(query, destination, MOVE):
            final = int(getattr(status, "Status", 0xC000))
        assoc.release()
        times.append(time.perf_counter() - start)
        if final != 0:
            raise SystemExit(f"C-MOVE ended with 0x{final or 0:04X}")
    return statistics.median(times)


def pynetdicom_alone(files: list[Path], receiver: lab.Receiver, work: Path) -> dict[str, float]:
    """What pynetdicom itself manages, with no guard logic: C-STORE of the same files from a
    pynetdicom SCU to storescp, and from storescu to a pynetdicom SCP that writes the raw
    bytes (the two halves of every relayed instance before ``net.rawstore``), next to
    storescu -> storescp."""
    from pydicom.filewriter import write_file_meta_info
    from pynetdicom import evt

    from pacsguard.net.sockets import start_server

    ct = "1.2.840.10008.5.1.4.1.1.2"
    sender = NoDelayAE(ae_title="BENCH")
    sender.add_requested_context(ct, [ExplicitVRLittleEndian])
    start = time.perf_counter()
    assoc = sender.associate(LOOPBACK, receiver.port, ae_title="ANY")
    for path in files:
        assoc.send_c_store(path)
        settle(assoc)  # as the guard does: pynetdicom's pause race otherwise loses responses
    assoc.release()
    send = len(files) / (time.perf_counter() - start)
    out = work / "pynetdicom-received"
    out.mkdir(exist_ok=True)

    def on_store(event: Any) -> int:
        with (out / f"{event.request.AffectedSOPInstanceUID}.dcm").open("wb") as handle:
            handle.write(b"\x00" * 128 + b"DICM")
            write_file_meta_info(handle, event.file_meta)  # type: ignore[arg-type]
            handle.write(event.request.DataSet.getvalue())
        return 0

    (port,) = free_ports(1)
    scp = NoDelayAE(ae_title="RECV")
    scp.maximum_pdu_size = 262_144
    scp.add_supported_context(ct, [ExplicitVRLittleEndian])
    server = start_server(scp, LOOPBACK, port, [(evt.EVT_C_STORE, on_store)])
    try:
        receive = len(files) / timed(["storescu", "-aec", "RECV", LOOPBACK, str(port),
                                      *map(str, files)])  # fmt: skip
    finally:
        server.shutdown()
    native = len(files) / timed(["storescu", "-aec", "ANY", LOOPBACK, str(receiver.port),
                                 *map(str, files)])  # fmt: skip
    return {"pynetdicom_send_instances_per_s": send, "pynetdicom_receive_instances_per_s": receive,
            "storescu_storescp_instances_per_s": native}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--finds", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    files = make_series(work / "series", args.instances)
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    study = str(__import__("pydicom").dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    guard_port, tls_port, pacs_port, store_port = free_ports(4)
    pki = lab.make_pki(work / "pki", ["bench-client"])
    servers: list[Any] = []
    guard = None
    try:
        archive = lab.start_dcmqrscp(
            work, pacs_port, "ARCHIVE",
            {"PACS": (LOOPBACK, guard_port), "DIRECTSTORE": (LOOPBACK, store_port)},
        )  # fmt: skip
        servers.append(archive.server)
        lab.load(archive, files, work / "load.log")
        receiver = lab.start_storescp(work, store_port, "bench")
        servers.append(receiver.server)
        config = work / "guard.toml"
        config.write_text(
            f'[guard]\nae_title = "PACS"\nhost = "{LOOPBACK}"\nport = {guard_port}\n'
            f'state = "state"\n'
            f'[guard.tls]\nport = {tls_port}\ncert_file = "{pki.server[1]}"\n'
            f'key_file = "{pki.server[0]}"\nca_file = "{pki.ca}"\n'
            f'[guard.upstream]\nae_title = "ARCHIVE"\nhost = "{LOOPBACK}"\nport = {pacs_port}\n'
            f'[[guard.client]]\nname = "bench"\nae_title = "BENCH"\nhost = "{LOOPBACK}"\n'
            f'allow = ["find", "move", "get"]\nmove_destinations = ["DIRECTSTORE"]\n'
            f"associations_per_minute = 100000\nfind_responses_per_minute = 1000000\n"
            f'[[guard.destination]]\nae_title = "DIRECTSTORE"\nhost = "{LOOPBACK}"\n'
            f"port = {store_port}\n",
            encoding="utf-8",
        )
        guard = subprocess.Popen(
            [PACSGUARD, "guard", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=(work / "guard.log").open("wb"), env=ENV,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not listening(guard_port):
            if guard.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the guard did not start; see {work / 'guard.log'}")
            time.sleep(0.05)
        key, cert = pki.clients["bench-client"]
        tls = ("+tls", str(key), str(cert), "+cf", str(pki.ca))  # findscu has TLS

        results: dict[str, Any] = {"instances": len(files), "megabytes": round(megabytes, 1)}
        results["find_assoc_direct_ms"] = find_latency(pacs_port, "ARCHIVE", args.finds) * 1e3
        results["find_assoc_guard_ms"] = find_latency(guard_port, "PACS", args.finds) * 1e3
        few = max(5, args.finds // 5)
        results["findscu_direct_ms"] = findscu(pacs_port, "ARCHIVE", few) * 1e3
        results["findscu_guard_ms"] = findscu(guard_port, "PACS", few) * 1e3
        results["findscu_guard_tls_ms"] = findscu(tls_port, "PACS", few, tls) * 1e3
        # rounds interleaved, so that a change in the machine's load falls on both sides
        direct_runs, guard_runs = [], []
        for _ in range(args.rounds):
            direct_runs.append(movescu(pacs_port, "ARCHIVE", "DIRECTSTORE", study, receiver, 1))
            assert len(receiver.received()) == len(files), "direct move incomplete"
            guard_runs.append(movescu(guard_port, "PACS", "DIRECTSTORE", study, receiver, 1))
            assert len(receiver.received()) == len(files), "guarded move incomplete"
        direct, proxied = statistics.median(direct_runs), statistics.median(guard_runs)
        results["move_rounds_direct_s"], results["move_rounds_guard_s"] = direct_runs, guard_runs
        get_direct, get_guard = [], []
        fetched = work / "getscu"
        for _ in range(args.rounds):
            get_direct.append(getscu(pacs_port, "ARCHIVE", study, fetched))
            assert len(list(fetched.iterdir())) == len(files), "direct get incomplete"
            get_guard.append(getscu(guard_port, "PACS", study, fetched))
            assert len(list(fetched.iterdir())) == len(files), "guarded get incomplete"
        for name, runs in (("direct", get_direct), ("guard", get_guard)):
            results[f"get_{name}_instances_per_s"] = len(files) / statistics.median(runs)
        results["ratio_get"] = statistics.median(get_guard) / statistics.median(get_direct)
        plain_py = pynetdicom_move(guard_port, "PACS", "DIRECTSTORE", study, receiver, args.rounds)
        context = client_context(pki.ca, cert, key)
        proxied_tls = pynetdicom_move(
            tls_port, "PACS", "DIRECTSTORE", study, receiver, args.rounds, context
        )
        assert len(receiver.received()) == len(files), "guarded TLS move incomplete"
        results["move_guard_pynetdicom_plain_s"] = plain_py
        results["ratio_move_tls_vs_plain"] = proxied_tls / plain_py
        for name, seconds in (("direct", direct), ("guard", proxied), ("guard_tls", proxied_tls)):
            results[f"move_{name}_s"] = seconds
            results[f"move_{name}_instances_per_s"] = len(files) / seconds
            results[f"move_{name}_mb_per_s"] = megabytes / seconds
        results["ratio_find_assoc"] = (
            results["find_assoc_guard_ms"] / results["find_assoc_direct_ms"]
        )
        results["ratio_findscu"] = results["findscu_guard_ms"] / results["findscu_direct_ms"]
        results["ratio_move"] = proxied / direct  # >1: the guard takes longer
        results["ratio_move_tls"] = proxied_tls / direct
        results.update(pynetdicom_alone(files, receiver, work))
    finally:
        if guard is not None:
            guard.send_signal(signal.SIGTERM)
            guard.wait(timeout=30)
        for server in reversed(servers):
            server.stop()
    report(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "guard.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


def report(r: dict[str, Any]) -> None:
    print(f"guard benchmark: {r['instances']} CT instances, {r['megabytes']} MB, 127.0.0.1, "
          "DCMTK peers with TCP_NODELAY=1, the guard sets TCP_NODELAY on its sockets")  # fmt: skip
    print(f"{'':34}{'direct':>12}{'guard':>12}{'ratio':>8}{'guard TLS':>12}")
    print(f"{'C-FIND on an open association ms':34}{r['find_assoc_direct_ms']:12.2f}"
          f"{r['find_assoc_guard_ms']:12.2f}{r['ratio_find_assoc']:8.2f}{'':>12}")  # fmt: skip
    print(f"{'findscu, whole run ms':34}{r['findscu_direct_ms']:12.1f}{r['findscu_guard_ms']:12.1f}"
          f"{r['ratio_findscu']:8.2f}{r['findscu_guard_tls_ms']:12.1f}")  # fmt: skip
    print(f"{'C-MOVE instances/s':34}{r['move_direct_instances_per_s']:12.1f}"
          f"{r['move_guard_instances_per_s']:12.1f}{r['ratio_move']:8.2f}"
          f"{r['move_guard_tls_instances_per_s']:12.1f}")  # fmt: skip
    print(f"{'C-MOVE MB/s':34}{r['move_direct_mb_per_s']:12.1f}{r['move_guard_mb_per_s']:12.1f}"
          f"{r['ratio_move']:8.2f}{r['move_guard_tls_mb_per_s']:12.1f}")  # fmt: skip
    print(f"{'C-GET instances/s (getscu)':34}{r['get_direct_instances_per_s']:12.1f}"
          f"{r['get_guard_instances_per_s']:12.1f}{r['ratio_get']:8.2f}")  # fmt: skip
    print("ratio = guard time / direct time (aim: <= 1.2 for C-FIND, <= 1.3 for C-MOVE, plain)")
    print(
        f"pynetdicom alone, C-STORE instances/s: send {r['pynetdicom_send_instances_per_s']:.1f}, "
        f"receive {r['pynetdicom_receive_instances_per_s']:.1f}; storescu -> storescp "
        f"{r['storescu_storescp_instances_per_s']:.1f} (the guard relayed through these until "
        "it framed instances onto the sockets itself: net.rawstore)"
    )
    print(
        f"TLS (client side of the guard; a pynetdicom client, as movescu 3.6.7 has no TLS): "
        f"C-MOVE {r['ratio_move_tls_vs_plain']:.2f}x the time of the same client in plain"
    )


if __name__ == "__main__":
    main()
