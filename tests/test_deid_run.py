"""End-to-end runs of ``deid`` on the generated corpus: validity, consistency, no leaks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from pacsguard.core.keys import ProjectKey
from pacsguard.core.manifest import DEID_MANIFEST_NAME
from pacsguard.core.pseudonym import Pseudonymizer
from pacsguard.deid import DeidConfig, deidentify
from pacsguard.sample import AnswerKey

# Planted kinds that are patient characteristics or clock times, not identifiers.
NOT_IDENTIFIERS = {"sex", "age", "time"}
KEPT_BY = {
    "retain-institution-identity": {"institution"},
    "retain-device-identity": {"device"},
    "retain-uids": {"uid"},
    "retain-long-full-dates": {"date"},
}


def outputs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.dcm"))


def run(src: Path, out: Path, key: ProjectKey, **config: object) -> object:
    """A run of the header rules: images at risk of burned-in text are kept as they are
    (their default cleaning by OCR is tested in test_pixels_deid and test_deid_state)."""
    config.setdefault("burned_in", "keep")
    return deidentify([src], out, key=key, config=DeidConfig(jobs=2, **config))  # type: ignore[arg-type]


def text_values(ds: Dataset) -> list[str]:
    found: list[str] = []
    for element in ds.iterall():
        if element.VR in ("SQ",) or element.tag == 0x7FE00010:
            continue
        value = element.value
        if isinstance(value, bytes):
            found.append(value.decode("latin-1"))
        elif value is not None:
            found.append(str(value))
    return found


@pytest.fixture(scope="module")
def basic_run(
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    out = tmp_path_factory.mktemp("basic") / "out"
    report = run(sample_corpus[0], out, project_key)
    assert report.quarantine == 0  # type: ignore[attr-defined]
    return out


def leaks(out: Path, answer: AnswerKey, kept: set[str]) -> list[str]:
    planted = [
        p
        for p in answer.planted
        if p.kind not in NOT_IDENTIFIERS | kept and p.location != "pixels" and len(p.value) >= 4
    ]
    found = []
    for path in outputs(out):
        raw = path.read_bytes()
        decoded = " ".join(text_values(pydicom.dcmread(path))).lower()
        for p in planted:
            value = p.value
            forms = {
                value.encode("utf-8"),
                value.upper().encode("utf-8"),
                value.encode("latin-1", "ignore"),
            }
            if any(f and f in raw for f in forms) or value.lower() in decoded:
                found.append(f"{p.kind} at {p.location} of {p.file}")
    return found


def test_every_input_has_one_output(basic_run: Path, sample_corpus: tuple[Path, AnswerKey]) -> None:
    assert len(outputs(basic_run)) == sample_corpus[1].totals.instances


def test_outputs_are_valid_for_pydicom_and_dcmtk(basic_run: Path) -> None:
    for path in outputs(basic_run):
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        if "PixelData" in ds:
            ds.pixel_array  # noqa: B018 - decodes
        result = subprocess.run(["dcmdump", "-q", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "E:" not in result.stderr


def test_no_planted_identifier_survives(
    basic_run: Path, sample_corpus: tuple[Path, AnswerKey]
) -> None:
    assert leaks(basic_run, sample_corpus[1], set()) == []


@pytest.mark.parametrize(
    "options",
    [
        {"retain-long-modified-dates", "clean-descriptors", "clean-structured-content"},
        {"retain-safe-private", "retain-patient-characteristics", "clean-graphics"},
        {"retain-institution-identity", "retain-device-identity", "retain-long-full-dates"},
    ],
    ids=["dates+clean", "private+characteristics", "retain-all"],
)
def test_options_leak_only_what_they_keep(
    options: set[str],
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path: Path,
) -> None:
    report = run(sample_corpus[0], tmp_path / "out", project_key, options=frozenset(options))
    assert report.quarantine == 0  # type: ignore[attr-defined]
    kept = set().union(*(KEPT_BY.get(o, set()) for o in options))
    assert leaks(tmp_path / "out", sample_corpus[1], kept) == []


def test_retain_uids_keeps_every_uid(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    run(sample_corpus[0] / "p01", tmp_path / "out", project_key, options=frozenset({"retain-uids"}))
    originals = {
        u
        for p in sample_corpus[1].patients[:1]
        for s in p.studies
        for x in s.series
        for u in x.sop_instance_uids
    }
    assert {v[3] for v in _ids(tmp_path / "out").values()} == originals


def _ids(out: Path) -> dict[str, tuple[str, str, str, str]]:
    found = {}
    for path in outputs(out):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found[str(path.relative_to(out))] = (
            str(ds.PatientID),
            str(ds.StudyInstanceUID),
            str(ds.SeriesInstanceUID),
            str(ds.SOPInstanceUID),
        )
    return found


def test_same_key_same_pseudonyms_other_key_others(
    basic_run: Path,
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    other_key: ProjectKey,
    tmp_path: Path,
) -> None:
    run(sample_corpus[0], tmp_path / "again", project_key)
    assert _ids(tmp_path / "again") == _ids(basic_run)
    run(sample_corpus[0], tmp_path / "other", other_key)
    mine, theirs = _ids(basic_run), _ids(tmp_path / "other")
    assert set(mine).isdisjoint(theirs)
    assert {v[0] for v in mine.values()}.isdisjoint({v[0] for v in theirs.values()})
    expected = {
        Pseudonymizer(project_key).patient_id(p.patient_id) for p in sample_corpus[1].patients
    }
    assert {v[0] for v in mine.values()} == expected


def test_every_reference_resolves(basic_run: Path) -> None:
    instances, frames = set(), set()
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in outputs(basic_run)]
    for ds in datasets:
        instances.add(str(ds.SOPInstanceUID))
        instances.add(str(ds.StudyInstanceUID))  # RT structure sets reference the study too
        if "FrameOfReferenceUID" in ds:
            frames.add(str(ds.FrameOfReferenceUID))
    references = 0
    for ds in datasets:
        for element in ds.iterall():
            if element.keyword == "ReferencedSOPInstanceUID":
                assert str(element.value) in instances
                references += 1
            if element.keyword in ("ReferencedFrameOfReferenceUID",):
                assert str(element.value) in frames
    assert references > 0


def test_bad_inputs_are_quarantined_and_the_run_goes_on(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    shutil.copytree(sample_corpus[0] / "p01", src / "p01")
    good = sorted(src.rglob("*.dcm"))[0]
    (src / "truncated.dcm").write_bytes(good.read_bytes()[:2000])
    corrupt = bytearray(good.read_bytes())
    corrupt[400:420] = b"\xff" * 20
    (src / "corrupt.dcm").write_bytes(bytes(corrupt))
    (src / "notes.txt").write_text("not dicom")
    (src / "empty.dcm").write_bytes(b"")
    report = run(src, tmp_path / "out", project_key)
    assert report.quarantine >= 4  # type: ignore[attr-defined]
    assert report.output + report.quarantine == report.inputs  # type: ignore[attr-defined]
    quarantine = report.quarantine_dir  # type: ignore[attr-defined]
    assert (tmp_path / "out").resolve() not in quarantine.parents
    reasons = " ".join(p.read_text() for p in quarantine.glob("*.json"))
    assert "truncated" in reasons and "not a DICOM file" in reasons
    manifest = (tmp_path / "out" / DEID_MANIFEST_NAME).read_text()
    assert str(src) not in manifest and "quarantine" in manifest


def test_zip_input_and_mapping_file(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    archive = tmp_path / "in.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((sample_corpus[0] / "p02").rglob("*.dcm")):
            zf.write(path, path.relative_to(sample_corpus[0]).as_posix())
    mapping = tmp_path / "map.csv"
    report = deidentify(
        [archive], tmp_path / "out", key=project_key, config=DeidConfig(mapping_out=mapping, jobs=1)
    )
    assert report.quarantine == 0 and report.output > 0
    assert (mapping.stat().st_mode & 0o777) == 0o600
    text = mapping.read_text()
    patient = sample_corpus[1].patients[1]
    assert (
        f"patient-id,{patient.patient_id},{Pseudonymizer(project_key).patient_id(patient.patient_id)}"
        in text
    )


def test_explicit_patient_mapping(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    patient = sample_corpus[1].patients[0]
    table = tmp_path / "subjects.csv"
    table.write_text(f"original_patient_id,pseudonym_patient_id\n{patient.patient_id},TRIAL-007\n")
    run(sample_corpus[0] / "p01", tmp_path / "out", project_key, patient_map=table)
    ids = {v[0] for v in _ids(tmp_path / "out").values()}
    assert ids == {"TRIAL-007"}


def test_policy_overrides_and_strict_mode(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[rule]]\nkeyword = "BodyPartExamined"\naction = "replace"\nvalue = "CHEST"\n'
        '[[rule]]\nprivate = { creator = "ACME_GEOM 2.1", group = "0019" }\naction = "keep"\n'
    )
    run(sample_corpus[0] / "p01", tmp_path / "out", project_key, policy=policy)
    ds = pydicom.dcmread(outputs(tmp_path / "out")[0])
    if "BodyPartExamined" in ds:
        assert ds.BodyPartExamined == "CHEST"
    run(sample_corpus[0] / "p01", tmp_path / "strict", project_key, strict=True)
    for path in outputs(tmp_path / "strict"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert "StudyDescription" not in ds and "SeriesDescription" not in ds
        assert "Rows" not in ds or "PixelSpacing" in ds or ds.Modality != "CT"


def test_cli_exit_codes_key_from_env_and_no_phi_in_output(
    sample_corpus: tuple[Path, AnswerKey], tmp_path: Path
) -> None:
    key_file = tmp_path / "project.key"
    cli = [sys.executable, "-m", "pacsguard.cli"]
    subprocess.run([*cli, "key", "new", str(key_file)], check=True, capture_output=True)
    src = tmp_path / "src"
    shutil.copytree(sample_corpus[0] / "p03", src)
    env = {**os.environ, "PACSGUARD_KEY_FILE": str(key_file)}
    ok = subprocess.run(
        [*cli, "deid", str(src), str(tmp_path / "out")], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    (src / "junk.dcm").write_bytes(b"junk")
    bad = subprocess.run(
        [*cli, "deid", str(src), str(tmp_path / "out")], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1
    patient = sample_corpus[1].patients[2]
    for stream in (ok.stdout + ok.stderr, bad.stdout + bad.stderr):
        assert patient.family_name.lower() not in stream.lower()
        assert patient.patient_id not in stream
    nokey = subprocess.run(
        [*cli, "deid", str(src), str(tmp_path / "o3")],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PACSGUARD")},
    )
    assert nokey.returncode == 2 and "Traceback" not in nokey.stderr and "key" in nokey.stderr


def _processes_running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_killed_run_resumes_without_loss_or_duplicates(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    for copy in range(8):
        shutil.copytree(sample_corpus[0], src / f"c{copy}")
    inputs = sum(1 for p in src.rglob("*") if p.is_file())
    key_file = tmp_path / "k"
    key_file.write_text(project_key.material.hex())
    key_file.chmod(0o600)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "pacsguard.cli",
        "deid",
        str(src),
        str(out),
        "--key",
        str(key_file),
        "-j",
        "2",
        "--no-pixel-cleaning",
        "--keep-burned-in",  # the kill lands mid-run whatever the files: no OCR needed
    ]
    journal = tmp_path / "out.pacsguard" / "journal.sqlite"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and _journalled(journal) >= inputs // 4:
            break
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    first = _journalled(journal)
    assert 0 < first < inputs, "the kill should land mid-run"
    deadline = time.monotonic() + 10
    while _processes_running(str(out)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _processes_running(str(out)), "the workers must not outlive a killed run"
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    import json

    from pacsguard.core.manifest import Journal

    with Journal(journal) as recorded:
        lines = list(recorded)
    fingerprints = [line.fingerprint for line in lines]
    assert len(set(fingerprints)) == inputs == len(fingerprints)
    assert not list(out.rglob(".tmp-*"))
    files = outputs(out)
    unique = {line.output for line in lines}
    assert len(files) == len(unique) == sample_corpus[1].totals.instances
    manifest = json.loads((out / DEID_MANIFEST_NAME).read_text())
    assert manifest["counts"]["pending"] == 0 and manifest["counts"]["inputs"] == inputs


def test_pixel_data_passes_through_byte_for_byte(
    basic_run: Path, sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey
) -> None:
    pseudo = Pseudonymizer(project_key)
    compressed = 0
    for source in sorted(sample_corpus[0].rglob("*.dcm")):
        ds = pydicom.dcmread(source, force=True)
        if "PixelData" not in ds:
            continue
        new_uid = pseudo.uid(str(ds.SOPInstanceUID))
        (target,) = basic_run.rglob(f"{new_uid}.dcm")
        out = pydicom.dcmread(target)
        assert out.PixelData == ds.PixelData, source.name
        meta = getattr(ds, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        if syntax is not None and syntax.is_compressed:
            assert out.file_meta.TransferSyntaxUID == syntax
            compressed += 1
    assert compressed >= 1


def test_overlays_embedded_in_pixel_bits_are_cleared(
    project_key: ProjectKey, tmp_path: Path
) -> None:
    import numpy as np
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", generate_uid()
    ds.PatientID, ds.Modality = "X1", "OT"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    pixels = np.full((4, 4), 100, dtype=np.uint16) | (1 << 15)  # overlay in bit 15
    ds.PixelData = pixels.tobytes()
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000100, "US", 16)
    ds.add_new(0x60000102, "US", 15)
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "a.dcm", enforce_file_format=True)
    deidentify([tmp_path / "in"], tmp_path / "out", key=project_key, config=DeidConfig(jobs=1))
    (out,) = outputs(tmp_path / "out")
    result = pydicom.dcmread(out)
    assert not any(el.tag.group == 0x6000 for el in result)
    assert (np.frombuffer(result.PixelData, dtype=np.uint16) == 100).all()


def test_clean_graphics_keeps_overlays_without_their_text(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    import numpy as np

    from pacsguard.deid.pixels import ocr

    burned = [b for b in sample_corpus[1].burned_in if b.location == "(6000,3000)"][:1]
    assert burned, "the sample corpus carries a text overlay"
    source = sample_corpus[0].parent / burned[0].file
    (tmp_path / "in").mkdir()
    shutil.copy(source, tmp_path / "in" / "mr.dcm")
    options = frozenset({"clean-graphics"})
    report = deidentify(
        [tmp_path / "in"],
        tmp_path / "out",
        key=project_key,
        config=DeidConfig(jobs=1, options=options),
    )
    assert report.output == 1
    (out,) = outputs(tmp_path / "out")
    ds = pydicom.dcmread(out)
    assert 0x60003000 in ds, "Clean Graphics keeps the overlay"
    rows, cols = int(ds[0x60000010].value), int(ds[0x60000011].value)
    plane = np.unpackbits(np.frombuffer(ds[0x60003000].value, np.uint8), bitorder="little")
    image = plane[: rows * cols].reshape(rows, cols) * np.uint8(255)
    text = " ".join(word.text for word in ocr.find_text(image)).lower()
    assert burned[0].text.lower() not in text
    before = pydicom.dcmread(source)
    plane0 = np.unpackbits(np.frombuffer(before[0x60003000].value, np.uint8), bitorder="little")
    assert plane0[: rows * cols].sum() > plane[: rows * cols].sum()


@pytest.mark.parametrize(
    "options", [frozenset(), frozenset({"retain-long-modified-dates", "clean-descriptors"})]
)
def test_fast_header_writer_matches_pydicom_byte_for_byte(
    options: frozenset[str], sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey
) -> None:
    import copy
    import io

    from pacsguard.deid import fastpath
    from pacsguard.deid.engine import Transformer
    from pacsguard.deid.plan import Rules

    transformer = Transformer(Rules(options=options), Pseudonymizer(project_key))
    checked = 0
    for path in sorted(sample_corpus[0].rglob("*.dcm")):
        source = fastpath.open_fast(path) or fastpath.open_full(path)
        out = transformer.transform(source.dataset, file_meta=source.file_meta).dataset
        reference, fast = io.BytesIO(), io.BytesIO()
        copy.deepcopy(out).save_as(reference, enforce_file_format=True)
        fastpath.write_header(out, fast)
        assert fast.getvalue() == reference.getvalue(), path.name
        checked += 1
    assert checked == sample_corpus[1].totals.instances


@pytest.mark.parametrize(
    "options", [frozenset(), frozenset({"retain-long-modified-dates", "clean-descriptors"})]
)
def test_byte_level_rewriter_changes_no_output_byte(
    options: frozenset[str],
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pacsguard.deid import rawpath
    from pacsguard.sample import generate_ct_corpus

    src = tmp_path / "src"
    shutil.copytree(sample_corpus[0], src / "sample")
    # files whose burned-in text is cleaned take the pydicom path in both runs: their OCR,
    # done twice, was most of this test's time and none of its point
    burned = {b.file for b in sample_corpus[1].burned_in if b.location == "pixels"}
    for name in burned:
        (src / "sample" / name.removeprefix("dicom/")).unlink()
    assert burned
    generate_ct_corpus(src / "ct", files=40, rows=32, cols=32)
    (src / "ct" / "corpus.json").unlink(missing_ok=True)
    (src / "implicit").mkdir()
    for path in sorted((src / "ct").rglob("*.dcm"))[:10]:  # Implicit VR: its own parser
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        ds.SOPInstanceUID = ds.SOPInstanceUID + ".9"
        target = src / "implicit" / path.name
        ds.save_as(target, implicit_vr=True, little_endian=True, enforce_file_format=True)
    used = []
    original = rawpath.rewrite

    def counting(
        header: bytes, transformer: object, layout: object = None, known: object = None
    ) -> object:
        result = original(header, transformer, layout, known)  # type: ignore[arg-type]
        used.append(result is not None)
        return result

    config = DeidConfig(jobs=1, options=options)  # one process: the counter stays visible
    monkeypatch.setattr(rawpath, "rewrite", counting)
    deidentify([src], tmp_path / "raw", key=project_key, config=config)
    monkeypatch.setattr(rawpath, "rewrite", lambda *args, **kwargs: None)
    deidentify([src], tmp_path / "ref", key=project_key, config=config)
    raw = {p.relative_to(tmp_path / "raw"): p.read_bytes() for p in outputs(tmp_path / "raw")}
    ref = {p.relative_to(tmp_path / "ref"): p.read_bytes() for p in outputs(tmp_path / "ref")}
    assert raw == ref
    assert sum(used) >= 50


def test_batches_are_journalled_only_after_their_files_are_durable(
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pacsguard.core.manifest import Journal
    from pacsguard.deid import pipeline

    events: list[str] = []
    real_record = Journal.record_many

    def sync(*paths: Path) -> None:
        events.append("sync")

    def record_many(self: Journal, outcomes: list[object]) -> None:
        events.append(f"journal {len(outcomes)}")
        real_record(self, outcomes)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "sync_filesystems", sync)
    monkeypatch.setattr(Journal, "record_many", record_many)
    monkeypatch.setattr(pipeline, "BATCH", 5)
    report = deidentify(
        [sample_corpus[0]],
        tmp_path / "out",
        key=project_key,
        config=DeidConfig(jobs=1, burned_in="keep"),
    )
    assert report.output == report.inputs > 5
    assert events[0::2] == ["sync"] * (len(events) // 2)
    assert sum(int(e.split()[1]) for e in events[1::2]) == report.inputs

    def failing_sync(*paths: Path) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(pipeline, "sync_filesystems", failing_sync)
    from pacsguard.core.errors import OutputError

    with pytest.raises(OutputError, match=r"cannot write the outputs to disk \(sync\)"):
        deidentify(
            [sample_corpus[0]],
            tmp_path / "again",
            key=project_key,
            config=DeidConfig(jobs=1, burned_in="keep"),
        )
    journal = tmp_path / "again.pacsguard" / "journal.sqlite"
    assert not journal.exists() or _journalled(journal) == 0


@pytest.mark.parametrize("jobs", [1, 2])
def test_full_disk_stops_the_run_without_quarantining_inputs(
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    jobs: int,
) -> None:
    import errno

    from pacsguard.core.errors import OutputError
    from pacsguard.deid import fastpath

    real_copy, real_hashed = fastpath.copy_range, fastpath.copy_hashed
    calls = {"n": 0}

    def fill() -> None:
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")

    def full_disk(src: int, dst: int, offset: int, count: int) -> None:
        fill()
        real_copy(src, dst, offset, count)

    def full_disk_hashed(src: int, dst: int, offset: int, count: int, *rest: Any) -> None:
        fill()
        real_hashed(src, dst, offset, count, *rest)

    monkeypatch.setattr(fastpath, "copy_range", full_disk)
    monkeypatch.setattr(fastpath, "copy_hashed", full_disk_hashed)
    out = tmp_path / "out"
    config = DeidConfig(jobs=jobs, burned_in="keep")
    with pytest.raises(OutputError, match=r"No space left on device.*run the same command again"):
        deidentify([sample_corpus[0]], out, key=project_key, config=config)
    quarantine = tmp_path / "out.pacsguard" / "quarantine"
    assert not list(quarantine.iterdir()), "a full disk is not the inputs' fault"
    monkeypatch.setattr(fastpath, "copy_range", real_copy)
    monkeypatch.setattr(fastpath, "copy_hashed", real_hashed)
    report = deidentify([sample_corpus[0]], out, key=project_key, config=config)
    assert report.quarantine == 0 and report.output == report.inputs
    assert report.duplicates == 0 and len(outputs(out)) == sample_corpus[1].totals.instances
    assert not list(out.rglob(".tmp-*"))


def _journalled(journal: Path) -> int:
    """Records committed in a run's journal (read as another process would)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM outcomes").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_run_figures_count_bytes_and_quarantine_as_it_goes(
    sample_corpus: tuple[Path, AnswerKey], tmp_path: Path
) -> None:
    """What the progress bar shows (MB/s, quarantined so far) is the run's own account."""
    from pacsguard.deid import RunFigures

    src = tmp_path / "in"
    shutil.copytree(sample_corpus[0], src)
    good = next(src.rglob("*.dcm"))
    (src / "truncated.dcm").write_bytes(good.read_bytes()[:2000])
    figures = RunFigures()
    quarantined_seen: list[int] = []
    report = deidentify(
        [src],
        tmp_path / "out",
        key=ProjectKey(bytes(32)),
        config=DeidConfig(jobs=2),
        figures=figures,
        progress=lambda done, total: quarantined_seen.append(figures.quarantined),
    )
    assert report.quarantine >= 1 and figures.quarantined == report.quarantine
    assert figures.bytes_done == sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    assert quarantined_seen[-1] == report.quarantine
