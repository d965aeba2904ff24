"""verify's header read as bytes (verify/header.py, ``ElementChecker.check_raw``) against
pydicom's reading, the reference oracle: the same findings (file, location, kind, detail,
value, class, reason), in the same order, on every file of trees no one tuned it to (real
files that installed packages ship, as shipped; the sample corpus de-identified; identifiers
planted after de-identification) and on generated headers; and a verdict memo that no
context can fool (same bytes, another attribute, sequence, dates marker or run)."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from pacsguard.core.io import InputItem, iter_inputs
from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, deidentify
from pacsguard.deid.pixels.risk import needs_pixel_cleaning
from pacsguard.sample import AnswerKey
from pacsguard.verify import Finding, scan, verify
from pacsguard.verify.elements import VerdictMemo
from pacsguard.verify.header import Declined, read_raw
from pacsguard.verify.known import KnownValues
from pacsguard.verify.risk import RISK_KEYWORDS, at_risk
from verify_corpus import copy_real_files, plant_tree

Row = tuple[str, str, str, str, str, str, str]


def rows(findings: list[Finding]) -> list[Row]:
    return [
        (f.file, f.location, f.kind, f.detail, f.value, f.finding_class, f.why) for f in findings
    ]


def job_for(
    root: Path, *, known: KnownValues | None = None, ocr: bool = False, ner: bool = True
) -> scan.Job:
    options = tuple(scan.deid_options(root))
    return scan.Job(root, known, options, ocr, ner, run=uuid.uuid4().hex)


def compare(root: Path, job: scan.Job, *, replayed: bool = True) -> tuple[int, int]:
    """Every input of ``root`` checked both ways: (files read as bytes, DICOM files);
    ``replayed``: the memo must have served more verdicts than there were files."""
    reference = replace(job, raw=False, run="")
    taken = dicom = 0
    for item in iter_inputs([root]):
        fast, slow = scan.check_item(item, job), scan.check_item(item, reference)
        assert not slow.raw
        assert (fast.name, fast.dicom, fast.groups) == (slow.name, slow.dicom, slow.groups)
        assert rows(fast.findings) == rows(slow.findings), item.label
        taken += fast.raw
        dicom += fast.dicom
    memo = scan.run_state(job).memo
    assert memo.misses > 0 and (memo.hits > taken or not replayed)
    return taken, dicom


@pytest.fixture(scope="module")
def trees(
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("verify-raw")
    copy_real_files(base / "real")
    shutil.copytree(sample_corpus[0], base / "sample")
    config = DeidConfig(jobs=1, mapping_out=base / "map.csv")
    deidentify([base / "sample"], base / "out", key=project_key, config=config)
    _, extended = plant_tree(base / "out", base / "map.csv", base / "planted")
    return {
        "real": base / "real",
        "sample": base / "sample",
        "out": base / "out",
        "planted": base / "planted",
        "mapping": extended,
    }


def test_real_files_as_shipped_read_both_ways_alike(trees: dict[str, Path]) -> None:
    taken, dicom = compare(trees["real"], job_for(trees["real"], ner=False))
    assert dicom > 150 and taken > 60  # most of the rest: implicit VR, big endian, UN, deflated


def test_sample_corpus_raw_and_deidentified_read_both_ways_alike(trees: dict[str, Path]) -> None:
    for name in ("sample", "out"):
        taken, dicom = compare(trees[name], job_for(trees[name]))
        assert dicom > 20 and taken >= dicom // 2, name


def test_planted_identifiers_found_alike_with_and_without_mapping(trees: dict[str, Path]) -> None:
    known = KnownValues.from_mapping(trees["mapping"])
    taken, _ = compare(trees["planted"], job_for(trees["planted"], known=known))
    assert taken > 20
    taken, _ = compare(trees["planted"], job_for(trees["planted"]))
    assert taken > 20


def test_whole_runs_alike_in_process_and_in_workers(
    trees: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify(): evidence, ranking and report as pydicom's reading gives them, whether the
    files are checked here or by workers (SERIAL_S 0: every file goes to the pool)."""
    root, mapping = trees["planted"], trees["mapping"]
    fast = [verify(root, ocr=False, mapping=mapping, jobs=1)]
    monkeypatch.setattr(scan, "SERIAL_S", 0.0)
    fast.append(verify(root, ocr=False, mapping=mapping, jobs=2))
    monkeypatch.setattr(scan, "_check_raw", lambda item, job, name, data=None: None)
    slow = verify(root, ocr=False, mapping=mapping, jobs=1)
    assert slow.identifiers
    for report in fast:
        assert report.to_dict(show_phi=True) == slow.to_dict(show_phi=True)


def test_pixels_read_for_the_same_instances(trees: dict[str, Path]) -> None:
    """The memoised decision on the header's bytes is the decision on pydicom's Dataset, and
    an instance at risk is left to pydicom's reading whole (its pixels are read)."""
    state = scan.run_state(job_for(trees["sample"], ocr=True))
    decided = risky = 0
    for root in (trees["real"], trees["sample"], trees["out"]):
        for item in iter_inputs([root]):
            try:
                header = read_raw(item)
            except Exception:
                continue
            expected = at_risk(pydicom.dcmread(item.path, stop_before_pixels=True))
            assert state.at_risk(header) == expected, item.label
            decided += 1
            risky += expected
    assert decided > 80 and risky > 5
    job = job_for(trees["sample"], ocr=True)
    left = 0
    for item in iter_inputs([trees["sample"]]):
        if scan._check_raw(item, job, item.label) is None:
            left += 1  # pydicom's reading then decides, pixels read where at risk
            continue
        assert not at_risk(pydicom.dcmread(item.path, stop_before_pixels=True)), item.label
    assert left > 5


ASKED: set[str] = set()


class Recording(Dataset):
    """A Dataset that notes which attributes are asked for (by keyword; the character set,
    which pydicom itself reads to decode text, aside)."""

    @staticmethod
    def note(key: object) -> None:
        if isinstance(key, str):
            ASKED.add(key)
        elif isinstance(key, int) and key != 0x00080005:
            ASKED.add(keyword_for_tag(key) or hex(key))

    def get(self, key: object, default: object = None) -> object:  # type: ignore[override]
        self.note(key)
        return super().get(key, default)  # type: ignore[call-overload]

    def __contains__(self, key: object) -> bool:
        self.note(key)
        return super().__contains__(key)  # type: ignore[operator]


def test_the_risk_decision_reads_only_the_attributes_given_to_it(trees: dict[str, Path]) -> None:
    """The header read as bytes hands the risk decision RISK_KEYWORDS only: should
    ``needs_pixel_cleaning`` ever read another attribute, this fails (else an instance at
    risk could go unread)."""
    for root in (trees["real"], trees["sample"]):
        for path in sorted(root.rglob("*.dcm"))[:80]:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            needs_pixel_cleaning(Recording(ds))
    assert ASKED and set(RISK_KEYWORDS) >= ASKED


def _file(path: Path, ds: Dataset) -> InputItem:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return InputItem(str(path), path, size=path.stat().st_size)


def _base(marker: str | None = None) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "2.25." + str(uuid.uuid4().int)
    ds.StudyInstanceUID = "2.25.1234"
    ds.SeriesInstanceUID = "2.25.5678"
    ds.PatientID = "PGAAAAAAAAAAAAAAAA"
    ds.Modality = "CT"
    if marker is not None:
        ds.LongitudinalTemporalInformationModified = marker
    return ds


def _check_both(items: list[InputItem], root: Path) -> list[list[Row]]:
    job = job_for(root)
    reference = replace(job, raw=False, run="")
    found = []
    for item in items:
        fast, slow = scan.check_item(item, job), scan.check_item(item, reference)
        assert fast.raw and not slow.raw
        assert rows(fast.findings) == rows(slow.findings)
        found.append(rows(fast.findings))
    return found


ANATOMY = "(0008,2218) AnatomicRegionSequence[0] > (0008,0104) CodeMeaning"
CODING = "(0008,0110) CodingSchemeIdentificationSequence[0] > (0008,0104) CodeMeaning"
STRUCTURE = "(0008,2228) PrimaryAnatomicStructureSequence[0] > (0008,0104) CodeMeaning"


def test_memo_keys_on_context_same_bytes_other_verdicts(tmp_path: Path) -> None:
    """The same bytes in another attribute, another sequence, under another dates marker or
    in another run get their own verdict (the reference's), whatever was memoised first."""
    address, plain, day = "12 rue de la Paix 75002 Paris", "Xylophone Protocol", "20200101"

    def item(code_meaning: str) -> Dataset:
        code = Dataset()
        code.CodeMeaning = code_meaning
        return code

    def contexts(marker: str | None) -> Dataset:
        ds = _base(marker)
        ds.AnatomicRegionSequence = Sequence([item(address)])
        ds.CodingSchemeIdentificationSequence = Sequence([item(address)])  # an organisation's
        ds.PrimaryAnatomicStructureSequence = Sequence([item(plain)])  # allowed free text
        ds.PatientComments = plain  # not allowed
        ds.BodyPartExamined = plain.upper()
        ds.ContentDate = day
        ds.add_new(0x00111010, "LO", plain)  # private, no creator: not allowed either
        return ds

    marked = _file(tmp_path / "a.dcm", contexts("MODIFIED"))
    unmarked = _file(tmp_path / "b.dcm", contexts(None))
    for order in ([marked, unmarked], [unmarked, marked]):
        for given_item, found in zip(order, _check_both(order, tmp_path), strict=True):
            klass = {(r[1], r[2]): r[5] for r in found}
            assert klass[(ANATOMY, "postcode-town")] == "identifier"
            assert klass[(CODING, "postcode-town")] == "review"
            assert not [r for r in found if r[1].startswith(STRUCTURE)]
            assert klass[("(0010,4000) PatientComments", "text-not-allowed")] == "review"
            assert ("(0011,1010) private", "text-not-allowed") in klass
            dated = ("(0008,0023) ContentDate", "unshifted-date") in klass
            assert dated == (given_item is unmarked)  # only where dates are not marked shifted
    # another run (a mapping now): the memo of the first run is not used
    known = KnownValues.from_mapping(_mapping(tmp_path, "PAIX^PARIS"))
    job = replace(job_for(tmp_path), known=known)
    fast = scan.check_item(marked, job)
    slow = scan.check_item(marked, replace(job, raw=False, run=""))
    assert fast.raw and rows(fast.findings) == rows(slow.findings)
    assert any(r[2] == "known-value" for r in rows(fast.findings))


def _mapping(folder: Path, name: str) -> Path:
    path = folder / "mapping.csv"
    path.write_text(f"kind,original,pseudonym\npatient-name,{name},PGAAAA\n", encoding="utf-8")
    return path


def test_a_value_memoised_clean_still_leaks_elsewhere(tmp_path: Path) -> None:
    """A value clean where the allow-list keeps it is reported where it is not allowed."""
    first, second = _base("MODIFIED"), _base("MODIFIED")
    code = Dataset()
    code.CodeMeaning = "Follow-up Scan"
    first.AnatomicRegionSequence = Sequence([code])
    second.PatientComments = "Follow-up Scan"
    items = [_file(tmp_path / "1.dcm", first), _file(tmp_path / "2.dcm", second)]
    found = _check_both(items, tmp_path)
    assert not found[0]
    assert [r for r in found[1] if "PatientComments" in r[1]]


def test_files_the_bytes_reading_does_not_reproduce_are_declined(tmp_path: Path) -> None:
    ds = _base()
    ds.StudyDescription = "Thorax"
    item = _file(tmp_path / "ok.dcm", ds)
    read_raw(item)
    implicit = _base()
    implicit.StudyDescription = "Thorax"
    path = tmp_path / "implicit.dcm"
    implicit.file_meta = FileMetaDataset()
    implicit.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    implicit.save_as(path, implicit_vr=True, little_endian=True)
    with pytest.raises(Declined):
        read_raw(InputItem(str(path), path))
    nested = _base()
    inner = Dataset()
    inner.SpecificCharacterSet = "ISO_IR 192"
    inner.CodeMeaning = "Thorax"
    nested.AnatomicRegionSequence = Sequence([inner])
    with pytest.raises(Declined):
        read_raw(_file(tmp_path / "nested.dcm", nested))
    tail = tmp_path / "tail.dcm"
    data = (tmp_path / "ok.dcm").read_bytes()
    tail.write_bytes(data + b"\xe0\x7f\x10\x00OW\x00\x00\x02\x00\x00\x00\x00\x00\x11\x00")
    with pytest.raises(Exception):  # noqa: B017 (Declined or the grammar's error: both decline)
        read_raw(InputItem(str(tail), tail))


TEXT = st.text(
    alphabet=st.sampled_from(list("abcJEANdupontÉéèçÃ©0123456789 ^=\\.-/@:()")), max_size=40
)
_JOBS: dict[Path, scan.Job] = {}
CHARSETS = st.sampled_from([None, "ISO_IR 100", "ISO_IR 192", "ISO_IR 6"])
PLACES = [
    ("StudyDescription", "LO"),
    ("ImageComments", "LT"),
    ("InstitutionName", "LO"),
    ("StationName", "SH"),
    ("ReferringPhysicianName", "PN"),
    ("OperatorsName", "PN"),
    ("OtherPatientNames", "PN"),
    ("BodyPartExamined", "CS"),
    ("ContentDate", "DA"),
    ("AcquisitionDateTime", "DT"),
    ("PatientBirthDate", "DA"),
    ("ReferencedSOPInstanceUID", "UI"),
    ("StudyID", "SH"),
    ("DerivationDescription", "ST"),
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    charset=CHARSETS,
    values=st.lists(st.tuples(st.sampled_from(PLACES), TEXT), min_size=1, max_size=8),
    private=st.one_of(st.none(), TEXT),
    nested=st.one_of(st.none(), TEXT),
    marker=st.sampled_from([None, "MODIFIED", "UNMODIFIED"]),
)
def test_generated_headers_read_both_ways_alike(
    tmp_path: Path,
    charset: str | None,
    values: list[tuple[tuple[str, str], str]],
    private: str | None,
    nested: str | None,
    marker: str | None,
) -> None:
    ds = _base(marker)
    if charset is not None:
        ds.SpecificCharacterSet = charset
    for (keyword, vr), text in values:
        if vr in ("DA", "DT", "UI", "CS"):
            text = "".join(c for c in text if (c.isascii() and c.isalnum()) or c in ".\\ ").upper()
            if vr in ("DA", "DT", "UI"):
                text = "".join(c for c in text if c.isdigit() or c in ".\\")
        setattr(ds, keyword, text)
    if private is not None:
        block = ds.private_block(0x0013, "PACSGUARD TEST", create=True)
        block.add_new(0x10, "LO", private)
        block.add_new(0x11, "OB", private.encode("utf-8") + b"\x00")
    if nested is not None:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "1", "99X", nested
        ds.AnatomicRegionSequence = Sequence([code])
    name = uuid.uuid4().hex
    try:
        item = _file(tmp_path / f"{name}.dcm", ds)
    except (UnicodeEncodeError, ValueError, OverflowError):
        return  # pydicom cannot write it: nothing to read
    job = _JOBS.setdefault(tmp_path, job_for(tmp_path))  # one memo across the examples
    fast, slow = scan.check_item(item, job), scan.check_item(item, replace(job, raw=False))
    assert rows(fast.findings) == rows(slow.findings)
    assert fast.groups == slow.groups
    try:
        read_raw(item)
    except Declined:
        return  # a reason to leave it to pydicom (the comparison above still holds)
    assert fast.raw


def test_a_full_memo_is_emptied_and_changes_no_finding(trees: dict[str, Path]) -> None:
    memo = VerdictMemo(entries=3, size=64)
    key = (1, "LO", (), "", b"x" * 40, ("iso8859",))
    memo.put(key, ())
    memo.put((*key[:4], b"y" * 40, key[5]), ())  # 80 bytes held: over the size, emptied first
    assert len(memo.verdicts) == 1 and memo.held == 40
    job = job_for(trees["out"])
    scan.run_state(job).memo = VerdictMemo(entries=3, size=64)
    taken, _ = compare(trees["out"], job, replayed=False)
    assert taken > 20 and len(scan.run_state(job).memo.verdicts) <= 3
