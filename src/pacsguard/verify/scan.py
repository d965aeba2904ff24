"""Verify a folder (or a file, or a zip archive) of DICOM outputs, local or an fsspec URL."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from pacsguard.core.forking import fork_pool, frozen_heap
from pacsguard.core.io import InputItem, iter_inputs
from pacsguard.core.manifest import DEID_MANIFEST_NAME
from pacsguard.core.names import load_lexicons
from pacsguard.core.pydicomquiet import quiet_pydicom
from pacsguard.verify.check import inspect_dataset
from pacsguard.verify.elements import MEMO_ENTRIES, ElementChecker, VerdictMemo
from pacsguard.verify.evidence import TreeEvidence
from pacsguard.verify.findings import Finding, VerifyReport
from pacsguard.verify.header import RawHeader, read_raw
from pacsguard.verify.known import KnownValues
from pacsguard.verify.others import (
    MAX_TEXT,
    as_text,
    is_deid_account,
    name_findings,
    other_file_findings,
)
from pacsguard.verify.policy import Policy
from pacsguard.verify.risk import at_risk

HEADER_GROUPS = (0x0002, 0x0008, 0x0010, 0x0020, 0x0028)


quiet_pydicom()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No warning from a file's reading (a library's message may quote a value), and pydicom's
    log quiet even if a caller turned it back on (``quiet_pydicom``: once per process)."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    if level < logging.CRITICAL:  # setting a level clears every logger's cache: not per file
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if level < logging.CRITICAL:
            logger.setLevel(level)


class UnreadableError(Exception):
    """A DICOM file (DICM prefix) that does not parse into an instance."""


Root = Path | str  # a local path, or an fsspec URL (core/remote.py, pacsguard[cloud])


def deid_options(root: Root) -> list[str]:
    """The options an output tree was made with, from its manifest (none when absent)."""
    try:
        if isinstance(root, str):
            text = _remote_manifest(root)
        elif root.is_file() and zipfile.is_zipfile(root):  # the tree zipped: its own manifest
            with zipfile.ZipFile(root) as archive:
                names = [n for n in archive.namelist() if n.lstrip("./") == DEID_MANIFEST_NAME]
                text = archive.read(names[0]).decode("utf-8") if names else None
        else:
            manifest = root / DEID_MANIFEST_NAME
            text = manifest.read_text(encoding="utf-8") if manifest.is_file() else None
        if text is None:
            return []
        options = json.loads(text).get("profile", {}).get("options", [])
    except (OSError, ValueError, AttributeError, zipfile.BadZipFile):
        return []
    return [str(o) for o in options] if isinstance(options, list) else []


def _remote_manifest(url: str) -> str | None:
    from pacsguard.core import remote

    folder = remote.RemoteFolder.parse(url)
    if folder.is_file():
        return None
    found = folder.join(DEID_MANIFEST_NAME)
    return remote.read_bytes(found).decode("utf-8") if remote.size(found) is not None else None


def read_dicom(item: InputItem, data: bytes | None = None) -> Dataset | None:
    """The dataset, or None when the file is not DICOM; raises when DICOM but unreadable.
    ``data``: its bytes, when already read."""
    data = item.read_bytes() if data is None else data
    if data[128:132] == b"DICM":
        ds = pydicom.dcmread(io.BytesIO(data))  # a broken element raises when it is checked
        if not str(ds.get("SOPInstanceUID", "") or "").strip():
            raise UnreadableError("no SOP Instance UID")
        return ds
    if item.label.endswith(DEID_MANIFEST_NAME) or len(data) < 8:
        return None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        tags = [int(elem.tag) for elem in ds]
    except (InvalidDicomError, ValueError, EOFError, KeyError, OSError):
        return None
    except Exception:  # a guess without a preamble that failed: text is read as text
        if as_text(data) is not None:
            return None
        raise
    # A forced read of a non-DICOM file yields few, odd tags: demand real header groups.
    if sum((t >> 16) in HEADER_GROUPS for t in tags) < 3:
        return None
    return ds


def label_base(root: Root) -> Root:
    """What labels are relative to: ``root`` resolved, or its folder for a file (a URL:
    itself)."""
    if isinstance(root, str):
        return root.rstrip("/")
    return root.resolve() if root.is_dir() else root.resolve().parent


def relative_label(
    item: InputItem, root: Root, base: Root | None = None, folders: dict[str, str] | None = None
) -> str:
    """``item``'s label relative to ``root`` (``base``: ``label_base(root)``, if known;
    ``folders``: the folders resolved so far in this run, by their path as labelled)."""
    base = label_base(root) if base is None else base
    if item.remote is not None:
        prefix = f"{base}/"
        url = item.remote
        return url[len(prefix) :] if url.startswith(prefix) else PurePosixPath(url).name
    assert isinstance(base, Path)
    # strings, not Paths: a label is made for every file, and pathlib's parsing took 26 us of
    # it (8 us now, of ~340 for a header's check); the result is that of
    # ``Path(label).resolve().relative_to(base).as_posix()`` (tests/test_verify_labels.py)
    text, bang, member = item.label.partition("!")
    resolved, inside = _resolved(text, folders), str(base)
    inside = inside if inside.endswith(os.sep) else inside + os.sep
    if resolved.startswith(inside):
        rel = resolved[len(inside) :]
    elif resolved == str(base):
        rel = "."
    else:
        rel = os.path.basename(text)  # noqa: PTH119 - hot path
    return f"{rel}!{member}" if bang else rel


def _resolved(label: str, folders: dict[str, str] | None) -> str:
    """``Path(label).resolve()`` as text: a file that is not a symbolic link resolves to its
    folder's resolution and its name, and the files of a folder share that resolution."""
    if folders is None or os.path.islink(label):  # noqa: PTH114 - hot path
        return os.path.realpath(label)
    parent, name = os.path.split(label)  # not normpath: "link/.." is the link's target's parent
    found = folders.get(parent)
    if found is None:
        if len(folders) >= MEMO_ENTRIES:
            folders.clear()
        found = folders[parent] = os.path.realpath(parent)
    return os.path.join(found, name)  # noqa: PTH118 - hot path


Progress = Callable[[int, int], None]  # (files done, files in all)
BATCH = 16  # files per task: a worker gets batches, not one file at a time
# Files are checked in this process until the files left would take POOL_WORTH_S more at
# the pace of this process (measured over PROBE files after the first, which loads the
# lexicons), or until SERIAL_S has gone: a tree that takes less never pays for starting
# workers (most headers take well under a millisecond); the rest of a longer one (many
# files, or pixels read by OCR) is shared among the workers.
PROBE = 16
POOL_WORTH_S = 0.1  # workers start and warm up in ~40 ms: two of them win from ~80 ms on
SERIAL_S = 0.5


@dataclass
class ItemResult:
    """What one input gave: its name, whether it was DICOM, its findings and pictures, and
    the identity of its group (raw values: kept in memory, never reported)."""

    name: str
    dicom: bool
    findings: list[Finding]
    groups: tuple[str, str, str] = ("", "", "")
    ocr_read: bool = False
    thumbnails: dict[int, bytes] = field(default_factory=dict)
    raw: bool = False  # read as bytes (header.py), not by pydicom


@dataclass(frozen=True)
class Job:
    root: Root
    known: KnownValues | None
    options: tuple[str, ...]
    ocr: bool
    ner: bool
    run: str = ""  # names the run: the verdict memo of one run serves no other
    raw: bool = True  # headers read as bytes where that reading is exact (else pydicom)


class _RunState:
    """What a process keeps for the run it works for: the policy, the verdict memo, the
    decisions to read pixels, and the folder labels are relative to."""

    def __init__(self, job: Job) -> None:
        self.run = job.run
        self.base = label_base(job.root)
        self.policy = Policy.from_options(job.options)
        self.memo = VerdictMemo()
        self.risks: dict[tuple[object, ...], bool] = {}  # risk_key -> at risk
        self.folders: dict[str, str] = {}  # labels' folders, resolved (``relative_label``)

    def at_risk(self, header: RawHeader) -> bool:
        key = header.risk_key()
        if key is None:
            return True
        found = self.risks.get(key)
        if found is None:
            if len(self.risks) >= MEMO_ENTRIES:
                self.risks.clear()
            found = self.risks[key] = at_risk(header.risk_view())
        return found


_state: _RunState | None = None


def run_state(job: Job) -> _RunState:
    """The state of ``job``'s run in this process (a job without a run shares nothing)."""
    global _state
    if not job.run:
        return _RunState(job)
    if _state is None or _state.run != job.run:
        _state = _RunState(job)
    return _state


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def verify(
    path: Root,
    *,
    mapping: Path | None = None,
    ocr: bool = True,
    options: Iterable[str] | None = None,
    strict: bool = False,
    ner: bool = True,
    progress: Progress | None = None,
    jobs: int | None = None,
    cluster: str | None = None,
) -> VerifyReport:
    """Check every DICOM file under ``path`` (a local path, or an fsspec URL such as
    ``s3://bucket/prefix`` with ``pacsguard[cloud]``) for residual identifiers.

    ``mapping``: the re-identification CSV (``kind,original,pseudonym``) whose originals must
    not reappear. ``options``: the de-identification options the output was made with; read
    from the output's ``pacsguard-deid.json`` when not given. ``strict``: review findings
    fail too. ``ner``: spaCy settles the person names the lexicon rules leave in doubt.
    ``progress(done, total)`` is called as files are done. ``jobs``: worker processes (the
    cores this process may use by default; they start, for the files left, once those would
    take this process more than a tenth of a second at its pace, or once half a second of
    checking has gone). ``cluster``: a Dask scheduler address
    (``tcp://HOST:8786``) or ``local[:N]``: the files are checked there, in batches, and the
    verdict is weighed here (``verify/cluster.py``: what travels and what never does).
    """
    known = KnownValues.from_mapping(mapping) if mapping is not None else None
    chosen = tuple(options) if options is not None else tuple(deid_options(path))
    report = VerifyReport(root=str(path), ocr=ocr, mapping_used=mapping is not None)
    report.strict = strict
    evidence = TreeEvidence()
    items = _inputs(path, report)
    job = Job(path, known, chosen, ocr, ner, run=uuid.uuid4().hex)
    workers = available_cores() if jobs is None else max(1, jobs)
    if cluster is not None:
        from pacsguard.deid.cluster import parse_address
        from pacsguard.verify.cluster import results_on_cluster

        parse_address(cluster)  # a bad address fails before any work
        results = results_on_cluster(items, job, cluster, mapping)
    else:
        results = _results(items, job, workers)
    for done, result in enumerate(results, 1):
        _account(result, report, evidence)
        if progress is not None:
            progress(done, len(items))
    report.findings = evidence.weigh(report.findings)
    report.patients = evidence.patients
    return report


def _inputs(path: Root, report: VerifyReport) -> list[InputItem]:
    """The inputs under ``path``; on a store, a zip archive (not read there) is a finding,
    never a silent gap in a clean verdict."""
    if not isinstance(path, str):
        return list(iter_inputs([path]))
    from pacsguard.core import remote

    folder = remote.RemoteFolder.parse(path)
    folder.check_input()
    base = str(label_base(path))

    def unread(url: str, reason: str) -> None:
        name = url[len(base) + 1 :] if url.startswith(f"{base}/") else PurePosixPath(url).name
        report.findings.append(Finding(name, "file", "unreadable", reason))

    return list(remote.iter_remote(folder, [], unread))


def _results(items: list[InputItem], job: Job, workers: int) -> Iterator[ItemResult]:
    done = 0
    for result in _serial_part(items, job, workers):
        yield result
        done += 1
    rest = items[done:]
    if not rest:
        return
    load_lexicons()  # read once here; the forked workers share the pages (and the memo)
    batches = [rest[i : i + BATCH] for i in range(0, len(rest), BATCH)]
    with fork_pool(workers) as pool:
        with frozen_heap():  # every worker forks at the first submit, all submitted here
            ordered = pool.map(_check_batch, batches, [job] * len(batches))
        # in order: the report lists files as the tree does, whatever the workers' pace
        for results in ordered:
            yield from results


def _serial_part(items: list[InputItem], job: Job, workers: int) -> Iterator[ItemResult]:
    """The first files, checked here until the rest is worth the workers (all of them with
    one worker)."""
    start = time.perf_counter()
    paced = start  # when the first file was done: the pace is measured from there
    for done, item in enumerate(items):
        if workers > 1 and done:
            now = time.perf_counter()
            if now - start >= SERIAL_S:
                return
            if done > PROBE and (now - paced) / (done - 1) * (len(items) - done) > POOL_WORTH_S:
                return
        yield check_item(item, job)
        if done == 0:
            paced = time.perf_counter()


def _check_batch(items: list[InputItem], job: Job) -> list[ItemResult]:
    return [check_item(item, job) for item in items]


def check_item(item: InputItem, job: Job) -> ItemResult:
    """One input checked, its name too: never raises (a file that cannot be read is a
    finding)."""
    state = run_state(job)
    name = relative_label(item, job.root, state.base, state.folders)
    result = _check_content(item, job, name)
    named = name_findings(name, job.known, state.policy)
    return replace(result, findings=[*result.findings, *named]) if named else result


def _check_content(item: InputItem, job: Job, name: str) -> ItemResult:
    state = run_state(job)
    data = None
    if item.member is not None or item.remote is not None:
        # one read of a zip member or an object, whichever reading decides (a plain file is
        # read in place by each, the header alone by the byte reading)
        try:
            data = item.read_bytes()
        except Exception as exc:
            finding = Finding(name, "file", "unreadable", exc.__class__.__name__)
            return ItemResult(name, True, [finding])
    if job.raw:
        result = _check_raw(item, job, name, data)
        if result is not None:
            return result
    try:
        with quiet():
            ds = read_dicom(item, data)
    except UnreadableError as exc:
        return ItemResult(name, True, [Finding(name, "file", "unreadable", str(exc))])
    except Exception as exc:  # a DICOM file we cannot parse is not proven clean
        finding = Finding(name, "file", "unreadable", exc.__class__.__name__)
        return ItemResult(name, True, [finding])
    if ds is None:
        if data is None and item.size > MAX_TEXT:  # reviewed unread, not held in memory
            return ItemResult(name, False, other_file_findings(name, None, None, state.policy))
        try:
            data = item.read_bytes() if data is None else data
        except Exception as exc:
            finding = Finding(name, "file", "unreadable", exc.__class__.__name__)
            return ItemResult(name, False, [finding])
        return ItemResult(
            name, False, other_file_findings(name, data, job.known, state.policy, job.ner)
        )
    groups = tuple(
        str(ds.get(k, "") or "").strip()
        for k in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID")
    )
    try:
        with quiet():
            checked = inspect_dataset(
                ds, known=job.known, ocr=job.ocr, options=job.options, ner=job.ner
            )
    except Exception as exc:  # a malformed value: fail closed, name the file only
        finding = Finding(name, "dataset", "unreadable", exc.__class__.__name__)
        return ItemResult(name, True, [finding], (groups[0], groups[1], groups[2]))
    return ItemResult(
        name,
        True,
        checked.findings,
        (groups[0], groups[1], groups[2]),
        checked.pixels_read,
        checked.thumbnails,
    )


def _check_raw(
    item: InputItem, job: Job, name: str, data: bytes | None = None
) -> ItemResult | None:
    """The findings from the header's bytes; None when pydicom must read the file (any
    doubt, any error: that reading then decides, as it always did)."""
    state = run_state(job)
    try:
        with quiet():
            header = read_raw(item, data)
            if job.ocr and state.at_risk(header):
                return None  # the pixels are read: pydicom reads the whole file
            groups = tuple(header.text(tag) for tag in (0x00100020, 0x0020000D, 0x0020000E))
            checker = ElementChecker(job.known, state.policy, "", ner=job.ner)
            findings = checker.check_raw(header, state.memo)
    except Exception:
        return None
    return ItemResult(name, True, findings, (groups[0], groups[1], groups[2]), raw=True)


def _account(result: ItemResult, report: VerifyReport, evidence: TreeEvidence) -> None:
    if not result.dicom:  # read as text (or reviewed): no patient group to count it under
        report.files_skipped += not is_deid_account(result.name)
        report.findings += [replace(f, file=result.name) for f in result.findings]
        return
    report.files_checked += 1
    key, patient, study, series = evidence.groups(*result.groups)
    report.ocr_checked += int(result.ocr_read)
    found = [
        replace(f, file=result.name, patient=patient, study=study, series=series)
        for f in result.findings
    ]
    evidence.note(key, found)
    report.findings += found
    for frame, png in result.thumbnails.items():
        report.thumbnails[(result.name, frame)] = png
