"""Benchmark: pacsguard pack/unpack against `tar c | age -r` and `age -d | tar x`.

    .venv/bin/python bench/pack_bench.py --size-mb 1000 --rounds 3 --workdir /tmp/pack-bench

Builds (once, reused) a corpus of CT files and de-identifies it twice with the real
`pacsguard deid`: with `--verify` (each output verified before it is committed, its
SHA-256 recorded: pack then checks hashes as it streams) and without (pack then runs the
whole verify first, its cost shown in its own row). Times each operation in the same run
and reports wall time, throughput (corpus MB / s, MB = 10^6 bytes), peak RSS, and pack's
throughput as a ratio to `tar c | age -r` on the same tree. Each process runs under
/usr/bin/time; a pipeline's peak RSS is the sum of its processes' peaks. Every tree is
read from the page cache by every contender alike. The disk's speed drifts from minute to
minute, so every row runs ``--rounds`` times, interleaved, and ratios are taken within a round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
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
    """Write about ``size_mb`` MB of CT-like DICOM files (the input of deid)."""
    marker = folder.parent / f".{folder.name}-size"
    if marker.exists() and marker.read_text() == str(size_mb):
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 4096, size=ROWS * ROWS * 8, dtype=np.uint16)
    per_file = ROWS * ROWS * 2 + 1024
    count = max(1, size_mb * 1_000_000 // per_file)
    for i in range(count):
        study, series = 1 + i // 400, 1 + i // 100
        path = folder / f"PGBENCH{i // 400:04d}" / f"2.25.{study}" / f"2.25.{series}0"
        path = path / f"2.25.{10**6 + i}.dcm"
        start = (i * 7919) % (len(pool) - ROWS * ROWS)
        _write(path, i, pool[start : start + ROWS * ROWS].tobytes())
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
    ds.StudyInstanceUID = f"2.25.{1 + index // 400}"
    ds.SeriesInstanceUID = f"2.25.{1 + index // 100}0"
    ds.StudyDate, ds.Modality, ds.StudyDescription = "20240102", "CT", "CT THORAX"
    ds.Rows = ds.Columns = ROWS
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def deidentify(source: Path, out: Path, key: Path, *, verify: bool) -> float:
    """``pacsguard deid`` of ``source`` into ``out`` (reused when complete); its seconds."""
    marker = out.parent / f".{out.name}-done"
    if marker.exists() and out.is_dir():
        return float(marker.read_text())
    if not key.exists():
        subprocess.run([*PACSGUARD, "key", "new", str(key)], check=True, capture_output=True)
    for stale in (out, out.with_name(out.name + ".pacsguard")):
        shutil.rmtree(stale, ignore_errors=True)
    print(f"deid{' --verify' if verify else ''}: {source} -> {out} …", flush=True)
    start = time.perf_counter()
    command = [*PACSGUARD, "deid", str(source), str(out), "--key", str(key)]
    subprocess.run([*command, *(["--verify"] if verify else [])], check=True)
    seconds = time.perf_counter() - start
    marker.write_text(f"{seconds:.1f}")
    return seconds


@dataclass
class Row:
    name: str
    seconds: float
    peak_kb: list[int]


def timed(
    name: str,
    stages: list[list[str]],
    stdin: Path | None,
    stdout: Path | None,
    durable: list[str] | None = None,
) -> Row:
    """Run ``stages`` as a pipeline, each under /usr/bin/time; peak RSS per stage.
    ``durable``: the command that makes the pipeline's output durable (``sync FILE``,
    ``sync -f DIR``), run after it and counted in its time, as pacsguard syncs its own."""
    os.sync()  # what earlier rows left dirty is not this row's to write back (not timed)
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
        if durable is not None and not any(codes):
            codes.append(subprocess.run(durable, check=False).returncode)
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
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="every row runs this many times, interleaved; rows show the run of median time, "
        "ratios are taken within each round, then their median is shown",
    )  # fmt: skip
    args = parser.parse_args()
    for tool in ("age", "tar", "/usr/bin/time"):
        if not shutil.which(tool):
            raise SystemExit(f"needs {tool}")
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    source = work / "source"
    print(f"corpus: building/reusing {args.size_mb} MB in {source} …", flush=True)
    build_corpus(source, args.size_mb)
    verified, plain = work / "deid-verified", work / "deid-plain"
    deid_verified_s = deidentify(source, verified, work / "project.key", verify=True)
    deid_plain_s = deidentify(source, plain, work / "project.key", verify=False)
    corpus = verified
    total = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
    files = sum(1 for p in corpus.rglob("*.dcm"))
    _remove(work, (*STALE, "id.key", "p3.age"))
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
    if problems:
        raise SystemExit("the deid --verify tree fails pack's pre-flight: " + "; ".join(problems))
    force: list[str] = []

    (work / "out-age").mkdir()
    start = time.perf_counter()
    help_row = timed("baseline", [[*PACSGUARD, "--help"]], None, None)
    baseline, baseline_s = help_row.peak_kb[0], time.perf_counter() - start
    packs = [
        ("pacsguard pack",
         [[*PACSGUARD, "pack", str(corpus), str(work / "p.age"), "--to", recipient,
           "--no-ocr", *force]], None, None, None),
        ("pack (API only)",
         [[sys.executable, "-c", API_PACK, str(corpus), str(work / "p2.age"), recipient,
           "force" if force else "-"]], None, None, None),
        ("pack, not verified",
         [[*PACSGUARD, "pack", str(plain), str(work / "p3.age"), "--to", recipient,
           "--no-ocr"]], None, None, None),
        ("tar c | age -r + sync",
         [["tar", "c", "-C", str(corpus), "."], ["age", "-r", recipient]],
         None, work / "ref.age", ["sync", str(work / "ref.age")]),
    ]  # fmt: skip
    unpacks = [
        ("pacsguard unpack",
         [[*PACSGUARD, "unpack", str(work / "p.age"), str(work / "out-pacsguard"),
           "-i", str(identity)]], None, None, None),
        ("unpack (API only)",
         [[sys.executable, "-c", API_UNPACK, str(work / "p2.age"), str(work / "out-api"),
           str(identity)]], None, None, None),
        ("age -d | tar x + sync",
         [["age", "-d", "-i", str(identity)], ["tar", "x", "-C", str(work / "out-age")]],
         work / "ref.age", None, ["sync", "-f", str(work / "out-age")]),
    ]  # fmt: skip
    rounds: list[dict[str, Row]] = []
    for number in range(args.rounds):
        # Unpacks read what the packs of the same round wrote; within each group the order is
        # reversed every other round, so a drift in the disk's speed falls on every row alike.
        step = 1 if number % 2 == 0 else -1
        print(f"round {number + 1}/{args.rounds}", flush=True)
        measured: dict[str, Row] = {}
        for group in (packs, unpacks):
            for spec in group[::step]:
                measured[spec[0]] = row = timed(*spec)
                print(f"  {row.name:<24}{row.seconds:>6.2f} s", flush=True)
        rounds.append(measured)
        if number + 1 < args.rounds:
            _remove(work, (*STALE, "p3.age"))
            (work / "out-age").mkdir()
    names = [spec[0] for spec in (*packs, *unpacks)]
    rows = [_median_row([measured[name] for measured in rounds]) for name in names]
    mb = total / 1e6
    print(f"\n{files} DICOM files, {mb:.0f} MB; {os.cpu_count()} CPUs")
    print(f"{'operation':<24}{'seconds':>9}{'MB/s':>9}{'peak RSS MB':>13}  per process")
    for row in rows:
        each = " + ".join(f"{kb / 1024:.0f}" for kb in row.peak_kb)
        print(
            f"{row.name:<24}{row.seconds:>9.1f}{mb / row.seconds:>9.0f}"
            f"{sum(row.peak_kb) / 1024:>13.0f}  {each}"
        )
    sizes = (work / "p.age").stat().st_size, (work / "ref.age").stat().st_size
    print(f"\npackage sizes: pacsguard {sizes[0] / 1e6:.1f} MB, tar|age {sizes[1] / 1e6:.1f} MB")
    ratio = _ratios(rounds, "tar c | age -r + sync", "pacsguard pack")
    print(
        f"pack throughput / tar|age throughput, on the deid --verify tree: {ratio} "
        f"(goal >= 0.8x); pre-flight (manifest + hashes listed) {preflight_s:.2f} s"
    )
    unverified = _ratios(rounds, "tar c | age -r + sync", "pack, not verified")
    print(
        f"on a tree deid did not verify, pack runs verify first: {unverified} tar|age "
        f"(the trees: deid --verify {deid_verified_s:.0f} s, deid {deid_plain_s:.0f} s, built once)"
    )
    print(
        "pacsguard pack fsyncs its volumes, unpack every file (and hashes it): the tar|age "
        "rows include the `sync FILE` / `sync -f DIR` that makes their output as durable."
    )
    print(
        f"CLI rows include starting the whole pacsguard CLI: {baseline / 1024:.0f} MB RSS and "
        f"{baseline_s:.1f} s for `pacsguard --help`; API rows import pacsguard.pack only."
    )
    if not args.keep:
        _remove(work, STALE)


def _remove(work: Path, names: tuple[str, ...]) -> None:
    for stale in names:
        target = work / stale
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)


def _median_row(runs: list[Row]) -> Row:
    """The run of median wall time (the faster middle one for an even count)."""
    ordered = sorted(runs, key=lambda row: row.seconds)
    return ordered[(len(ordered) - 1) // 2]


def _ratios(rounds: list[dict[str, Row]], reference: str, contender: str) -> str:
    """Throughput ratio contender / reference, round by round in the same round: the median
    and, for more than one round, each round's figure."""
    each = [measured[reference].seconds / measured[contender].seconds for measured in rounds]
    median = statistics.median(each)
    if len(each) == 1:
        return f"{median:.2f}x"
    return f"{median:.2f}x median of {len(each)} rounds ({', '.join(f'{r:.2f}' for r in each)})"


if __name__ == "__main__":
    main()
