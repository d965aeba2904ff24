"""Benchmark: pacsguard pack/unpack against `tar c | age -r` and `age -d | tar x`.

    .venv/bin/python bench/pack_bench.py --size-mb 1000 --workdir /tmp/pack-bench

Builds (once, reused) a de-identified-looking corpus of DICOM files with its
pacsguard-deid.json, then times each operation in the same run and reports wall
time, throughput (corpus MB / s, MB = 10^6 bytes) and peak RSS. Each process runs
under /usr/bin/time; a pipeline's peak RSS is the sum of its processes' peaks.
The corpus is read from the page cache by every contender alike.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

ROOT = Path(__file__).resolve().parent.parent
PACSGUARD = [sys.executable, "-m", "pacsguard"]
if (ROOT / ".venv" / "bin" / "pacsguard").exists():
    PACSGUARD = [str(ROOT / ".venv" / "bin" / "pacsguard")]
ROWS = 512  # 512 x 512 x 16 bit = 512 KiB of pixels per file
API_PACK = """import sys; from pathlib import Path; from pacsguard.pack import pack
force = sys.argv[4] == "force"
pack(Path(sys.argv[1]), Path(sys.argv[2]), recipients=[sys.argv[3]], ocr=False,
     force=force, reason="benchmark corpus" if force else None)"""
STALE = ("p.age", "p2.age", "ref.age", "out-pacsguard", "out-api", "out-age")
API_UNPACK = """import sys; from pathlib import Path; from pacsguard.pack import unpack
unpack(Path(sys.argv[1]), Path(sys.argv[2]), identity=Path(sys.argv[3]))"""


def build_corpus(folder: Path, size_mb: int) -> int:
    """Write about ``size_mb`` MB of CT-like DICOM files plus pacsguard-deid.json."""
    marker = folder.parent / f".{folder.name}-size"
    if marker.exists() and marker.read_text() == str(size_mb):
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 4096, size=ROWS * ROWS * 8, dtype=np.uint16)
    per_file = ROWS * ROWS * 2 + 1024
    count = max(1, size_mb * 1_000_000 // per_file)
    listing = []
    for i in range(count):
        study, series = 1 + i // 400, 1 + i // 100
        path = folder / f"PGBENCH{i // 400:04d}" / f"2.25.{study}" / f"2.25.{series}0"
        path = path / f"2.25.{10**6 + i}.dcm"
        start = (i * 7919) % (len(pool) - ROWS * ROWS)
        _write(path, i, pool[start : start + ROWS * ROWS].tobytes())
        data = path.read_bytes()
        listing.append(
            {
                "path": path.relative_to(folder).as_posix(),
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            }
        )
    manifest = {
        "tool": "pacsguard",
        "version": "bench",
        "profile": {"options": [], "strict": True, "policy_sha256": None},
        "counts": {"inputs": count, "output": count, "quarantine": 0, "pending": 0},
        "files": listing,
    }
    (folder / "pacsguard-deid.json").write_text(json.dumps(manifest))
    marker.write_text(str(size_mb))
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _write(path: Path, index: int, pixels: bytes) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"2.25.{10**6 + index}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientID = ds.PatientName = f"PGBENCH{index // 400:04d}"
    ds.Modality = "CT"
    ds.Rows = ds.Columns = ROWS
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


@dataclass
class Row:
    name: str
    seconds: float
    peak_kb: list[int]


def timed(name: str, stages: list[list[str]], stdin: Path | None, stdout: Path | None) -> Row:
    """Run ``stages`` as a pipeline, each under /usr/bin/time; peak RSS per stage."""
    with tempfile.TemporaryDirectory() as scratch:
        reports = [Path(scratch) / f"{i}.time" for i in range(len(stages))]
        procs: list[subprocess.Popen[bytes]] = []
        source = stdin.open("rb") if stdin else subprocess.DEVNULL
        errors = (Path(scratch) / "stderr").open("wb")
        sink = stdout.open("wb") if stdout else subprocess.DEVNULL
        start = time.perf_counter()
        previous = source
        for i, stage in enumerate(stages):
            last = i == len(stages) - 1
            proc = subprocess.Popen(
                ["/usr/bin/time", "-f", "%M", "-o", str(reports[i]), *stage],
                stdin=previous,
                stdout=sink if last else subprocess.PIPE,
                stderr=errors,
            )
            if procs and procs[-1].stdout is not None:
                procs[-1].stdout.close()
            procs.append(proc)
            previous = proc.stdout  # type: ignore[assignment]
        codes = [p.wait() for p in procs]
        seconds = time.perf_counter() - start
        for handle in (source, sink):
            if hasattr(handle, "close"):
                handle.close()  # type: ignore[union-attr]
        errors.close()
        if any(codes):
            sys.stderr.write((Path(scratch) / "stderr").read_text(errors="replace"))
            raise SystemExit(f"{name} failed: exit codes {codes}")
        peaks = [int(r.read_text().split()[-1]) for r in reports]
    return Row(name, seconds, peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "pack-bench")
    parser.add_argument("--keep", action="store_true", help="keep packages and outputs")
    args = parser.parse_args()
    for tool in ("age", "tar", "/usr/bin/time"):
        if not shutil.which(tool):
            raise SystemExit(f"needs {tool}")
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus"
    print(f"corpus: building/reusing {args.size_mb} MB in {corpus} …", flush=True)
    total = build_corpus(corpus, args.size_mb)
    files = sum(1 for p in corpus.rglob("*.dcm"))
    for stale in (*STALE, "id.key"):
        target = work / stale
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    identity = work / "id.key"
    recipient = subprocess.run(
        [*PACSGUARD, "key", "new-identity", str(identity)], check=True, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip

    sys.path.insert(0, str(ROOT / "src"))
    from pacsguard.pack import preflight

    start = time.perf_counter()
    problems = preflight(corpus, ocr=False)
    preflight_s = time.perf_counter() - start
    force = ["--force", "--reason", "benchmark corpus"] if problems else []

    (work / "out-age").mkdir()
    start = time.perf_counter()
    help_row = timed("baseline", [[*PACSGUARD, "--help"]], None, None)
    baseline, baseline_s = help_row.peak_kb[0], time.perf_counter() - start
    rows = [
        timed(
            "pacsguard pack",
            [[*PACSGUARD, "pack", str(corpus), str(work / "p.age"), "--to", recipient,
              "--no-ocr", *force]],
            None, None,
        ),
        timed(
            "pack (API only)",
            [[sys.executable, "-c", API_PACK, str(corpus), str(work / "p2.age"), recipient,
              "force" if force else "-"]],
            None, None,
        ),
        timed(
            "tar c | age -r",
            [["tar", "c", "-C", str(corpus), "."], ["age", "-r", recipient]],
            None, work / "ref.age",
        ),
        timed(
            "pacsguard unpack",
            [[*PACSGUARD, "unpack", str(work / "p.age"), str(work / "out-pacsguard"),
              "-i", str(identity)]],
            None, None,
        ),
        timed(
            "unpack (API only)",
            [[sys.executable, "-c", API_UNPACK, str(work / "p2.age"), str(work / "out-api"),
              str(identity)]],
            None, None,
        ),
        timed(
            "age -d | tar x",
            [["age", "-d", "-i", str(identity)], ["tar", "x", "-C", str(work / "out-age")]],
            work / "ref.age", None,
        ),
    ]  # fmt: skip
    mb = total / 1e6
    print(f"\n{files} DICOM files, {mb:.0f} MB; {os.cpu_count()} CPUs")
    print(f"{'operation':<20}{'seconds':>9}{'MB/s':>9}{'peak RSS MB':>13}  per process")
    for row in rows:
        each = " + ".join(f"{kb / 1024:.0f}" for kb in row.peak_kb)
        print(
            f"{row.name:<20}{row.seconds:>9.1f}{mb / row.seconds:>9.0f}"
            f"{sum(row.peak_kb) / 1024:>13.0f}  {each}"
        )
    sizes = (work / "p.age").stat().st_size, (work / "ref.age").stat().st_size
    print(f"\npackage sizes: pacsguard {sizes[0] / 1e6:.1f} MB, tar|age {sizes[1] / 1e6:.1f} MB")
    print(f"pre-flight (deid manifest + verify, no OCR): {preflight_s:.1f} s, within pack's time")
    if problems:
        print("pre-flight problems (packed with --force): " + "; ".join(problems))
    print("pacsguard unpack fsyncs every file and hashes it; tar x does neither.")
    print(
        f"CLI rows include starting the whole pacsguard CLI: {baseline / 1024:.0f} MB RSS and "
        f"{baseline_s:.1f} s for `pacsguard --help`; API rows import pacsguard.pack only."
    )
    if not args.keep:
        for stale in STALE:
            target = work / stale
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
