"""Benchmark: `pacsguard deid` against other de-identifiers on one CT corpus.

    .venv/bin/python bench/deid_bench.py --files 2000 --workdir bench/out/deid-work

Generates (once, reused) FILES 512x512 16-bit CT slices with the sample generator, then
times, in one run on that corpus, each tool writing into a fresh output folder:
`pacsguard deid` (every core, plus -j 1 / -j 2 rows for scaling), dicognito, pydicom/deid,
dicom-anonymizer, GDCM's gdcmanon (PS3.15 E.1 basic profile), a plain pydicom read and write
of every file, and `cp -r`. Each run is a subprocess under `/usr/bin/time -v` (wall time,
CPU time, peak RSS of the largest process); a sampler adds the peak PSS of the whole process
tree (pacsguard forks workers). Before each run the page cache is dropped when
/proc/sys/vm/drop_caches is writable (every tool reads the corpus from disk), otherwise the
corpus is read once by an untimed `cp -r` and every tool reads it from the page cache.

With `--planted 100,10,0` (BENCH_PLANTED), the corpus is also run as real exports look: in
that share of the files, the patient's own name, ID and birth date are planted where exports
carry them — study and series descriptions, a code meaning, a private block, image and study
comments, the requested procedure — and each such corpus is benchmarked in turn (the plain
corpus first, as before). pacsguard's rows say which share of files took which path
(byte-level, header-only, full read), from its local manifest.

Every output is checked: the number of DICOM files written (expected: FILES), and a sample
of them for identifiers of the input (patient name, IDs, dates, UIDs, institution...) left
in the header. The competitors run from their own venv (bench/.venv, see run.sh).
Results: a table on stdout, OUT/deid.json and OUT/deid.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACSGUARD = ROOT / ".venv" / "bin" / "pacsguard"
BENCH_PYTHON = ROOT / "bench" / ".venv" / "bin" / "python"
NATIVE_TOOLS = {"cp", "gdcmanon", "pacsguard"}
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
LEAK_SAMPLE = 40

# Drivers run by the bench venv's python: argv = [input, output].
PYDICOM_ROUND_TRIP = """import sys
from pathlib import Path
import pydicom
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for path in sorted(src.rglob("*.dcm")):
    ds = pydicom.dcmread(path)
    target = dst / path.relative_to(src)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)
"""
# pydicom/deid: its CLI (`deid identifiers --action all`) writes every file to one flat folder
# under its base name and refuses to overwrite, so a tree of IM00001.dcm... loses files.
# This driver does what the CLI does (get_identifiers, then replace_identifiers with the
# default recipe) file by file and keeps the relative path.
DEID_DRIVER = """import sys
from pathlib import Path
from deid.dicom import get_identifiers, replace_identifiers
from deid.logger import bot
bot.level = 0
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for path in sorted(src.rglob("*.dcm")):
    ids = get_identifiers([str(path)])
    ds = replace_identifiers([str(path)], ids=ids, save=False)[0]
    target = dst / path.relative_to(src)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)
"""
# dicom-anonymizer: its CLI lists only the files directly inside the input folder (given the
# corpus root it writes nothing), so the driver calls the CLI's own anonymize() once per
# folder, in one process, with the CLI's defaults (no extra rules, private tags deleted).
DICOM_ANONYMIZER_DRIVER = """import sys
from pathlib import Path
from dicomanonymizer.anonymizer import anonymize
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for folder in sorted({p.parent for p in src.rglob("*.dcm")}):
    out = dst / folder.relative_to(src)
    out.mkdir(parents=True, exist_ok=True)
    anonymize(str(folder), str(out), {}, True)
"""

# Keywords whose input values must not survive de-identification, by kind.
IDENTIFYING = {
    "PatientName": "patient-name",
    "OtherPatientNames": "patient-name",
    "PatientBirthName": "patient-name",
    "PatientMotherBirthName": "patient-name",
    "PatientID": "patient-id",
    "OtherPatientIDs": "patient-id",
    "PatientBirthDate": "birth-date",
    "PatientAddress": "address",
    "PatientTelephoneNumbers": "phone",
    "AccessionNumber": "accession",
    "StudyDate": "date",
    "SeriesDate": "date",
    "AcquisitionDate": "date",
    "ContentDate": "date",
    "InstitutionName": "institution",
    "InstitutionAddress": "institution",
    "ReferringPhysicianName": "staff",
    "PerformingPhysicianName": "staff",
    "NameOfPhysiciansReadingStudy": "staff",
    "OperatorsName": "staff",
    "StationName": "device",
    "DeviceSerialNumber": "device",
    "StudyInstanceUID": "uid",
    "SeriesInstanceUID": "uid",
    "FrameOfReferenceUID": "uid",
}
MIN_NEEDLE = 4


@dataclass
class Tool:
    name: str
    argv: list[str]
    output: Path
    note: str = ""
    extra_outputs: list[Path] = field(default_factory=list)  # state folders to clear


@dataclass
class Result:
    name: str
    round: int
    ok: bool
    exit_code: int
    wall_s: float
    cpu_s: float
    sync_s: float
    max_rss_mb: float
    tree_pss_mb: float
    outputs: int
    expected: int
    leaks: int
    sampled: int
    leak_kinds: dict[str, int]
    files_per_s: float = 0.0
    mb_per_s: float = 0.0
    vs_cp: float | None = None
    vs_gdcmanon: float | None = None
    durable_vs_gdcmanon: float | None = None  # (wall + sync) / gdcmanon's (wall + sync)
    note: str = ""
    error: str = ""
    corpus: str = "plain"
    paths: dict[str, int] = field(default_factory=dict)


# -- corpus ------------------------------------------------------------------------------


def build_corpus(work: Path, files: int, rows: int, cols: int) -> Path:
    """FILES CT slices under WORK/corpus-FILES (reused when the marker matches)."""
    corpus = work / f"corpus-{files}-{rows}x{cols}"
    marker = work / f".{corpus.name}.done"
    if marker.exists() and corpus.is_dir():
        return corpus
    sys.path.insert(0, str(ROOT / "src"))
    from pacsguard.sample import generate_ct_corpus

    shutil.rmtree(corpus, ignore_errors=True)
    start = time.perf_counter()
    print(f"corpus: generating {files} slices {rows}x{cols} in {corpus} ...", flush=True)
    generate_ct_corpus(corpus, files=files, rows=rows, cols=cols)
    # corpus.json is not DICOM: keep the input tree pure DICOM, every tool sees the same files.
    info = corpus / "corpus.json"
    if info.exists():
        info.replace(work / f"{corpus.name}.json")
    print(f"corpus: {time.perf_counter() - start:.1f} s", flush=True)
    marker.write_text(str(files))
    return corpus


def plant_corpus(corpus: Path, share: int) -> Path:
    """A copy of ``corpus`` where ``share`` % of the files (evenly spread) carry their
    patient's identity in free text, a code meaning and a private block (reused when done)."""
    target = corpus.with_name(f"{corpus.name}-planted{share}")
    marker = corpus.with_name(f".{target.name}.done")
    if marker.exists() and target.is_dir():
        return target
    import pydicom

    sys.path.insert(0, str(ROOT / "src"))
    from pacsguard.sample.corpus import plant_identity

    shutil.rmtree(target, ignore_errors=True)
    files = dicom_files(corpus)
    every = 0 if share <= 0 else max(1, round(100 / share))
    for index, path in enumerate(files):
        dest = target / path.relative_to(corpus)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not every or index % every:
            shutil.copy(path, dest)
            continue
        ds = pydicom.dcmread(path)
        plant_identity(ds)
        ds.save_as(dest, enforce_file_format=True)
    marker.write_text(str(share))
    return target


def pacsguard_paths(output: Path) -> dict[str, int]:
    """Which way pacsguard's files went (its local manifest), for the table."""
    manifest = output.with_name(output.name + ".pacsguard") / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return {}
    paths = data.get("paths") if isinstance(data, dict) else None
    return {str(k): int(v) for k, v in paths.items()} if isinstance(paths, dict) else {}


def dicom_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` that has the DICM magic (preamble + 'DICM')."""
    found = []
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(dirpath) / name
            try:
                with path.open("rb") as handle:
                    handle.seek(128)
                    if handle.read(4) == b"DICM":
                        found.append(path)
            except OSError:
                continue
    return sorted(found)


# -- the leak check ----------------------------------------------------------------------


def _walk(ds: object) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for elem in ds:  # type: ignore[attr-defined]
        if elem.VR == "SQ":
            for item in elem.value or []:
                found.extend(_walk(item))
        elif elem.keyword in IDENTIFYING and elem.value not in (None, ""):
            found.append((elem.keyword, elem.value))
    return found


def _needles(keyword: str, value: object) -> list[str]:
    from pydicom.multival import MultiValue

    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    out: list[str] = []
    for item in values:
        text = str(item).strip()
        if not text:
            continue
        kind = IDENTIFYING[keyword]
        if kind in ("patient-name", "staff"):
            family = text.split("^")[0].strip()
            out.extend([text, family])
        elif kind in ("birth-date", "date") and re.fullmatch(r"\d{8}", text):
            out.extend([text, f"{text[:4]}-{text[4:6]}-{text[6:]}"])
        else:
            out.append(text)
    return [n for n in out if len(n) >= MIN_NEEDLE]


def collect_identifiers(corpus: Path) -> dict[str, str]:
    """Identifying strings of the input (one file per series, sequences and private too)."""
    import pydicom

    needles: dict[str, str] = {}
    seen: set[Path] = set()
    for path in sorted(corpus.rglob("*.dcm")):
        if path.parent in seen:
            continue
        seen.add(path.parent)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword, value in _walk(ds):
            for needle in _needles(keyword, value):
                needles.setdefault(needle.lower(), IDENTIFYING[keyword])
    return needles


def header_bytes(path: Path) -> bytes:
    import pydicom

    with path.open("rb") as handle:
        try:
            pydicom.dcmread(handle, stop_before_pixels=True, force=True)
            end = handle.tell()
        except Exception:
            end = 1 << 16
        handle.seek(0)
        return handle.read(end)


def leak_check(outputs: list[Path], needles: dict[str, str]) -> tuple[int, int, Counter[str]]:
    """(files with an input identifier in the header, files sampled, kinds found)."""
    if not outputs:
        return 0, 0, Counter()
    step = max(1, len(outputs) // LEAK_SAMPLE)
    sample = outputs[::step][:LEAK_SAMPLE]
    pattern = re.compile(
        b"|".join(re.escape(n.encode("utf-8")) for n in sorted(needles, key=len, reverse=True))
    )
    leaking, kinds = 0, Counter[str]()
    for path in sample:
        found = {
            needles[m.group(0).decode("utf-8")]
            for m in pattern.finditer(header_bytes(path).lower())
        }
        leaking += bool(found)
        kinds.update(found)
    return leaking, len(sample), kinds


# -- running -----------------------------------------------------------------------------


def _parents() -> dict[int, list[int]]:
    """Children of every process, from one pass over /proc/*/stat."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    return kids


def _tree_pss_kb(root: int) -> int:
    kids = _parents()
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
        todo.extend(kids.get(pid, []))
    return total


class TreeSampler(threading.Thread):
    """Peak PSS of a process tree (sum over processes, shared pages counted once)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak_kb = pid, interval, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.peak_kb = max(self.peak_kb, _tree_pss_kb(self.pid))
            self.stopped.wait(self.interval)


def drop_caches(mode: str) -> None:
    if mode == "drop":
        subprocess.run(["sync"], check=True)
        DROP_CACHES.write_text("3\n")


def cache_mode(requested: str) -> str:
    if requested != "auto":
        return requested
    try:
        subprocess.run(["sync"], check=True)
        DROP_CACHES.write_text("3\n")
    except OSError:
        return "warm"
    return "drop"


def parse_time_v(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        key, _, value = line.strip().rpartition(": ")
        if key == "User time (seconds)":
            values["user"] = float(value)
        elif key == "System time (seconds)":
            values["sys"] = float(value)
        elif key == "Maximum resident set size (kbytes)":
            values["rss_kb"] = float(value)
        elif key == "Exit status":
            values["exit"] = float(value)
    return values


def clear(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_tool(
    tool: Tool, round_no: int, mode: str, expected: int, needles: dict[str, str], logs: Path
) -> Result:
    clear([tool.output, *tool.extra_outputs])
    drop_caches(mode)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", tool.name)
    report, log = logs / f"{slug}.r{round_no}.time", logs / f"{slug}.r{round_no}.log"
    print(f"  {tool.name} ...", end="", flush=True)
    with log.open("wb") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(
            ["/usr/bin/time", "-v", "-o", str(report), *tool.argv],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        code = proc.wait()
        wall = time.perf_counter() - start
        sampler.stopped.set()
        sampler.join()
    start = time.perf_counter()
    subprocess.run(["sync"], check=True)
    sync_s = time.perf_counter() - start
    timing = parse_time_v(report.read_text(errors="replace")) if report.exists() else {}
    outputs = dicom_files(tool.output) if tool.output.exists() else []
    leaks, sampled, kinds = leak_check(outputs, needles)
    errors = []
    if code != 0:
        errors.append(f"exit code {code}")
    if len(outputs) != expected:
        errors.append(f"{len(outputs)} DICOM outputs, expected {expected}")
    if errors:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        errors.append("log: " + " | ".join(line[:200] for line in tail))
    result = Result(
        name=tool.name,
        round=round_no,
        ok=not errors,
        exit_code=code,
        wall_s=wall,
        cpu_s=timing.get("user", 0.0) + timing.get("sys", 0.0),
        sync_s=sync_s,
        max_rss_mb=timing.get("rss_kb", 0.0) / 1024,
        tree_pss_mb=sampler.peak_kb / 1024,
        outputs=len(outputs),
        expected=expected,
        leaks=leaks,
        sampled=sampled,
        leak_kinds=dict(sorted(kinds.items())),
        note=tool.note,
        error="; ".join(errors),
        paths=pacsguard_paths(tool.output) if tool.name.startswith("pacsguard") else {},
    )
    status = "ok" if result.ok else "FAILED: " + result.error
    print(f" {wall:.1f} s, {len(outputs)} files, {status}", flush=True)
    return result


def make_tools(
    corpus: Path, outs: Path, key: Path, cert: Path, scaling: list[int], tools: set[str] | None
) -> list[Tool]:
    bench_py = str(BENCH_PYTHON)
    pacsguard = str(PACSGUARD)

    def deid(name: str, extra: list[str]) -> Tool:
        out = outs / name.replace(" ", "_")
        state = out.with_name(out.name + ".pacsguard")
        argv = [pacsguard, "deid", str(corpus), str(out), "--key", str(key), *extra]
        return Tool(name, argv, out, extra_outputs=[state])

    all_tools = [
        Tool("cp -r", ["cp", "-r", str(corpus), str(outs / "cp")], outs / "cp"),
        Tool(
            "gdcmanon",
            [
                "gdcmanon",
                "-e",
                "-c",
                str(cert),
                "-i",
                str(corpus),
                "-o",
                str(outs / "gdcmanon"),
                "--recursive",
                "--continue",
            ],
            outs / "gdcmanon",
            note="GDCM basic profile (PS3.15 E.1), -e with a throwaway certificate",
        ),
        deid("pacsguard", []),
        *(deid(f"pacsguard -j {n}", ["-j", str(n)]) for n in scaling),
        Tool(
            "pydicom round trip",
            [bench_py, "-c", PYDICOM_ROUND_TRIP, str(corpus), str(outs / "pydicom")],
            outs / "pydicom",
            note="dcmread + save_as of every file, one process",
        ),
        Tool(
            "dicognito",
            [bench_py, "-m", "dicognito", "--quiet", "-o", str(outs / "dicognito"), str(corpus)],
            outs / "dicognito",
            note="python -m dicognito -o OUT (its console script fails in 0.19.0)",
        ),
        Tool(
            "dicom-anonymizer",
            [bench_py, "-c", DICOM_ANONYMIZER_DRIVER, str(corpus), str(outs / "dicom-anonymizer")],
            outs / "dicom-anonymizer",
            note="anonymize() per folder (the CLI is not recursive)",
        ),
        Tool(
            "pydicom/deid",
            [bench_py, "-c", DEID_DRIVER, str(corpus), str(outs / "deid")],
            outs / "deid",
            note="get_identifiers + replace_identifiers, default recipe, per file",
        ),
    ]
    if tools:
        all_tools = [t for t in all_tools if t.name in tools or t.name.split()[0] in tools]
    return all_tools


def finish(results: list[Result], files: int, total_mb: float) -> None:
    """Throughput and the ratios to cp -r and gdcmanon of the same round."""
    for r in results:
        r.files_per_s = files / r.wall_s if r.wall_s else 0.0
        r.mb_per_s = total_mb / r.wall_s if r.wall_s else 0.0
        same = {x.name: x for x in results if x.round == r.round and x.corpus == r.corpus}
        if "cp -r" in same:
            r.vs_cp = r.wall_s / same["cp -r"].wall_s
        if "gdcmanon" in same:
            r.vs_gdcmanon = r.wall_s / same["gdcmanon"].wall_s
            r.durable_vs_gdcmanon = _durable(r) / _durable(same["gdcmanon"])


def _durable(r: Result) -> float:
    """Seconds until the output is on disk: the tool, then the sync after it."""
    return r.wall_s + r.sync_s


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def table(results: list[Result]) -> list[str]:
    head = (
        "tool",
        "files/s",
        "MB/s",
        "wall s",
        "CPU s",
        "+sync s",
        "peak RSS MB",
        "tree PSS MB",
        "x cp",
        "x gdcmanon",
        "durable x gdcmanon",
        "outputs",
        "leaks (sample)",
        "paths (pacsguard)",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        kinds = ",".join(r.leak_kinds)
        leak = f"{r.leaks}/{r.sampled}" + (f" ({kinds})" if kinds else "")
        outputs = f"{r.outputs}/{r.expected}" + ("" if r.ok else " FAILED")
        cells = (
            r.name,
            f"{r.files_per_s:.0f}",
            f"{r.mb_per_s:.0f}",
            f"{r.wall_s:.1f}",
            f"{r.cpu_s:.1f}",
            f"{r.sync_s:.1f}",
            f"{r.max_rss_mb:.0f}",
            f"{r.tree_pss_mb:.0f}",
            _ratio(r.vs_cp),
            _ratio(r.vs_gdcmanon),
            _ratio(r.durable_vs_gdcmanon),
            outputs,
            leak,
            _shares(r.paths),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _shares(paths: dict[str, int]) -> str:
    total = sum(paths.values())
    if not total:
        return ""
    return ", ".join(f"{way} {n / total:.0%}" for way, n in sorted(paths.items()))


def median_rows(results: list[Result]) -> list[Result]:
    """One row per tool: its run of median wall time (the lower median for an even count),
    with the ratios taken between these rows."""
    rows = []
    for corpus, name in dict.fromkeys((r.corpus, r.name) for r in results):
        mine = [r for r in results if r.name == name and r.corpus == corpus]
        mine.sort(key=lambda r: r.wall_s)
        rows.append(replace(mine[(len(mine) - 1) // 2]))
    for r in rows:
        by_name = {x.name: x for x in rows if x.corpus == r.corpus}
        if "cp -r" in by_name:
            r.vs_cp = r.wall_s / by_name["cp -r"].wall_s
        if "gdcmanon" in by_name:
            r.vs_gdcmanon = r.wall_s / by_name["gdcmanon"].wall_s
            r.durable_vs_gdcmanon = _durable(r) / _durable(by_name["gdcmanon"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env = os.environ.get
    parser.add_argument("--files", type=int, default=int(env("BENCH_FILES", "2000")))
    parser.add_argument("--rows", type=int, default=int(env("BENCH_ROWS", "512")))
    parser.add_argument("--cols", type=int, default=int(env("BENCH_COLS", "512")))
    parser.add_argument("--rounds", type=int, default=int(env("BENCH_ROUNDS", "1")))
    parser.add_argument(
        "--scaling",
        default=env("BENCH_SCALING", "1,2"),
        help="comma-separated -j values for extra pacsguard rows ('' for none)",
    )
    parser.add_argument(
        "--cache",
        choices=("auto", "drop", "warm"),
        default=env("BENCH_CACHE", "auto"),
        help="drop the page cache before each run (root), or read the corpus warm",
    )
    parser.add_argument(
        "--tools",
        default=env("BENCH_TOOLS", ""),
        help="comma-separated subset, e.g. 'cp,gdcmanon,pacsguard' (default: all)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(env("BENCH_WORKDIR", str(ROOT / "bench" / "out" / "deid-work"))),
    )
    parser.add_argument(
        "--out", type=Path, default=Path(env("BENCH_OUT", str(ROOT / "bench" / "out")))
    )
    parser.add_argument("--keep", action="store_true", help="keep every tool's output")
    parser.add_argument(
        "--planted",
        default=env("BENCH_PLANTED", ""),
        help="comma-separated shares (%%) of files with identity planted in free text, code "
        "meanings and private blocks, each benchmarked after the plain corpus, e.g. 100,10,0",
    )
    args = parser.parse_args()

    needed = ["/usr/bin/time", "gdcmanon", "openssl", "cp", "sync", str(PACSGUARD)]
    missing = [tool for tool in needed if not shutil.which(tool)]
    wanted = {t.strip() for t in args.tools.split(",") if t.strip()} or None
    # only the Python competitors run from the bench venv
    if not BENCH_PYTHON.exists() and (wanted is None or wanted - NATIVE_TOOLS):
        missing.append(f"{BENCH_PYTHON} (run bench/run.sh)")
    if missing:
        raise SystemExit("deid_bench needs: " + ", ".join(missing))

    work: Path = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    corpus = build_corpus(work, args.files, args.rows, args.cols)
    inputs = dicom_files(corpus)
    files = len(inputs)
    total_mb = sum(p.stat().st_size for p in inputs) / 1e6
    print(f"corpus: {files} DICOM files, {total_mb:.0f} MB", flush=True)

    key = work / "bench.key"
    if not key.exists():
        subprocess.run(
            [str(PACSGUARD), "key", "new", str(key)], check=True, stdout=subprocess.DEVNULL
        )
    cert = work / "cert.pem"
    if not cert.exists():
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(work / "key.pem"),
                "-out",
                str(cert),
                "-subj",
                "/CN=bench",
                "-days",
                "1",
            ],
            check=True,
            capture_output=True,
        )
    needles = collect_identifiers(corpus)
    print(f"leak check: {len(needles)} identifying strings from the input", flush=True)

    mode = cache_mode(args.cache)
    outs = work / "outputs"
    logs = args.out / "deid-logs"
    outs.mkdir(exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    if mode == "warm":
        with tempfile.TemporaryDirectory(dir=work) as scratch:
            subprocess.run(["cp", "-r", str(corpus), str(Path(scratch) / "warm")], check=True)
    print(f"page cache: {'dropped before each run' if mode == 'drop' else 'warm (read once)'}")

    scaling = [int(n) for n in args.scaling.split(",") if n.strip()]
    shares = [int(p) for p in args.planted.split(",") if p.strip()]
    corpora = [("plain", corpus, needles)]
    for share in shares:
        planted = plant_corpus(corpus, share)
        corpora.append((f"planted {share}%", planted, collect_identifiers(planted)))
    results: list[Result] = []
    for label, source, wanted_needles in corpora:
        tools = make_tools(source, outs, key, cert, scaling, wanted)
        for round_no in range(1, args.rounds + 1):
            print(f"corpus {label}, round {round_no}/{args.rounds}", flush=True)
            for tool in tools:
                result = run_tool(tool, round_no, mode, files, wanted_needles, logs)
                result.corpus = label
                results.append(result)
                if not args.keep:
                    clear([tool.output, *tool.extra_outputs])
    finish(results, files, total_mb)

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    load = os.getloadavg()
    header = [
        f"# pacsguard deid benchmark: {files} CT slices {args.rows}x{args.cols} 16-bit, "
        f"{total_mb:.0f} MB",
        "",
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"load average at the end {load[0]:.1f}; page cache "
        f"{'dropped before each run' if mode == 'drop' else 'warm (one untimed cp -r)'}; "
        f"{args.rounds} round(s). MB = 10^6 bytes of input. 'x cp' and 'x gdcmanon' are wall-time "
        "ratios (lower is faster). '+sync s': the `sync` right after the tool "
        "(pacsguard fsyncs each file itself). Leaks: sampled outputs whose header still "
        "holds an identifying string of the input.",
        "",
    ]
    lines = list(header)
    summary = median_rows(results)
    if args.rounds > 1:
        lines += [
            "## Median over rounds",
            "",
            "Each tool's run of median wall time (for an even number of rounds, the faster "
            "of the two middle ones); ratios between these rows.",
            "",
            *table(summary),
            "",
        ]
        for round_no in range(1, args.rounds + 1):
            mine = [r for r in results if r.round == round_no]
            lines += [f"## Round {round_no}", "", *table(mine), ""]
    else:
        for label, _, _ in corpora:
            title = "plain corpus" if label == "plain" else f"corpus with identity {label}"
            lines += [f"## {title}", "", *table([r for r in summary if r.corpus == label]), ""]
    lines += ["## How each tool ran", ""]
    for tool in tools:
        shown = " ".join(a if "\n" not in a else "<driver>" for a in tool.argv)
        lines.append(f"- **{tool.name}**: `{shown}`" + (f" — {tool.note}" if tool.note else ""))
    failures = [r for r in results if not r.ok]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- {r.name} (round {r.round}): {r.error}" for r in failures]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    (args.out / "deid.md").write_text(text)
    payload = {
        "files": files,
        "megabytes": total_mb,
        "rows": args.rows,
        "cols": args.cols,
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "cache": mode,
        "rounds": args.rounds,
        "loadavg_end": load,
        "median_wall_s": {
            name: statistics.median(r.wall_s for r in results if r.name == name)
            for name in dict.fromkeys(r.name for r in results)
        },
        "results": [asdict(r) for r in results],
        "invocations": {t.name: {"argv": t.argv, "note": t.note} for t in tools},
    }
    (args.out / "deid.json").write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.out / 'deid.md'} and {args.out / 'deid.json'}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
