"""Trees for the verify tests and bench: real DICOM files that installed packages ship, and the
sample corpus, de-identified; and the same outputs with identifiers planted after the fact."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from pacsguard.verify import Finding


def real_dicom_files() -> list[Path]:
    """Every readable DICOM file (with pixel data or not) shipped by installed packages:
    pydicom's test files, pynetdicom's, highdicom's when installed. Duplicates by content
    dropped."""
    roots: list[Path] = []
    for name in ("pydicom", "pynetdicom", "highdicom"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            roots.append(Path(spec.origin).parent)
    seen: set[str] = set()
    found: list[Path] = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.suffix in (".py", ".pyc", ".pyi", ".json", ".txt"):
                continue
            try:
                with path.open("rb") as handle:
                    head = handle.read(132)
                if head[128:132] != b"DICM":
                    continue
                pydicom.dcmread(path, stop_before_pixels=True)
            except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, AttributeError):
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            found.append(path)
    return found


def copy_real_files(target: Path) -> Path:
    """The real files under ``target``, one folder per package, names kept."""
    for path in real_dicom_files():
        package = next(p for p in path.parts if p in ("pydicom", "pynetdicom", "highdicom"))
        dest = target / package / path.name
        n = 1
        while dest.exists():
            dest = target / package / f"{path.stem}-{n}{path.suffix}"
            n += 1
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return target


# --- identifiers planted after de-identification ------------------------------------------
# Names from the sample generator's pools (hand-picked French and English names, not drawn
# from the lexicons the detector uses) and its staff list.
def plant_names() -> list[tuple[str, str]]:
    """(given, family) pairs, deterministic."""
    from pacsguard.sample import identities as ids

    given = [*ids.FRENCH_GIVEN_F, *ids.FRENCH_GIVEN_M, *ids.ENGLISH_GIVEN_F, *ids.ENGLISH_GIVEN_M]
    family = [*ids.FRENCH_FAMILY, *ids.ENGLISH_FAMILY]
    pairs = [(given[i % len(given)], family[(i * 7) % len(family)]) for i in range(40)]
    pairs += [(g, f.title()) for f, g in ids.STAFF]
    return pairs


def valid_nir(i: int) -> str:
    from pacsguard.core.nir import nir_key

    first13 = (
        f"{1 + i % 2}{50 + i % 40:02d}{1 + i % 12:02d}{10 + i % 80:02d}{100 + i:03d}{200 + i:03d}"
    )
    key = nir_key(first13)
    n = first13 + f"{key:02d}"
    return f"{n[0]} {n[1:3]} {n[3:5]} {n[5:7]} {n[7:10]} {n[10:13]} {n[13:]}"


@dataclass(frozen=True)
class Plant:
    """One identifier planted in one file: the location fragment a finding must name."""

    file: str
    kind: str  # person-name, patient-id, birth-date, phone, nir, email
    form: str
    place: str
    fragment: str
    shaped: bool  # findable without a mapping (a shape, a label, a name)


def _form_texts(
    i: int, given: str, family: str, pid: str, birth: str
) -> list[tuple[str, str, str, bool]]:
    """(kind, form, text, shaped) for the i-th plant round."""
    y, m, d = birth[:4], birth[4:6], birth[6:8]
    return [
        ("person-name", "dicom", f"{family.upper()}^{given.upper()}", True),
        ("person-name", "given-family", f"{given} {family}", True),
        ("person-name", "FAMILY-given", f"{family.upper()} {given}", True),
        ("person-name", "sentence", f"Examen de {given} {family.upper()} ce jour", True),
        ("person-name", "label", f"Patient: {family} {given}", True),
        ("person-name", "title", f"vu par Dr {family}", True),
        ("patient-id", "labelled", f"IPP: {pid}", True),
        ("patient-id", "bare", pid, False),
        ("birth-date", "labelled", f"né le {d}/{m}/{y}", True),
        ("birth-date", "bare", birth, False),
        ("phone", "fr", f"tel {('06', '01', '07')[i % 3]} 12 34 {50 + i % 40} 78", True),
        ("phone", "intl", f"+33 6 {10 + i % 80} 34 56 78", True),
        ("nir", "spaced", valid_nir(i), True),
        ("email", "plain", f"{given.lower()}.{family.lower()}@example.fr", True),
    ]


def _put(ds: Dataset, place: str, text: str) -> str:
    """Write ``text`` at ``place``; returns the location fragment verify must report."""
    if place == "code-meaning":
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D0050", "SRT", text
        ds.AnatomicRegionSequence = [item]
        return "AnatomicRegionSequence[0] > (0008,0104)"
    if place == "private-lo":
        ds.private_block(0x0011, "ACME 1.0", create=True).add_new(0x01, "LO", text)
        return "(0011,1001)"
    if place == "private-un":
        ds.private_block(0x0011, "ACME 1.0", create=True).add_new(0x02, "UN", text.encode() + b"\0")
        return "(0011,1002)"
    if place == "sr-text":
        item = Dataset()
        item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", text
        ds.ContentSequence = [item]
        return "ContentSequence[0] > (0040,A160)"
    if place == "wrong-vr":
        ds.add(DataElement(0x00081030, "UN", text.encode("utf-8")))  # StudyDescription as UN
        return "(0008,1030)"
    if place == "unknown-tag":
        ds.add(DataElement(0x00100099, "LO", text))  # a public tag no dictionary knows
        return "(0010,0099)"
    raise ValueError(place)


PLACES = ("code-meaning", "private-lo", "private-un", "sr-text", "wrong-vr", "unknown-tag")


def mapping_originals(mapping: Path, kind: str) -> list[str]:
    with mapping.open(encoding="utf-8", newline="") as handle:
        return [row["original"] for row in csv.DictReader(handle) if row["kind"] == kind]


def plant_tree(clean: Path, mapping: Path, target: Path) -> tuple[list[Plant], Path]:
    """A copy of the de-identified tree ``clean`` with one identifier planted per file (never
    in images at risk: those are for OCR), and the mapping extended with the planted
    originals (the names, IDs and birth dates of those patients). Returns the plants and
    the extended mapping's path."""
    from pacsguard.deid.pixels import needs_pixel_cleaning

    shutil.copytree(clean, target)
    files = [
        p
        for p in sorted(target.rglob("*.dcm"))
        if not needs_pixel_cleaning(pydicom.dcmread(p, stop_before_pixels=True))
    ]
    ids = [i for i in mapping_originals(mapping, "patient-id") if sum(c.isdigit() for c in i) >= 5]
    births = [
        b
        for b in mapping_originals(mapping, "birth-date")
        if len(b) == 8 and b.isdigit() and 1900 < int(b[:4]) < 2030
    ]
    names = plant_names()
    plants: list[Plant] = []
    extra: list[tuple[str, str]] = []
    # every (kind, form) in every place: rotate places across rounds
    rounds = []
    for i, (given, family) in enumerate(names):
        pid, birth = ids[i % len(ids)], births[i % len(births)]
        for j, (kind, form, text, shaped) in enumerate(_form_texts(i, given, family, pid, birth)):
            rounds.append((kind, form, text, shaped, PLACES[(i + j) % len(PLACES)]))
        extra += [("patient-name", f"{family}^{given}")]
    for path, (kind, form, text, shaped, place) in zip(files, rounds, strict=False):
        ds = pydicom.dcmread(path)
        fragment = _put(ds, place, text)
        ds.save_as(path)
        rel = path.relative_to(target).as_posix()
        plants.append(Plant(rel, kind, form, place, fragment, shaped))
    extended = target.parent / f"{target.name}-mapping.csv"
    shutil.copyfile(mapping, extended)
    with extended.open("a", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        for kind, original in extra:
            writer.writerow([kind, original, ""])
    return plants, extended


def recall(plants: list[Plant], findings: list[Finding]) -> dict[str, tuple[int, int]]:
    """(flagged as identifier, planted) per kind and form: a plant counts when an identifier
    finding of its file names its location."""
    hit: dict[str, list[int]] = {}
    for plant in plants:
        found = any(
            f.file == plant.file
            and plant.fragment in f.location
            and f.finding_class == "identifier"
            for f in findings
        )
        for key in (plant.kind, f"{plant.kind}/{plant.form}", f"place/{plant.place}"):
            counts = hit.setdefault(key, [0, 0])
            counts[0] += int(found)
            counts[1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(hit.items())}
