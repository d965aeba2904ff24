"""``python -m pacsguard.lab.serve WORK SAMPLE``: one loopback Orthanc, open to anyone as
too many are, loaded with a ``pacsguard sample`` output; for ``make demo``.

Prints ``ready dicom=PORT http=PORT`` once every instance is stored, then serves until
SIGTERM or SIGINT, and stops Orthanc (which also dies with this process).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from pacsguard.lab import orthanc
from pacsguard.lab.procs import free_ports
from pacsguard.sample import load_answer_key


def serve(work: Path, sample: Path) -> None:
    key = load_answer_key(sample / "answer-key.json")
    files = [sample / f.path for f in key.files if f.has_file_meta]
    http_port, dicom_port = free_ports(2)
    spec = orthanc.OrthancSpec("demo", http_port, dicom_port, plugins=(orthanc.DICOMWEB,))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = orthanc.start(spec, work.resolve())
    try:
        orthanc.upload(spec, files)
        print(f"ready dicom={dicom_port} http={http_port}", flush=True)
        stop.wait()
    finally:
        server.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m pacsguard.lab.serve WORK SAMPLE", file=sys.stderr)
        return 2
    serve(Path(argv[0]), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
