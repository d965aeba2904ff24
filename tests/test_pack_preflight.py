"""pack refuses what must not travel, unless --force --reason (recorded in the manifest)."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pacsguard.core.errors import InputError
from pacsguard.pack import MANIFEST_NAME, PackRefused, pack, preflight, unpack
from test_pack_support import (
    Keys,
    deid_manifest,
    files_of,
    no_leftovers,
    write_dicom,
)


def test_a_clean_tree_passes(tree: Path) -> None:
    assert preflight(tree, ocr=False) == []


@pytest.mark.parametrize(
    ("counts", "message"),
    [({"quarantine": 2}, "2 quarantined"), ({"pending": 1}, "1 unprocessed")],
)
def test_quarantined_or_pending_inputs_are_refused(
    tree: Path, keys: Keys, tmp_path: Path, counts: dict[str, int], message: str
) -> None:
    deid_manifest(tree, **counts)
    with pytest.raises(PackRefused, match=message):
        pack(tree, tmp_path / "p.age", recipients=[keys.recipient], ocr=False)
    assert not (tmp_path / "p.age").exists() and no_leftovers(tmp_path)


def test_force_with_reason_is_recorded(tree: Path, keys: Keys, tmp_path: Path) -> None:
    deid_manifest(tree, quarantine=1)
    with pytest.raises(InputError, match="--reason"):
        pack(tree, tmp_path / "p.age", recipients=[keys.recipient], force=True, ocr=False)
    reason = "quarantined file is a scout, reviewed by J. (DPO ticket 42)"
    done = pack(
        tree, tmp_path / "p.age", recipients=[keys.recipient], force=True, reason=reason, ocr=False
    )
    assert done.forced and any("1 quarantined" in p for p in done.problems)
    opened = unpack(tmp_path / "p.age", tmp_path / "out", identity=keys.identity)
    recorded = opened.manifest["preflight"]
    assert recorded["forced"] is True and recorded["reason"] == reason
    assert recorded["problems"] == list(done.problems)
    assert opened.forced


def test_missing_deid_manifest_is_refused(tree: Path, keys: Keys, tmp_path: Path) -> None:
    (tree / "pacsguard-deid.json").unlink()
    with pytest.raises(PackRefused, match="no de-identification manifest"):
        pack(tree, tmp_path / "p.age", recipients=[keys.recipient], ocr=False)
    (tree / "pacsguard-deid.json").write_text("{not json")
    with pytest.raises(PackRefused, match="not valid JSON"):
        pack(tree, tmp_path / "p.age", recipients=[keys.recipient], ocr=False)


def test_a_file_outside_the_deid_manifest_is_refused(
    tree: Path, keys: Keys, tmp_path: Path
) -> None:
    write_dicom(tree / "dropped-in" / "original.dcm", 99)
    with pytest.raises(PackRefused, match=r"1 file.* not in the de-identification manifest"):
        pack(tree, tmp_path / "p.age", recipients=[keys.recipient], ocr=False)


def test_a_file_changed_since_deid_is_refused(tree: Path, keys: Keys, tmp_path: Path) -> None:
    victim = next(tree.rglob("*.dcm"))
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF  # same size: only the streamed SHA-256 can tell
    victim.write_bytes(bytes(data))
    with pytest.raises(PackRefused, match=r"1 file.* differ from the de-identification manifest"):
        pack(tree, tmp_path / "p.age", recipients=[keys.recipient], ocr=False)
    assert not (tmp_path / "p.age").exists() and no_leftovers(tmp_path)


@dataclass(frozen=True)
class _Finding:
    file: str
    location: str
    kind: str
    value: str = field(default="", repr=False)


@dataclass(frozen=True)
class _Report:
    findings: list[_Finding]
    files_checked: int = 2

    @property
    def clean(self) -> bool:
        return not self.findings

    @property
    def failing(self) -> list[_Finding]:
        return self.findings


def test_verify_findings_are_refused_without_the_values(
    tree: Path, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Path, bool]] = []

    def flagging(
        path: Path, *, mapping: Path | None = None, ocr: bool = True, strict: bool = False
    ) -> _Report:
        calls.append((path, ocr))
        return _Report([_Finding("a.dcm", "(0010,0010)", "person-name", value="DOE^JOHN")] * 2)

    monkeypatch.setattr(importlib.import_module("pacsguard.verify"), "verify", flagging)
    with pytest.raises(PackRefused, match=r"verify flags 2 finding\(s\) \(person-name: 2\)") as err:
        pack(tree, tmp_path / "p.age", recipients=[keys.recipient], ocr=True)
    assert "DOE" not in str(err.value) and calls == [(tree, True)]
    done = pack(tree, tmp_path / "p.age", recipients=[keys.recipient], force=True, reason="r")
    opened = unpack(tmp_path / "p.age", tmp_path / "out", identity=keys.identity)
    assert "DOE" not in files_of(tmp_path / "out")[MANIFEST_NAME].decode()
    assert done.problems == ("pacsguard verify flags 2 finding(s) (person-name: 2)",)
    assert opened.forced


def test_no_verifier_fails_closed(
    tree: Path, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(importlib.import_module("pacsguard.verify"), "verify", raising=False)
    with pytest.raises(PackRefused, match=r"verifier .* not available"):
        pack(tree, tmp_path / "p.age", recipients=[keys.recipient], ocr=False)


def test_the_real_verifier_stops_a_planted_name(keys: Keys, tmp_path: Path) -> None:
    import pydicom

    from test_pack_support import make_tree

    tree = make_tree(tmp_path / "deid-out")
    victim = next(tree.rglob("*.dcm"))
    ds = pydicom.dcmread(victim)
    ds.PatientName = "DUPONT^JEAN"
    ds.ReferringPhysicianName = "MARTIN^PAUL"
    ds.save_as(victim)
    deid_manifest(tree)
    with pytest.raises(PackRefused, match="verify flags"):
        pack(tree, tmp_path / "p.age", recipients=[keys.recipient], ocr=False)


def test_links_in_the_folder_are_refused(tree: Path, keys: Keys, tmp_path: Path) -> None:
    (tree / "link.dcm").symlink_to(next(tree.rglob("*.dcm")))
    with pytest.raises(InputError, match="symbolic link"):
        pack(tree, tmp_path / "p.age", recipients=[keys.recipient], ocr=False)
    (tree / "link.dcm").unlink()
    (tree / MANIFEST_NAME).write_text("{}")
    with pytest.raises(InputError, match="reserved"):
        pack(tree, tmp_path / "p.age", recipients=[keys.recipient], ocr=False)


def test_the_deid_settings_travel(tree: Path, keys: Keys, tmp_path: Path) -> None:
    pack(tree, tmp_path / "p.age", recipients=[keys.recipient], ocr=False)
    opened = unpack(tmp_path / "p.age", tmp_path / "out", identity=keys.identity)
    deid = json.loads((tree / "pacsguard-deid.json").read_text())
    assert opened.manifest["deid"] == {
        "tool": "pacsguard",
        "version": deid["version"],
        "profile": deid["profile"],
        "counts": deid["counts"],
    }


def test_a_tree_deid_verified_is_checked_by_its_hashes(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deid --verify checked every output: pack matches hashes instead of verifying again,
    and a file changed since still refuses the package."""
    from pacsguard.core.keys import ProjectKey
    from pacsguard.deid import DeidConfig, deidentify
    from pacsguard.sample import generate

    corpus = generate(tmp_path / "s", seed=3, patients=1)
    del corpus
    out = tmp_path / "out"
    config = DeidConfig(verify=True, jobs=1)
    report = deidentify([tmp_path / "s" / "dicom"], out, key=ProjectKey(bytes(32)), config=config)
    assert report.quarantine == 0
    calls: list[Path] = []
    monkeypatch.setattr(
        importlib.import_module("pacsguard.pack.preflight"),
        "run_verify",
        lambda directory, ocr=True, strict=False: calls.append(directory) or ["verify ran"],
    )
    assert preflight(out, ocr=False) == [] and calls == []
    pack(out, tmp_path / "p.age", recipients=[keys.recipient], ocr=False)
    victim = next(out.rglob("*.dcm"))
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(PackRefused, match="differ from the de-identification manifest"):
        pack(out, tmp_path / "q.age", recipients=[keys.recipient], ocr=False)


def _review_only_tree(tmp_path: Path) -> Path:
    """A deid --verify output where one output keeps a free-text value verify cannot prove
    safe (a review finding, not an identifier)."""
    import pydicom

    from pacsguard.core.keys import ProjectKey
    from pacsguard.deid import DeidConfig, deidentify
    from pacsguard.sample import generate

    generate(tmp_path / "s", seed=5, patients=1)
    source = next((tmp_path / "s" / "dicom").rglob("*.dcm"))
    ds = pydicom.dcmread(source)
    ds.SeriesDescription = "Echo cardiaque"  # a lexicon word, no evidence of a person
    ds.save_as(source)
    out = tmp_path / "out"
    config = DeidConfig(verify=True, jobs=1, options=frozenset({"clean-descriptors"}))
    report = deidentify([tmp_path / "s" / "dicom"], out, key=ProjectKey(bytes(32)), config=config)
    assert report.quarantine == 0
    return out


def test_deid_verify_writes_review_findings_and_pack_strict_refuses(
    keys: Keys, tmp_path: Path
) -> None:
    """A review finding does not quarantine under deid --verify: the output is written and
    counted, pack passes it by default and refuses it under --strict."""
    from pacsguard.verify import verify

    out = _review_only_tree(tmp_path)
    counts = json.loads((out / "pacsguard-deid.json").read_text())["counts"]
    strict_report = verify(out, ocr=False, strict=True)
    assert not strict_report.identifiers
    assert counts["review"] == len({f.file for f in strict_report.reviews}) > 0
    pack(out, tmp_path / "p.age", recipients=[keys.recipient], ocr=False)
    with pytest.raises(PackRefused, match=r"output\(s\) with review findings \(--strict\)"):
        pack(out, tmp_path / "q.age", recipients=[keys.recipient], ocr=False, strict=True)
    assert not (tmp_path / "q.age").exists()


def test_pack_strict_verifies_a_tree_that_does_not_count_reviews(
    keys: Keys, tmp_path: Path
) -> None:
    out = _review_only_tree(tmp_path)
    doc = json.loads((out / "pacsguard-deid.json").read_text())
    del doc["counts"]["review"]  # a manifest of an earlier version: reviews unknown
    (out / "pacsguard-deid.json").write_text(json.dumps(doc))
    with pytest.raises(PackRefused, match=r"verify flags \d+ finding"):
        pack(out, tmp_path / "q.age", recipients=[keys.recipient], ocr=False, strict=True)


def test_a_tree_without_dicom_is_not_vouched_for(keys: Keys, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    deid_manifest(empty)
    assert preflight(empty, ocr=False) == ["pacsguard verify found no DICOM file to check"]
