"""A de-identification run: every input ends as one output or one quarantined file.

Inputs are walked (files, folders, zip archives), already-journalled ones are skipped (a
re-run after a crash finishes the job), the rest go to worker processes in batches. The
main process alone writes the journal, so every outcome is recorded exactly once.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import hashlib
import io
import itertools
import json
import os
import re
import signal
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

import pydicom.config

from pacsguard import __version__
from pacsguard.core import remote
from pacsguard.core.errors import InputError, OutputError, PacsguardError
from pacsguard.core.forking import fork_pool, frozen_heap
from pacsguard.core.io import (
    InputItem,
    Prefetcher,
    atomic_write_bytes,
    die_with_parent,
    iter_inputs,
    sync_filesystems,
)
from pacsguard.core.keys import ProjectKey
from pacsguard.core.manifest import DEID_MANIFEST_NAME, Journal, Outcome, write_json_stream
from pacsguard.core.pseudonym import DEFAULT_SHIFT_RANGE, Pseudonymizer, normalise
from pacsguard.core.pydicomquiet import quiet_pydicom
from pacsguard.core.remote import RemoteFolder, is_url
from pacsguard.core.shapes import lexicon
from pacsguard.deid import fastpath, grammar, postcheck, rawpath
from pacsguard.deid.bookkeeping import bind, check_places, check_remote_places, run_settings
from pacsguard.deid.engine import (
    PatientMapping,
    Transformer,
    UncleanError,
    add_method_code,
    embedded_overlay_bits,
)
from pacsguard.deid.identity import Identity, gather, gathered_from
from pacsguard.deid.options import validate_options
from pacsguard.deid.pixels.risk import needs_pixel_cleaning, risk_reason
from pacsguard.deid.plan import Rules
from pacsguard.deid.policy import Policy, load_policy
from pacsguard.deid.profile import load_cid7050, load_iod_types, load_safe_private, load_table
from pacsguard.deid.streaming import Planner
from pacsguard.deid.text import KnownValues, identity_tags
from pacsguard.deid.walkmemo import Derived, WalkMemo

BATCH = 64  # files per worker task; one filesystem sync and one journal fsync each
IN_FLIGHT = 3  # batches in flight per worker process (``_Pool``)
RAW_FIRST_READ = 1 << 16  # most headers fit: the pixels are not read into memory
RAW_PREFIX = 1 << 20  # headers longer than this take the usual path
SAFE_COMPONENT = re.compile(r"[^A-Za-z0-9._-]")

quiet_pydicom()


@dataclass(frozen=True)
class DeidConfig:
    """What to do; every field has a safe default (the Basic Profile, all cores)."""

    options: frozenset[str] = frozenset()
    policy: Path | None = None
    strict: bool = False
    jobs: int | None = None
    state_dir: Path | None = None
    quarantine_dir: Path | str | None = None  # a str: an fsspec URL (core/remote.py)
    mapping_out: Path | None = None
    patient_map: Path | None = None
    verify: bool = False
    shift_range: tuple[int, int] = DEFAULT_SHIFT_RANGE
    repair: bool = False  # drop elements the grammar does not allow, instead of quarantining
    redo: bool = False  # reprocess every input under these settings into an existing output
    check: bool = False  # on resume, hash every output already done (not only its size)
    # Images at risk of burned-in text (``pixels.risk``): "clean" them (the default, by OCR),
    # "quarantine" them, or "keep" them as they are (an explicit choice, counted).
    burned_in: str = "clean"
    cluster: str | None = None  # "tcp://HOST:PORT" or "local[:N]" (Dask); None: local pool
    key_file: Path | None = None  # where the workers of a local cluster read the key
    batch_size: int | None = None  # files per cluster task; None: chosen (see ``cluster``)


@dataclass
class DeidReport:
    inputs: int
    output: int
    quarantine: int
    resumed: int
    duplicates: int
    output_dir: Path | RemoteFolder
    state_dir: Path
    quarantine_dir: Path | RemoteFolder
    reasons: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    skip_reasons: Counter[str] = field(default_factory=Counter)
    redone: int = 0
    pixels_cleaned: int = 0
    burned_in_kept: int = 0
    interrupted: bool = False  # stopped by Ctrl-C after the files in flight
    paths: Counter[str] = field(default_factory=Counter)  # byte-level, header-only, full read

    @property
    def ok(self) -> bool:
        return self.quarantine == 0


@dataclass
class RunFigures:
    """A run's figures as it goes, updated at each commit (read them from ``progress``):
    the bytes of the inputs done, and how many went to quarantine."""

    bytes_done: int = 0
    quarantined: int = 0


@dataclass
class ItemResult:
    outcome: Outcome
    size: int = 0
    mapping: list[tuple[str, str, str]] = field(default_factory=list)
    tmp: str | None = None  # the written output, until the committer names it
    path: str = ""  # which way the file went: byte-level, header-only or full read


@dataclass(frozen=True)
class Written:
    """An output just written by the byte-level path, still open (``fd``, read and
    write): the SHA-256 of the bytes written, and how many there were."""

    fd: int
    sha256: str
    size: int
    header: int  # bytes before the Pixel Data element: what the post-write check reads back


class OutputMismatch(PacsguardError):
    """The output file is not what was written to it (fail closed: quarantine)."""


def load_patient_map(path: Path | None) -> PatientMapping:
    """CSV with columns ``original_patient_id,pseudonym_patient_id[,pseudonym_patient_name]``."""
    if path is None:
        return PatientMapping()
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"patient mapping {path} cannot be read ({type(exc).__name__})") from None
    ids: dict[str, tuple[str, str]] = {}
    for number, row in enumerate(rows, start=2):
        original = (row.get("original_patient_id") or "").strip()
        pseudonym = (row.get("pseudonym_patient_id") or "").strip()
        if not original or not pseudonym:
            raise InputError(
                f"patient mapping {path} line {number}: needs original_patient_id and "
                "pseudonym_patient_id"
            )
        if len(pseudonym) > 64:
            raise InputError(f"patient mapping {path} line {number}: pseudonym over 64 chars")
        name = (row.get("pseudonym_patient_name") or pseudonym).strip()
        ids[normalise(original)] = (pseudonym, name)
    return PatientMapping(ids)


class Worker:
    """Per-process state: the transformer is built once, then fed many files.

    Each file is read -> gated -> planned -> written -> checked: the strict grammar decides
    whether its bytes are trusted (``grammar``), its identity is gathered from every element
    that carries it (``identity``), one of the engines writes it under a temporary name, and
    the written header is searched again for that identity (``postcheck``) before the
    result is handed to the committer, which alone gives it its final name."""

    def __init__(
        self, key: bytes, config: DeidConfig, policy: Policy, output: Path, quarantine: Path
    ) -> None:
        options = validate_options(config.options)
        self.options, self.clean_pixels = options, "clean-pixel-data" in options
        self.raw_ok = not config.verify and not self.clean_pixels
        self.institution = "retain-institution-identity" not in options
        if config.burned_in not in BURNED_IN:
            raise InputError(f"burned_in must be one of {', '.join(BURNED_IN)}")
        self.cleaning = self.clean_pixels or config.burned_in == "clean"
        rules = Rules(options=options, policy=policy, strict=config.strict)
        pseudonymizer = Pseudonymizer(ProjectKey(key), config.shift_range)
        self.transformer = Transformer(rules, pseudonymizer, load_patient_map(config.patient_map))
        self.output, self.quarantine_dir, self.config = output, quarantine, config
        self._folders: set[str] = set()
        self._buffer: bytearray | None = None  # the pixels' way through (copy_hashed)
        # the last clean walks of inputs and of outputs: a series' next slice is recognised,
        # not walked again, and its identity and layout carried (``walkmemo``: the walk's
        # own verdicts)
        self.inputs, self.outputs = WalkMemo(), WalkMemo()
        institution = self.institution
        self.identity: Derived[Identity] = Derived(
            lambda header, _: gather(header, institution=institution),
            gathered_from(institution),
        )
        self.layout: Derived[rawpath.Layout | None] = Derived(
            lambda header, key: rawpath.layout_of(header, cast(tuple[int, str, bool], key)[0]),
            rawpath.layout_reads,
        )  # its key: rawpath.layout_key

    def process_batch(self, items: list[InputItem]) -> list[ItemResult]:
        """Process; the writes are not yet durable nor named (see ``_Committer``)."""
        return [self.process(item) for item in items]

    def process(self, item: InputItem) -> ItemResult:
        try:
            return self._process(item)
        except OutputError:
            raise
        except PacsguardError as exc:
            return self._quarantine(item, str(exc))
        except OSError as exc:
            if exc.errno in OUTPUT_ERRNOS:  # the destination, not this input: stop the run
                raise _output_error("the output", exc) from None
            return self._quarantine(item, f"could not be read: {exc.strerror or 'I/O error'}")
        except Exception as exc:
            return self._quarantine(item, unexpected_reason(exc))

    def _process(self, item: InputItem) -> ItemResult:
        if item.member is None:
            with item.path.open("rb", buffering=0) as handle:
                size = os.fstat(handle.fileno()).st_size
                try:
                    header, buf = grammar.read_header(handle, size, self.inputs)
                except grammar.GrammarError:
                    if item.path.suffix.lower() == ".zip":
                        raise fastpath.UnreadableError(
                            "a .zip file that is not a readable zip archive (corrupt or "
                            "truncated): repair or re-export it"
                        ) from None
                    raise
                if header.buf is buf:
                    grammar_tail(header, _file_reader(handle.fileno()), size)
                else:  # deflated: the inflated dataset
                    grammar_tail(header, _bytes_reader(header.buf), len(header.buf))
                return self._gated(item, header, buf, (handle, size))
        buf = item.read_bytes()
        header = grammar.parse(buf, whole=True)
        grammar_tail(header, _bytes_reader(header.buf), len(header.buf))
        return self._gated(item, header, buf, None)

    def _gated(
        self,
        item: InputItem,
        header: grammar.Header,
        buf: bytes,
        opened: tuple[BinaryIO, int] | None,
    ) -> ItemResult:
        """A file the grammar let through: ``opened`` is the input, open, and its size
        (None for a member of an archive, read whole into ``buf``)."""
        drops = self._gate(header)
        identity = self.identity(header)
        known = identity.known()
        risk = burned_in_risk(header)
        if risk and not self.cleaning and self.config.burned_in == "quarantine":
            raise UncleanError(
                f"the pixels may carry burned-in identity ({risk}) and pixel cleaning is off: "
                "drop --no-pixel-cleaning to clean them, or give --keep-burned-in to keep them"
            )
        raw_ok = self.raw_ok and not (risk and self.cleaning)
        if opened is not None and raw_ok and not drops and header.buf is buf:
            raw = self._rewrite_raw(item, header, opened, known)
            if raw is not None:
                done, written = raw
                if risk:  # only "keep" lets an image at risk take this path
                    done.outcome = replace(done.outcome, details={"pixels": "kept at risk"})
                return self._checked(item, done, identity, written)
        if item.member is None:
            source = fastpath.open_fast(item.path) or fastpath.open_full(item.path)
            if source.pixels is not None and embedded_overlay_bits(source.dataset):
                source = fastpath.open_full(item.path)  # the pixels themselves must change
        else:
            source = fastpath.open_full(buf)
        ds = source.dataset
        for anomaly in drops:
            _drop(ds, anomaly)
        if not str(ds.get("SOPInstanceUID", "")).strip():
            raise fastpath.UnreadableError("no SOP Instance UID: cannot name the output")
        at_risk = (self.cleaning or self.config.verify) and needs_pixel_cleaning(ds)
        if at_risk and source.pixels is not None:
            source = fastpath.open_full(item.path)  # pixels are read, cleaned or checked
            ds = source.dataset
            for anomaly in drops:
                _drop(ds, anomaly)
        verify_known = None
        if self.config.verify:
            from pacsguard.verify import KnownValues  # verify imports deid: import late

            verify_known = KnownValues.from_dataset(ds)
        result = self.transformer.transform(ds, file_meta=source.file_meta, known=known)
        cleaned = None
        if at_risk and self.cleaning:
            from pacsguard.deid.pixels.clean import clean_pixels  # codecs, OCR: when needed

            cleaned = clean_pixels(result.dataset)
        pixels: dict[str, str] = {}
        if cleaned and cleaned.clean_pixel_data_applied:
            add_method_code(result.dataset, "clean-pixel-data")
            pixels = {"pixels": "cleaned"}
        elif risk and self.config.burned_in == "keep" and not self.cleaning:
            pixels = {"pixels": "kept at risk"}
        if drops:  # --repair: what was dropped, by tag and rule (never a value)
            pixels["repaired"] = "; ".join(sorted({a.reason for a in drops}))
        if verify_known is not None:
            from pacsguard.verify import verify_dataset

            findings = verify_dataset(result.dataset, known=verify_known, options=self.options)
            identifiers = sorted({f.kind for f in findings if f.finding_class == "identifier"})
            if identifiers:
                raise UncleanError(f"verify found residual identifiers ({', '.join(identifiers)})")
            reviews = Counter(f.kind for f in findings)
            if reviews:  # free text not proven safe: written, and counted (pack --strict refuses)
                pixels["review"] = ", ".join(f"{k} {n}" for k, n in sorted(reviews.items()))
        relative = self._relative(result.dataset)
        tmp = self._temporary(relative, item)
        try:
            with open(tmp, "wb") as handle:  # noqa: PTH123 - hot path
                fastpath.write(source, result.dataset, handle)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # noqa: PTH108
            raise
        outcome = Outcome(
            item.label, item.fingerprint, "output", output=str(relative), details=pixels
        )
        way = "header-only" if source.pixels is not None else "full read"
        done = ItemResult(outcome, 0, result.mapping, tmp=tmp, path=way)
        return self._checked(item, done, identity)

    def _gate(self, header: grammar.Header) -> list[grammar.Anomaly]:
        """The anomalies to drop (``--repair``); without it, the first one refuses the file."""
        if not header.anomalies:
            return []
        unrepairable = [a for a in header.anomalies if a.tag in grammar.PIXEL_TAGS]
        if self.config.repair and not unrepairable:
            return list(header.anomalies)
        first = (unrepairable or header.anomalies)[0]
        more = len(header.anomalies) - 1
        suffix = f" (and {more} more anomal{'y' if more == 1 else 'ies'})" if more else ""
        hint = "" if unrepairable or self.config.repair else "; --repair drops such elements"
        raise GrammarRefusal(f"not DICOM as the standard allows: {first.reason}{suffix}{hint}")

    def _checked(
        self, item: InputItem, done: ItemResult, identity: Identity, written: Written | None = None
    ) -> ItemResult:
        """The independent post-write check, then the output's size and SHA-256.

        ``written``: the output still open, hashed as it was written (``_write_output``):
        its header is read back from that descriptor and checked the same way, and its
        size must be what was written; it is closed here. Without it, the file is opened
        again and hashed whole, as written by the usual path."""
        assert done.tmp is not None
        residue: postcheck.Residue | PacsguardError | None
        if written is not None:
            try:
                os.lseek(written.fd, 0, os.SEEK_SET)
                with open(written.fd, "rb", buffering=0, closefd=False) as handle:
                    # the header and the Pixel Data element's own header, no more of the pixels
                    first = written.header + grammar.PIXEL_HEAD
                    residue = postcheck.check_handle(handle, identity, self.outputs, first)
                size, digest = os.fstat(written.fd).st_size, written.sha256
            finally:
                os.close(written.fd)
            if residue is None and size != written.size:
                residue = OutputMismatch(
                    "post-write check: the output's size is not that of the bytes written"
                )
        else:
            with open(done.tmp, "rb") as handle:  # noqa: PTH123 - hot path
                residue = postcheck.check_handle(handle, identity, self.outputs)
                if residue is None:  # the whole file as written, read back from its start
                    handle.seek(0)
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
                    size = os.fstat(handle.fileno()).st_size
        if residue is not None:
            with contextlib.suppress(OSError):
                os.unlink(done.tmp)  # noqa: PTH108
            reason = residue.reason if isinstance(residue, postcheck.Residue) else str(residue)
            return self._quarantine(item, reason)
        outcome = replace(done.outcome, size=size, sha256=digest)
        return ItemResult(outcome, size, done.mapping, tmp=done.tmp, path=done.path)

    def _rewrite_raw(
        self,
        item: InputItem,
        header: grammar.Header,
        opened: tuple[BinaryIO, int],
        known: KnownValues,
    ) -> tuple[ItemResult, Written] | None:
        """The byte-level rewriter (``rawpath``) on the gated ``header`` of the input
        ``opened`` (file, size), and its output still open (``Written``); None sends the
        file down the usual path, which also gives every refusal its proper reason."""
        handle, size = opened
        layout = self.layout(header, rawpath.layout_key(header, size))
        if layout is None or (layout.has_rows and layout.pixel_offset >= size):
            return None
        offset, implicit = layout.pixel_offset, rawpath.is_implicit(layout.syntax)
        if offset < size:
            end = fastpath.element_end(handle, offset, implicit=implicit, size=size)
            if end != size:
                return None
            native = size - offset - (8 if implicit else 12)
            if not layout.compressed and (layout.expected_native or 0) > native:
                return None
        result = rawpath.rewrite(header.buf[:offset], self.transformer, layout, known)
        if result is None:
            return None
        parts = [result.patient_id, result.study_uid, result.series_uid, result.sop_uid]
        relative = self._name(parts)
        tmp = self._temporary(relative, item)
        written = self._write_output(tmp, result.header, handle.fileno(), offset, size)
        outcome = Outcome(item.label, item.fingerprint, "output", output=str(relative))
        done = ItemResult(outcome, written.size, result.mapping, tmp=tmp, path="byte-level")
        return done, written

    def _temporary(self, relative: Path, item: InputItem) -> str:
        """The temporary name of an output, beside its final one (folders made once)."""
        folder = os.path.join(self.output, relative.parent)  # noqa: PTH118 - hot path
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)  # noqa: PTH103
            self._folders.add(folder)
        return os.path.join(folder, ".tmp-" + item.fingerprint)  # noqa: PTH118

    def _write_output(
        self, tmp: str, header: bytes, source: int, offset: int, size: int
    ) -> Written:
        """The header then the source's bytes from ``offset``, into ``tmp`` (not synced:
        the committer syncs, then renames), with few system calls, hashed as they go; the
        output is left open for the post-write check (``_checked`` closes it)."""
        out = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            digest = hashlib.sha256(header)
            view = memoryview(header)
            while view:
                view = view[os.write(out, view) :]
            if offset < size:
                if self._buffer is None:
                    self._buffer = bytearray(fastpath.HASHED_CHUNK)
                fastpath.copy_hashed(
                    source, out, offset, size - offset, digest.update, self._buffer
                )
        except BaseException:
            os.close(out)
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # noqa: PTH108
            raise
        return Written(out, digest.hexdigest(), len(header) + size - offset, len(header))

    @staticmethod
    def _name(parts: Sequence[str | None]) -> Path:
        defaults = ["UNKNOWN", "NOSTUDY", "NOSERIES", "NOINSTANCE"]
        named = [str(p or "") or d for p, d in zip(parts, defaults, strict=True)]
        clean = [SAFE_COMPONENT.sub("_", p.strip())[:80] or "_" for p in named]
        return Path(*clean[:3], clean[3] + ".dcm")

    @classmethod
    def _relative(cls, ds: pydicom.Dataset) -> Path:
        keywords = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
        return cls._name([str(ds.get(k, "") or "") for k in keywords])

    def _quarantine(self, item: InputItem, reason: str) -> ItemResult:
        name = item.fingerprint
        try:
            data = self._input_bytes(item)
        except OSError:
            data = b""
        record = json.dumps({"input": item.label, "reason": reason}).encode()
        self._keep_quarantined(name, data, record)
        return ItemResult(Outcome(item.label, name, "quarantine", reason=reason))

    def _input_bytes(self, item: InputItem) -> bytes:
        return item.read_bytes()

    def _keep_quarantined(self, name: str, data: bytes, record: bytes) -> None:
        try:
            atomic_write_bytes(self.quarantine_dir / f"{name}.bin", data, 0o600, durable=False)
            atomic_write_bytes(self.quarantine_dir / f"{name}.json", record, 0o600, durable=False)
        except OSError as exc:
            raise _output_error("the quarantine", exc) from None


BURNED_IN = ("clean", "quarantine", "keep")
_RISK_TAGS = {0x00080008: "ImageType", 0x00080016: "SOPClassUID", 0x00080060: "Modality",
              0x00080064: "ConversionType", 0x00280301: "BurnedInAnnotation"}  # fmt: skip


_RiskKey = tuple[tuple[tuple[int, bytes], ...], bool]


def burned_in_risk(header: grammar.Header) -> str | None:
    """``risk_reason`` of the few top-level attributes it reads, as the raw header holds
    them: the verdict is remembered by their exact bytes (a series repeats them)."""
    chosen = tuple(
        (node.tag, header.buf[node.value : node.end])
        for node in header.elements
        if node.tag in _RISK_TAGS and node.items is None
    )
    return _risk_of((chosen, header.pixel_offset is not None))


@functools.lru_cache(maxsize=4096)
def _risk_of(key: _RiskKey) -> str | None:
    return risk_reason(risk_view(key))


def risk_view(key: _RiskKey) -> pydicom.Dataset:
    """The attributes ``risk_reason`` reads, decoded from their raw bytes."""
    view = pydicom.Dataset()
    elements, pixels = key
    for tag, value in elements:
        raw = value.decode("latin-1").strip(" \x00")
        values = [v.strip() for v in raw.split("\\")]
        setattr(view, _RISK_TAGS[tag], values if len(values) > 1 else values[0])
    if pixels:
        view.Rows, view.Columns = 1, 1  # pixels present
    return view


class GrammarRefusal(PacsguardError):
    """Anomalous elements, without ``--repair``: the file goes to quarantine."""


def grammar_tail(header: grammar.Header, read: Callable[[int, int], bytes], size: int) -> None:
    """Check what follows the top-level Pixel Data (``read(offset, count)`` reads the file,
    or the inflated dataset): nothing but padding, signatures and private elements."""
    if header.pixel_offset is None:
        return
    end = grammar.pixel_end(read, header.pixel_offset, header, size)
    if end > size:
        raise fastpath.UnreadableError("truncated file: Pixel Data runs past the end of the file")
    if end < size:
        grammar.check_tail(header, read(end, size - end))


def _file_reader(fd: int) -> Callable[[int, int], bytes]:
    return lambda offset, count: os.pread(fd, count, offset)


def _bytes_reader(data: bytes) -> Callable[[int, int], bytes]:
    return lambda offset, count: data[offset : offset + count]


def _drop(ds: pydicom.Dataset, anomaly: grammar.Anomaly) -> None:
    """``--repair``: remove the anomalous element (the tag at its path), never keep it."""
    current: pydicom.Dataset | None = ds
    for tag, index in anomaly.path:
        if current is None or tag not in current:
            return
        items = current[tag].value or []
        current = items[index] if index < len(items) else None
    if current is not None and anomaly.tag in current:
        del current[anomaly.tag]


def unexpected_reason(exc: Exception) -> str:
    """A reason a person can act on for an error no check foresaw (no value in it)."""
    if isinstance(exc, UnicodeError):
        return "a text value cannot be decoded under the file's Specific Character Set"
    if isinstance(exc, MemoryError):
        return "the file needs more memory than is available to de-identify it"
    return (
        "a value could not be interpreted while de-identifying "
        f"({type(exc).__name__}); the file is kept in quarantine, please report it"
    )


_WORKER: Worker | None = None


def _run_batch(items: list[InputItem]) -> list[ItemResult]:
    assert _WORKER is not None
    return _WORKER.process_batch(items)


def _batches(items: list[InputItem], size: int) -> Iterator[list[InputItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sweep_temporaries(root: Path | RemoteFolder) -> None:
    if isinstance(root, RemoteFolder):
        remote.sweep_temporaries(root)
        return
    for tmp in root.rglob(".tmp-*"):
        tmp.unlink(missing_ok=True)


def _write_output_manifest(
    output: Path | RemoteFolder, state: Path, manifest: dict[str, object]
) -> None:
    """The output's manifest; on a store written on the state folder, then sent whole."""
    if isinstance(output, RemoteFolder):
        local = state / DEID_MANIFEST_NAME
        write_json_stream(local, manifest)
        remote.put_file(local, output.join(DEID_MANIFEST_NAME))
    else:
        write_json_stream(output / DEID_MANIFEST_NAME, manifest)


def _output_manifest(
    config: DeidConfig,
    policy: Policy,
    journal: Journal,
    pending: int | None,
    skipped: int,
) -> dict[str, object]:
    """The output's manifest; ``pending`` None while a streaming run does not know yet
    (the manifest then says incomplete). Its file list is read from the journal as it is
    written, sorted by SQLite: nothing per output is held in memory."""
    statuses = journal.statuses()
    files = sum(1 for _ in journal.files())
    return {
        "tool": "pacsguard",
        "version": __version__,
        "complete": pending == 0,
        "profile": {
            "options": sorted(config.options),
            "strict": config.strict,
            "policy_sha256": policy.sha256,
            "verify": config.verify,
            "repair": config.repair,
        },
        "counts": {
            "inputs": sum(statuses.values()) + (pending or 0),
            "output": statuses["output"],
            "duplicate": statuses["duplicate"],
            "quarantine": statuses["quarantine"],
            "pending": pending,
            "skipped": skipped,
            "repaired": journal.with_detail("repaired"),
            "review": journal.with_detail("review") if config.verify else None,
            "files": files,
        },
        "files": (
            {"path": path, "size": size, "sha256": sha} for path, size, sha in journal.files()
        ),
    }


@dataclass
class Skipped:
    """A path the walk found that is not a regular file: listed, with why."""

    input: str
    reason: str


def deidentify(
    inputs: Sequence[Path | str],
    output: Path | str,
    *,
    key: ProjectKey,
    config: DeidConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_interrupt: Callable[[int], None] | None = None,
    notice: Callable[[str], None] | None = None,
    figures: RunFigures | None = None,
) -> DeidReport:
    """De-identify every DICOM file under ``inputs`` into ``output`` (see DeidConfig).

    ``progress(done, total)`` follows the run: the inputs are streamed from the walk, never
    listed whole, so ``total`` is what the walk has found to do so far (final once the walk
    ends; at once for a run of up to ``streaming.FIRST_CHUNK`` inputs). A first Ctrl-C (SIGINT,
    in the main thread) stops it once the files in flight are finished and recorded —
    ``on_interrupt(n)`` says how many — and the report says ``interrupted``; running again
    finishes the job. ``notice`` receives one-line messages for the operator (the Dask
    cluster and its dashboard's address). ``figures``, when given, is kept up to date
    (bytes done, quarantined so far) before each ``progress`` call.

    Inputs, ``output`` and ``config.quarantine_dir`` may be fsspec URLs (``s3://bucket/x``,
    with ``pacsguard[cloud]``; ``core/remote.py``, ``deid/storage.py``); the state folder,
    with the journal, is always local."""
    config = config or DeidConfig()
    validate_options(config.options)
    policy = load_policy(config.policy)  # read once; a bad policy fails before any work
    given = [_place(value) for value in inputs]
    out = _place(output)
    if isinstance(config.state_dir, str) and is_url(config.state_dir):
        raise InputError("--state must be a local folder: the journal stays on this machine")
    local_inputs = [place for place in given if isinstance(place, Path)]
    remote_inputs = [place for place in given if isinstance(place, RemoteFolder)]
    if isinstance(out, Path):
        check_places(local_inputs, out)
    else:
        check_remote_places(remote_inputs, out)
    for path in local_inputs:  # the walk is lazy: a missing input is refused before any work
        if not path.exists() and not path.is_symlink():
            raise InputError(f"input {path} does not exist")
    if config.cluster is not None:
        from pacsguard.deid import cluster

        cluster.parse_address(config.cluster)  # a bad --cluster fails before any work
    for folder in remote_inputs:
        folder.check_input()
    if isinstance(out, Path):
        out = out.resolve()
        default_state = out.with_name(out.name + ".pacsguard")
    else:
        out.check()
        default_state = Path.cwd() / (
            SAFE_COMPONENT.sub("-", out.url.replace("://", "-")) + ".pacsguard"
        )
    state = (config.state_dir or default_state).resolve()
    quarantine = _place(config.quarantine_dir) if config.quarantine_dir else state / "quarantine"
    if isinstance(quarantine, Path):
        quarantine = quarantine.resolve()
    else:
        quarantine.check()
    _check_apart(out, state, quarantine)
    skipped: list[Skipped] = []
    walk = _walk(
        given,
        local_places(out, state, quarantine),
        [place for place in (out, quarantine) if isinstance(place, RemoteFolder)],
        skip=lambda label, reason: skipped.append(Skipped(label, reason)),
    )
    try:
        for made in local_places(out, quarantine, state):
            made.mkdir(parents=True, exist_ok=True, mode=0o700 if made is quarantine else 0o777)
    except OSError as exc:
        raise _output_error(f"the output or state folder ({out})", exc) from None
    for writable in local_places(out, state, quarantine):
        if not os.access(writable, os.W_OK):
            raise OutputError(f"cannot write to {writable}: permission denied")
    _sweep_temporaries(out)
    journal = Journal(state / "journal.sqlite")
    try:
        settings = run_settings(
            key,
            options=frozenset(config.options),
            strict=config.strict,
            policy=policy,
            shift_range=config.shift_range,
            patient_map=config.patient_map,
            verify=config.verify,
            repair=config.repair,
            burned_in=config.burned_in,
        )
        bind(journal, out, settings, redo=config.redo)
        if config.redo:
            _clear_quarantine(quarantine)
        place = _Place(out, state, quarantine, remote_inputs=bool(remote_inputs))
        report = _run(
            walk, skipped, journal, place, key, config, policy, progress, notice, on_interrupt,
            figures or RunFigures(),
        )  # fmt: skip
    finally:
        journal.close()
    return report


def _place(value: Path | str) -> Path | RemoteFolder:
    """A URL (``scheme://``) as a RemoteFolder, anything else as a local path."""
    if isinstance(value, str) and is_url(value):
        return RemoteFolder.parse(value)
    return Path(value)


def _check_apart(output: Path | RemoteFolder, state: Path, quarantine: Path | RemoteFolder) -> None:
    if isinstance(output, RemoteFolder):
        if isinstance(quarantine, RemoteFolder) and quarantine.inside(output):
            raise InputError("the quarantine must live outside the output tree")
        return
    if isinstance(quarantine, Path) and (quarantine == output or output in quarantine.parents):
        raise InputError("the quarantine must live outside the output tree")
    if state == output or output in state.parents:
        raise InputError("the state folder must live outside the output tree")


def _walk(
    given: list[Path | RemoteFolder],
    exclude: list[Path],
    exclude_remote: list[RemoteFolder],
    skip: Callable[[str, str], None],
) -> Iterator[InputItem]:
    """The inputs in the order given; local paths by the local walk, URLs by listings.
    Each label once: the journal, the temporary names and the manifest are keyed by it, so
    an input reached again (a file given beside its folder, a zip archive holding a member
    name twice) is accounted for as skipped, not processed twice under one key."""
    seen: set[str] = set()
    for place in given:
        if isinstance(place, RemoteFolder):
            found = remote.iter_remote(place, exclude_remote, skip)
        else:
            found = iter_inputs([place], exclude=exclude, skip=skip)
        for item in found:
            if item.label in seen:
                skip(item.label, REACHED_AGAIN)
                continue
            seen.add(item.label)
            yield item


REACHED_AGAIN = (
    "reached twice among the inputs (the same path given again, or a zip member name the "
    "archive holds twice): processed once"
)


def _clear_quarantine(folder: Path | RemoteFolder) -> None:
    if isinstance(folder, RemoteFolder):
        for found in folder.walk(lambda url: False):
            if str(found["url"]).endswith((".bin", ".json")):
                remote.remove(str(found["url"]))
        return
    for entry in folder.iterdir():
        if entry.is_file() and entry.suffix in (".bin", ".json"):
            entry.unlink()


@dataclass(frozen=True)
class _Place:
    output: Path | RemoteFolder
    state: Path
    quarantine: Path | RemoteFolder
    remote_inputs: bool = False  # an input is a URL


class Executor(Protocol):
    """Where batches run: in this process, a local pool, or a cluster (``cluster``).
    ``submit`` may block to keep the work in flight bounded; finished batches go to the
    commit function the executor was given; ``close`` waits for every batch."""

    def submit(self, batch: list[InputItem]) -> None: ...

    def close(self) -> None: ...


def _run(
    walk: Iterator[InputItem],
    skipped: list[Skipped],
    journal: Journal,
    place: _Place,
    key: ProjectKey,
    config: DeidConfig,
    policy: Policy,
    progress: Callable[[int, int], None] | None,
    notice: Callable[[str], None] | None,
    on_interrupt: Callable[[int], None] | None,
    figures: RunFigures,
) -> DeidReport:
    output, state, quarantine = place.output, place.state, place.quarantine
    journal.begin_walk()
    mapping_rows = state / "mapping-rows.jsonl"
    try:
        _write_output_manifest(
            output, state, _output_manifest(config, policy, journal, None, len(skipped))
        )
    except OSError as exc:
        raise _output_error("the output manifest", exc) from None
    lock = threading.Lock()  # one SQLite connection: the walk's lookups, the commits
    planner = Planner(walk, journal, output, check=config.check, lock=lock)
    chunks = iter(planner)
    first = next(chunks, [])  # a small run (one short chunk) runs in this process
    in_flight: dict[str, InputItem] = {}  # submitted, not yet journalled: bounded
    done = 0
    paths: Counter[str] = Counter()  # this run's outputs by the way they went
    worker: Worker
    if _remote_run(place):
        from pacsguard.deid.storage import StoreWorker

        worker = StoreWorker(key.material, config, policy, output, quarantine)
    else:
        assert isinstance(output, Path) and isinstance(quarantine, Path)
        worker = Worker(key.material, config, policy, output, quarantine)
    on_cluster: Any = None
    if config.cluster is not None:
        from pacsguard.deid import cluster

        on_cluster = cluster.connect(config.cluster, key, config, policy, place, notice=notice)

    def record(results: list[ItemResult]) -> None:
        nonlocal done
        with lock:
            naming = plan_names(results, journal, output, in_flight)
        # Not under the lock: the walk (which needs it for its next chunk, and feeds the
        # workers) must not wait for the renames and the sync. A naming task on a cluster
        # waits for a worker to finish the batch it is running: measured, holding the lock
        # through it left the workers without work at each chunk of the walk.
        # (bench/cluster_breakdown.py, docs/scale.md). Only this thread names and journals.
        try:
            if on_cluster is not None:
                named = naming.named + on_cluster.apply(naming)  # synced there
            else:
                named = naming.named + apply_names(naming, worker)
                sync_filesystems(*local_places(output, quarantine))  # durable, then journalled
        except OSError as exc:
            raise _output_error("the outputs to disk (sync)", exc) from None
        with lock:
            try:
                if config.mapping_out is not None:
                    _append_private(mapping_rows, [row for r in named for row in r.mapping])
                journal.record_many([r.outcome for r in named])
            except (OSError, sqlite3.Error) as exc:
                if isinstance(exc, OSError):
                    raise _output_error("the journal", exc) from None
                raise OutputError(
                    f"cannot write the journal ({exc}); run again to finish"
                ) from None
        gone = [in_flight.pop(r.outcome.fingerprint, None) for r in results]
        size = sum(item.size for item in gone if item is not None)
        prefetch.consumed(size)
        figures.bytes_done += size
        figures.quarantined += sum(r.outcome.status == "quarantine" for r in results)
        paths.update(r.path for r in results if r.path)
        done += len(results)
        if progress:
            progress(done, planner.todo)

    jobs = max(1, config.jobs or _usable_cpus())
    prefetch = Prefetcher(stream=True)
    _preload(words=bool(config.options) or bool(policy.rules))
    if progress:
        progress(0, planner.todo)  # the total (at once for a run of one chunk)
    with contextlib.ExitStack() as stack:
        completed = False
        stop = stack.enter_context(_Stop(on_interrupt))
        if on_cluster is not None:
            stack.enter_context(on_cluster)

            def sweep() -> None:  # after the last commit, while the cluster is still there
                if completed and on_cluster.workers_changed():
                    _sweep_temporaries(output)  # what attempts lost with their worker left

            stack.callback(sweep)
        stack.enter_context(prefetch)
        commit = stack.enter_context(_Committer(record))
        executor: Executor
        if on_cluster is not None:
            executor = on_cluster.executor(commit, stop)
        elif jobs == 1 or (planner.finished and len(first) <= BATCH):
            prefetch.start()
            executor = _Inline(worker, commit, stop)
        else:
            executor = _Pool(jobs, worker, commit, started=prefetch.start, stop=stop)
        try:
            for number, todo in enumerate(itertools.chain([first], chunks)):
                if stop.requested:
                    break
                for item in todo:
                    in_flight[item.fingerprint] = item
                if on_cluster is None:
                    prefetch.feed(
                        (item.path, item.size)
                        for item in todo
                        if item.member is None and item.remote is None
                    )
                ahead = number == 0 and not planner.finished  # the walk goes on meanwhile
                for batch in _batches(todo, _batch_size(executor, todo, jobs, ahead=ahead)):
                    if stop.requested:
                        break
                    executor.submit(batch)
                if progress:
                    progress(done, planner.todo)
            executor.close()
            completed = not stop.requested
        except BaseException:
            with contextlib.suppress(Exception):
                executor.close()
            raise

    statuses = journal.walked_statuses()
    walked = journal.walked_count()
    recorded = sum(statuses.values())
    pending = walked - recorded
    try:  # a walk stopped early (Ctrl-C) leaves inputs it never found: not complete
        found = pending if planner.finished else None
        manifest = _output_manifest(config, policy, journal, found, len(skipped))
        _write_output_manifest(output, state, manifest)
        local = {
            "outcomes": (_as_record(o) for o in journal.walked()),
            "skipped": [asdict(s) for s in skipped],
            "paths": dict(paths),
        }
        write_json_stream(state / "manifest.json", local, mode=0o600)
        if config.mapping_out is not None:
            _write_mapping(mapping_rows, config.mapping_out)
    except OSError as exc:
        raise _output_error("the manifests", exc) from None
    return DeidReport(
        inputs=walked,
        output=recorded - statuses["quarantine"],
        quarantine=statuses["quarantine"],
        resumed=planner.resumed,
        duplicates=statuses["duplicate"],
        output_dir=output,
        state_dir=state,
        quarantine_dir=quarantine,
        reasons=journal.walked_reasons(),
        skipped=len(skipped),
        skip_reasons=Counter(s.reason for s in skipped),
        redone=planner.redone,
        interrupted=stop.requested,
        paths=paths,
        pixels_cleaned=journal.walked_detail("pixels", "cleaned"),
        burned_in_kept=journal.walked_detail("pixels", "kept at risk"),
    )


def _remote_run(place: _Place) -> bool:
    """Whether a StoreWorker is needed: an input, the output or the quarantine is a URL."""
    return place.remote_inputs or not (
        isinstance(place.output, Path) and isinstance(place.quarantine, Path)
    )


def _as_record(outcome: Outcome) -> dict[str, object]:
    """``asdict(outcome)``, without its deep copy (a tenth of the time, at 10^8 inputs)."""
    return {name: getattr(outcome, name) for name in _OUTCOME_FIELDS}


_OUTCOME_FIELDS = tuple(f.name for f in fields(Outcome))


def _batch_size(executor: Executor, todo: list[InputItem], jobs: int, *, ahead: bool) -> int:
    """Files a batch. ``ahead``: the first chunk of a walk that goes on, cut into batches
    large enough that the pool's window holds most of it, so that the workers have work
    while the main thread walks the next chunk (small batches would leave them idle)."""
    if isinstance(executor, _Inline):
        return min(BATCH, 8)  # a Ctrl-C waits for one small batch at most
    if isinstance(executor, _Pool):
        if ahead:
            return max(1, min(BATCH, -(-len(todo) // (jobs * IN_FLIGHT))))
        return max(1, min(BATCH, len(todo) // (jobs * 32) or 1))  # small runs: visible progress
    return int(executor.batch_size(len(todo)))  # type: ignore[attr-defined]


SAME_UID = "another input has the same SOP Instance UID (different content): kept apart"


@dataclass
class Naming:
    """What the committer decided for finished results, before anything is renamed.

    ``named``: results to journal as they are once ``moves`` (temporary -> final path) are
    done; ``drops``: temporaries to remove (duplicates, refused); ``refused``: inputs
    whose output name another input owns with other bytes, to quarantine."""

    named: list[ItemResult] = field(default_factory=list)
    moves: list[tuple[str, str]] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    refused: list[InputItem] = field(default_factory=list)


def plan_names(
    results: list[ItemResult],
    journal: Journal,
    output: Path | RemoteFolder,
    in_flight: dict[str, InputItem],
) -> Naming:
    """Decide each written output's final name, in the one thread that journals: an output
    name that another input already owns is a duplicate (same bytes) or sends this input
    to quarantine (other bytes), never an overwrite. Nothing is renamed here, so the same
    decision serves a local run (``apply_names``) and a cluster (its workers rename)."""
    claimed: dict[str, Outcome] = {}
    naming = Naming()
    # Each output's owner as the journal holds it before this commit, asked at once: a
    # record this loop forgets is an owner it has just claimed the name from, and a
    # fingerprint owns one output at most, so ``claimed`` answers every later question.
    owners = journal.owners(
        r.outcome.output
        for r in results
        if r.outcome.status == "output" and r.tmp is not None and r.outcome.output is not None
    )
    for result in results:
        outcome = result.outcome
        if outcome.status != "output" or result.tmp is None or outcome.output is None:
            naming.named.append(result)
            continue
        owner = claimed.get(outcome.output) or owners.get(outcome.output)
        if owner is not None and owner.input != outcome.input:
            naming.drops.append(result.tmp)
            if owner.sha256 == outcome.sha256:
                details = {"duplicate_of": owner.input}
                dup = replace(outcome, status="duplicate", details=details)
                naming.named.append(ItemResult(dup, result.size))
            else:
                naming.refused.append(in_flight[outcome.fingerprint])
            continue
        if owner is not None and owner.fingerprint != outcome.fingerprint:
            journal.forget([owner.fingerprint])  # the same input, changed since: superseded
        naming.moves.append((result.tmp, _join(output, outcome.output)))
        claimed[outcome.output] = outcome
        naming.named.append(replace(result, tmp=None))
    return naming


def apply_names(naming: Naming, worker: Worker) -> list[ItemResult]:
    """Carry out ``naming`` where the outputs are; the refused inputs' quarantine results."""
    for tmp in naming.drops:
        if is_url(tmp):
            remote.remove(tmp)
        else:
            os.unlink(tmp)  # noqa: PTH108
    for tmp, final in naming.moves:
        if is_url(final):
            remote.move(tmp, final)  # a server-side copy: atomic per object
        else:
            os.rename(tmp, final)  # noqa: PTH104
    return [worker._quarantine(item, SAME_UID) for item in naming.refused]


def _join(output: Path | RemoteFolder, relative: str) -> str:
    return output.join(relative) if isinstance(output, RemoteFolder) else str(output / relative)


def local_places(*places: Path | RemoteFolder) -> list[Path]:
    """The places that are local folders (those a sync makes durable; a PUT is already)."""
    return [place for place in places if isinstance(place, Path)]


class _Committer:
    """Group commit off the critical path: a thread takes every batch finished since its
    last commit, syncs the filesystems once, then journals them, while the workers go on.
    A result is journalled only once its files are durable, so a crash at any point loses
    no recorded output. Syncing back to back spreads the writeback over the run: measured,
    it ends sooner than fewer, larger syncs that leave more to flush at the end. An error
    in a commit surfaces at the next submission or at exit.
    """

    def __init__(self, record: Callable[[list[ItemResult]], None]) -> None:
        self._record = record
        self._queue: list[ItemResult] = []
        self._closed = False
        self._error: BaseException | None = None
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="pacsguard-commit", daemon=True)
        self._thread.start()

    def __call__(self, results: list[ItemResult]) -> None:
        with self._wake:
            if self._error is not None:
                raise self._error
            self._queue.extend(results)
            self._wake.notify()

    def __enter__(self) -> _Committer:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
            try:
                self._record(batch)
            except BaseException as exc:  # handed to the submitting thread
                with self._wake:
                    self._error = exc
                return


class _Inline:
    """Batches run here, one after the other (one core, or a run too small to fork for)."""

    def __init__(
        self, worker: Worker, commit: Callable[[list[ItemResult]], None], stop: _Stop
    ) -> None:
        self._worker, self._commit, self._stop = worker, commit, stop

    def submit(self, batch: list[InputItem]) -> None:
        self._stop.in_flight = len(batch)
        self._commit(self._worker.process_batch(batch))

    def close(self) -> None:
        pass


class _Pool:
    """Batches to ``jobs`` forked copies of ``worker``; ``started()`` once they are forked.
    At most ``jobs * IN_FLIGHT`` batches are in flight: ``submit`` waits for one to finish. Once
    ``stop`` is set, the caller submits no more and ``close`` finishes those in flight."""

    def __init__(
        self,
        jobs: int,
        worker: Worker,
        commit: Callable[[list[ItemResult]], None],
        started: Callable[[], object],
        stop: _Stop,
    ) -> None:
        global _WORKER
        self._jobs, self._commit, self._started, self._stop = jobs, commit, started, stop
        self._pending: set[Future[list[ItemResult]]] = set()
        _WORKER = worker  # inherited by the fork, with every table it has loaded
        self._pool = fork_pool(jobs, _worker_start, (os.getpid(),))
        self._forked = False

    def submit(self, batch: list[InputItem]) -> None:
        if self._forked:
            self._pending.add(self._pool.submit(_run_batch, batch))
        else:
            with frozen_heap():  # the fork context starts every worker at the first submit
                self._pending.add(self._pool.submit(_run_batch, batch))
        self._stop.in_flight = len(self._pending) * len(batch)
        if not self._forked:
            self._forked = True
            self._started()
        while len(self._pending) >= self._jobs * IN_FLIGHT and not self._stop.requested:
            finished, self._pending = wait(self._pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in finished:
                self._commit(future.result())

    def close(self) -> None:
        global _WORKER
        try:
            pending, self._pending = self._pending, set()
            for future in pending:
                self._commit(future.result())
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            _WORKER = None


def _worker_start(parent: int) -> None:
    """A worker dies with its parent, and leaves Ctrl-C to it (it finishes its batch)."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class _Stop:
    """A first Ctrl-C asks the run to stop after the files in flight; a second one aborts."""

    notify: Callable[[int], None] | None = None
    requested: bool = False
    in_flight: int = 0

    def __enter__(self) -> _Stop:
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.notify is not None:
            self.notify(self.in_flight)


def _usable_cpus() -> int:
    """The cores this process may run on (CPU affinity, as set by taskset or a container)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _preload(*, words: bool) -> None:
    """Load the rule tables (and the name lexicons when ``words``) before the workers fork:
    they share one copy, and none of them reads package files while the prefetcher keeps
    the disk busy. The lexicons serve only the cleaning an option or a policy asks for; a
    run of the basic profile never reads them (they load on first use if it ever does)."""
    for load in (load_table, load_iod_types, load_safe_private, load_cid7050, identity_tags):
        load()
    if words:
        for name in ("given-names.txt", "family-names.txt"):
            lexicon(name)


OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def _output_error(what: str, exc: OSError) -> OutputError:
    reason = exc.strerror or type(exc).__name__
    return OutputError(
        f"cannot write {what} ({reason}); nothing recorded is lost: fix it, then run the same "
        "command again to finish the job"
    )


def _append_private(path: Path, rows: list[tuple[str, str, str]]) -> None:
    if not rows:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_mapping(rows_path: Path, target: Path) -> None:
    """The re-identification mapping: CSV ``kind,original,pseudonym``, mode 0600."""
    rows: set[tuple[str, str, str]] = set()
    if rows_path.exists():
        for line in rows_path.read_text(encoding="utf-8").splitlines():
            try:
                kind, original, pseudonym = json.loads(line)
            except (json.JSONDecodeError, ValueError):
                continue
            rows.add((kind, original, pseudonym))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["kind", "original", "pseudonym"])
    writer.writerows(sorted(rows))
    atomic_write_bytes(target, buffer.getvalue().encode("utf-8"), mode=0o600)


__all__ = ["DeidConfig", "DeidReport", "Worker", "deidentify", "load_patient_map"]
