"""deid against hostile and damaged input (issue 13, classes 1-6 and 9): property tests.

Every test mutates files of the sample generator (or pydicom's own test files) with the
strategies of ``pacsguard.sample.mutate``, runs ``deidentify`` and asserts the three
guarantees: no planted value under OUTPUT (raw bytes, case-insensitive, UTF-8, Latin-1 and
accent-folded), every input accounted for exactly once in the run's manifest, and a
quarantine reason a person can read (not an exception class name).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, deidentify, pipeline
from pacsguard.sample import AnswerKey
from pacsguard.sample.mutate import (
    IDENTITY_TAGS,
    KEPT_TAGS,
    PATIENT_NAME,
    PLANT_PLACES,
    Mutation,
    NotApplicable,
    Strategy,
    contains_value,
    patient_values,
    plant,
    pydicom_test_files,
    relabel,
    strategies,
    swallow,
    try_walk,
    uniquify,
    walk,
)

UNREADABLE = re.compile(r"\(\w+Error\)$")
SETTINGS = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # the inputs are random seeds: no shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Small explicit VR little endian files of each patient: CT slice, RT Structure Set, SR.
SEED_FILES = ("st01/se01/IM0002.dcm", "st01/se02/IM0001.dcm", "st01/se03/IM0001.dcm")
CODE_MEANING = 0x00080104


PYDICOM_FILES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "test-SR.dcm",
    "MR_small_bigendian.dcm",
    "77654033/CR2/6247",  # a 16x16 CR image
)


class Seeds:
    """The files mutated, with the identity values of their patient: small explicit VR
    files of the sample generator (CT slice, RT Structure Set, SR of each patient) and
    files pydicom ships, with their own Patient's Name and ID as the planted values."""

    def __init__(self, root: Path, answer: AnswerKey) -> None:
        self.files: list[tuple[bytes, tuple[str, ...], int]] = []
        for index, patient in enumerate(answer.patients):
            values = patient_values(patient)
            for name in SEED_FILES:
                path = root / f"p{index + 1:02d}" / name
                data = path.read_bytes()
                if walk(data).syntax == "1.2.840.10008.1.2.1":
                    self.files.append((data, values, index))
        self.sample = len(self.files)
        self.files += [(data, values, -1) for data, values in pydicom_seeds()]

    def pick(
        self, rng: random.Random, sample_only: bool = False
    ) -> tuple[bytes, tuple[str, ...], int]:
        return rng.choice(self.files[: self.sample] if sample_only else self.files)

    def of_patient(self, patient: int) -> list[bytes]:
        return [data for data, _, who in self.files if who == patient]


def pydicom_seeds() -> list[tuple[bytes, tuple[str, ...]]]:
    shipped = pydicom_test_files()
    found = []
    for name in PYDICOM_FILES:
        path = next(p for p in shipped if p.match(name))
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        names = {str(ds.get("PatientName", "")), str(ds.get("PatientID", ""))}
        found.append((path.read_bytes(), tuple(v for v in names if len(v) >= 5)))
    return found


@pytest.fixture(scope="module")
def seeds(sample_corpus: tuple[Path, AnswerKey]) -> Seeds:
    return Seeds(*sample_corpus)


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per hypothesis example (tmp_path is shared by all of them)."""
    folder = Path(tempfile.mkdtemp(prefix="hostile-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def by_name(values: tuple[str, ...], name: str) -> Strategy:
    return next(s for s in strategies(values) if s.name == name)


def mutated(
    seeds: Seeds, name: str, rng: random.Random, sample_only: bool = False
) -> tuple[Mutation, tuple[str, ...], int]:
    """A mutant of ``name`` from some seed (trying others when it does not apply)."""
    for attempt in range(40):
        data, values, patient = seeds.pick(rng, sample_only)
        try:
            return by_name(values, name).mutate(uniquify(data, attempt + 1), rng), values, patient
        except NotApplicable:
            continue
    raise AssertionError(f"strategy {name} applies to no seed")


def run(
    inputs: list[Path], out: Path, key: ProjectKey, jobs: int = 1, **config: object
) -> list[dict[str, object]]:
    """``deidentify`` the inputs (in the order given); returns the local manifest."""
    state = out.with_name(out.name + ".state")
    deidentify(inputs, out, key=key, config=DeidConfig(jobs=jobs, state_dir=state, **config))  # type: ignore[arg-type]
    raw = json.loads((state / "manifest.json").read_text(encoding="utf-8"))
    records = raw if isinstance(raw, list) else raw.get("outcomes", raw.get("files", []))
    return list(records)


def check(
    inputs: list[Path], out: Path, manifest: list[dict[str, object]], values: tuple[str, ...]
) -> None:
    """The three guarantees of every hostile-input test."""
    leaked = [
        str(path.relative_to(out))
        for path in sorted(out.rglob("*"))
        if path.is_file() and any(contains_value(path.read_bytes(), v) for v in values)
    ]
    assert not leaked, f"a planted value is under OUTPUT in {len(leaked)} file(s)"
    listed = [str(r["input"]) for r in manifest]
    for path in inputs:
        assert listed.count(str(path)) == 1, f"{path.name} is not accounted for exactly once"
    for record in manifest:
        if record["status"] == "quarantine":
            reason = str(record.get("reason") or "").strip()
            assert reason and not UNREADABLE.search(reason), f"unreadable reason: {reason!r}"


def one_file(key: ProjectKey, data: bytes, values: tuple[str, ...]) -> list[dict[str, object]]:
    """One input alone through ``deidentify``, checked; returns its manifest."""
    with scratch() as tmp:
        (tmp / "in").mkdir()
        path = tmp / "in" / "mutant.dcm"
        path.write_bytes(data)
        manifest = run([path], tmp / "out", key)
        check([path], tmp / "out", manifest, values)
        return manifest


def one_mutant_run(seeds: Seeds, key: ProjectKey, name: str, seed: int) -> None:
    mutation, values, _ = mutated(seeds, name, random.Random(seed))
    one_file(key, mutation.data, values)


# -- class 1: state carried from one file to the next ---------------------------------------


MALFORMED = ("wrong-vr", "length-corrupt", "bit-flip", "truncate", "tag-neighbour", "charset")


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), how=st.sampled_from(("name-as-OF", *MALFORMED)))
@example(seed=70907544, how="bit-flip")
def test_a_malformed_file_leaves_nothing_for_the_next(
    seeds: Seeds, project_key: ProjectKey, seed: int, how: str
) -> None:
    """A malformed file of a patient, then a clean file of the same patient, in one run
    (one worker): the clean file's output is the one it gets alone, and nothing leaks."""
    rng = random.Random(seed)
    if how == "name-as-OF":
        data, values, patient = seeds.pick(rng, sample_only=True)
        first = relabel(uniquify(data, 1), PATIENT_NAME, "OF")
    else:
        mutation, values, patient = mutated(seeds, how, rng, sample_only=True)
        first = mutation.data
    clean = rng.choice(seeds.of_patient(patient))
    with scratch() as tmp:
        (tmp / "a").mkdir()
        (tmp / "a" / "0-malformed.dcm").write_bytes(first)
        (tmp / "a" / "1-clean.dcm").write_bytes(uniquify(clean, 2))
        inputs = [tmp / "a" / "0-malformed.dcm", tmp / "a" / "1-clean.dcm"]
        together = run(inputs, tmp / "together", project_key)
        check(inputs, tmp / "together", together, values)
        alone = run(inputs[1:], tmp / "alone", project_key)
        out_together = next(r["output"] for r in together if r["input"] == str(inputs[1]))
        out_alone = next(r["output"] for r in alone if r["input"] == str(inputs[1]))
        assert out_together == out_alone
        assert (tmp / "together" / str(out_together)).read_bytes() == (
            tmp / "alone" / str(out_alone)
        ).read_bytes(), "the clean file's output depends on the file before it"


# -- class 2: a length field that swallows the following elements ---------------------------


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
@example(seed=5)
def test_a_length_that_swallows_elements_leaks_nothing(
    seeds: Seeds, project_key: ProjectKey, seed: int
) -> None:
    one_mutant_run(seeds, project_key, "length-swallow", seed)


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    kept=st.sampled_from(KEPT_TAGS),
    payload=st.lists(st.sampled_from(sorted(IDENTITY_TAGS)), min_size=1, max_size=3),
)
@example(seed=181179, kept=0x00080016, payload=[0x00100020])
def test_a_kept_element_that_swallows_identity_elements_leaks_nothing(
    seeds: Seeds, project_key: ProjectKey, seed: int, kept: int, payload: list[int]
) -> None:
    """Modality (or SOP Class UID, Manufacturer...) whose length covers copies of the
    file's own identity elements: their bytes must not reach the output verbatim."""
    data, values, _ = seeds.pick(random.Random(seed))
    try:
        mutant = swallow(uniquify(data, 1), kept, payload)
    except NotApplicable:
        return
    one_file(project_key, mutant, values)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_corrupt_lengths_and_truncations_leak_nothing(
    seeds: Seeds, project_key: ProjectKey, seed: int
) -> None:
    rng = random.Random(seed)
    one_mutant_run(seeds, project_key, rng.choice(("length-corrupt", "truncate")), seed)


# -- class 3: a wrong VR on kept text -------------------------------------------------------


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), vr=st.sampled_from(("FD", "DS", "OB", "UN", "OF", "US")))
@example(seed=0, vr="FD")
def test_kept_text_with_a_wrong_vr_is_still_swept(
    seeds: Seeds, project_key: ProjectKey, seed: int, vr: str
) -> None:
    """A Code Meaning holding the patient's name, re-labelled FD, DS, OB...: the bytes are
    the name still, and must not survive."""
    rng = random.Random(seed)
    data, values, _ = seeds.pick(rng)
    value = rng.choice([v for v in values if "^" in v or " " in v] or list(values))
    try:
        planted = plant(uniquify(data, 1), "code-meaning", value, rng)
        layout = walk(planted)
        if layout.implicit:
            return  # implicit VR: no VR in the bytes to lie about
    except NotApplicable:
        return
    occurrence = next(
        k
        for k, index in enumerate(layout.find(CODE_MEANING))
        if contains_value(layout.value(layout.elements[index]), value)
    )
    one_file(project_key, relabel(planted, CODE_MEANING, vr, occurrence), values)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
@example(seed=2)
def test_wrong_vrs_anywhere_leak_nothing(seeds: Seeds, project_key: ProjectKey, seed: int) -> None:
    one_mutant_run(seeds, project_key, "wrong-vr", seed)


# -- class 4: a tag one byte away from an identity tag --------------------------------------


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
@example(seed=3)
def test_an_identity_tag_one_byte_away_is_not_kept(
    seeds: Seeds, project_key: ProjectKey, seed: int
) -> None:
    one_mutant_run(seeds, project_key, "tag-neighbour", seed)


# -- class 5: the sweep must not hang on one exact Patient's Name ---------------------------


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    how=st.sampled_from(("name-trick", "remove", "duplicate", "after-pixel")),
    place=st.sampled_from(("description", "sr-text", "private-block")),
)
def test_names_elsewhere_are_swept_whatever_patients_name_holds(
    seeds: Seeds, project_key: ProjectKey, seed: int, how: str, place: str
) -> None:
    """The patient's name in a description, SR text or private block (swept when the file
    is intact), then Patient's Name missing, with a NUL, a backslash, one byte changed, or
    a second copy (after Pixel Data): the name elsewhere must still go."""
    rng = random.Random(seed)
    for attempt in range(40):
        data, values, _ = seeds.pick(rng)
        names = [v for v in values if any(c.isalpha() for c in v)]
        try:
            planted = plant(uniquify(data, attempt + 1), place, rng.choice(names), rng)
            mutation = by_name(values, how).mutate(planted, rng)
        except NotApplicable:
            continue
        one_file(project_key, mutation.data, values)
        return


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), place=st.sampled_from(PLANT_PLACES))
@example(seed=234, place="wrong-vr-copy")
def test_identity_planted_in_kept_places_is_swept(
    seeds: Seeds, project_key: ProjectKey, seed: int, place: str
) -> None:
    rng = random.Random(seed)
    data, values, _ = seeds.pick(rng)
    try:
        mutant = plant(uniquify(data, 1), place, rng.choice(values), rng)
    except NotApplicable:
        return
    one_file(project_key, mutant, values)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), how=st.sampled_from(("after-pixel", "deep-nesting")))
@example(seed=73, how="after-pixel")
@example(seed=5, how="deep-nesting")
def test_identity_after_pixel_data_or_deep_in_sequences_is_swept(
    seeds: Seeds, project_key: ProjectKey, seed: int, how: str
) -> None:
    one_mutant_run(seeds, project_key, how, seed)


# -- class 6: character sets ---------------------------------------------------------------


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
@example(seed=78)
def test_character_set_tricks_leak_nothing(
    seeds: Seeds, project_key: ProjectKey, seed: int
) -> None:
    """Specific Character Set changed (ISO_IR 126, GBK, ISO 2022...), removed, or UTF-8 text
    written into a Latin-1 file and the other way round."""
    one_mutant_run(seeds, project_key, "charset", seed)


# -- class 9: a second Pixel Data ----------------------------------------------------------


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
@example(seed=0)
def test_a_second_pixel_data_never_replaces_the_image(
    seeds: Seeds, project_key: ProjectKey, seed: int
) -> None:
    """Quarantined with a reason, or written with the first (the real) image unchanged;
    either way the bytes of the second one (the patient's name) are not under OUTPUT."""
    rng = random.Random(seed)
    mutation, values, _ = mutated(seeds, "second-pixel", rng)
    layout = walk(mutation.data)
    pixels = [layout.elements[i] for i in layout.find(0x7FE00010)]
    real = [e for e in pixels if not any(contains_value(layout.value(e), v) for v in values)]
    real_bytes = layout.value(real[0])
    with scratch() as tmp:
        (tmp / "in").mkdir()
        path = tmp / "in" / "mutant.dcm"
        path.write_bytes(mutation.data)
        manifest = run([path], tmp / "out", project_key)
        check([path], tmp / "out", manifest, values)
        if manifest[0]["status"] == "output":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(tmp / "out" / str(manifest[0]["output"]))
            assert ds.PixelData == real_bytes


# -- pydicom's own files, their own identity planted ---------------------------------------


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), place=st.sampled_from(PLANT_PLACES))
def test_pydicom_files_with_their_own_identity_planted(
    project_key: ProjectKey, seed: int, place: str
) -> None:
    rng = random.Random(seed)
    data, values = rng.choice(pydicom_seeds())
    try:
        mutant = plant(data, place, rng.choice(values), rng)
    except NotApplicable:
        return
    with scratch() as tmp:
        (tmp / "in").mkdir()
        path = tmp / "in" / "mutant.dcm"
        path.write_bytes(mutant)
        manifest = run([path], tmp / "out", project_key)
        check([path], tmp / "out", manifest, values)


# -- order independence ----------------------------------------------------------------------


def outputs_by_input(manifest: list[dict[str, object]], out: Path) -> dict[str, bytes | str]:
    """input name -> its output's bytes, or "quarantine"."""
    found: dict[str, bytes | str] = {}
    for record in manifest:
        name = Path(str(record["input"])).name
        if record["status"] == "output":
            found[name] = (out / str(record["output"])).read_bytes()
        else:
            found[name] = "quarantine"
    return found


@settings(SETTINGS, max_examples=1)
@given(seed=st.integers(0, 2**32 - 1))
def test_outputs_do_not_depend_on_order_company_or_workers(
    seeds: Seeds, project_key: ProjectKey, seed: int
) -> None:
    """The same inputs alone, together, in shuffled orders, with 1 and N workers: byte-
    identical outputs (a file's output is a pure function of its bytes and the key)."""
    rng = random.Random(seed)
    with scratch() as tmp:
        folder = tmp / "in"
        folder.mkdir()
        names = []
        for number, how in enumerate(("wrong-vr", "name-trick", "charset", "tag-neighbour")):
            mutation, _, _ = mutated(seeds, how, rng)
            names.append(f"m{number}.dcm")
            (folder / names[-1]).write_bytes(uniquify(mutation.data, 100 + number))
        for number, (data, _, _) in enumerate(seeds.files[: seeds.sample]):
            names.append(f"c{number}.dcm")
            (folder / names[-1]).write_bytes(uniquify(data, 200 + number))
        paths = [folder / n for n in names]
        reference = outputs_by_input(run(paths, tmp / "together", project_key), tmp / "together")
        for number, path in enumerate(paths):
            out = tmp / f"alone{number}"
            alone = outputs_by_input(run([path], out, project_key), out)
            assert alone[path.name] == reference[path.name], f"{path.name}: alone differs"
        for trial in range(1):
            order = paths[:]
            rng.shuffle(order)
            for jobs in (1, 2):
                out = tmp / f"shuffled{trial}-{jobs}"
                with pytest.MonkeyPatch.context() as patch:
                    patch.setattr(pipeline, "BATCH", 2)  # so that 2 workers share 13 inputs
                    got = outputs_by_input(run(order, out, project_key, jobs=jobs), out)
                assert got == reference, f"order {trial} with {jobs} workers differs"


# -- the harness itself: the walker and the mutations do what they say ---------------------


def _pydicom_tags(data: bytes) -> list[int]:
    import io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    return [int(e.tag) for e in ds]


def test_the_walker_agrees_with_pydicom(sample_corpus: tuple[Path, AnswerKey]) -> None:
    paths = sorted(sample_corpus[0].rglob("*.dcm")) + pydicom_test_files()
    walked = 0
    for path in paths:
        data = path.read_bytes()
        layout = try_walk(data)
        if layout is None or layout.deflated:
            continue
        top = [
            layout.elements[i].tag
            for i in layout.top()
            if layout.elements[i].start >= layout.dataset_start
        ]
        assert top == _pydicom_tags(data), path.name
        walked += 1
    assert walked >= 100


@pytest.mark.parametrize("place", PLANT_PLACES)
def test_a_planted_value_lands_where_pydicom_reads_it(seeds: Seeds, place: str) -> None:
    for number, (data, _, _) in enumerate(seeds.files):
        try:
            mutant = plant(data, place, "ZZPLANTED^Value", random.Random(number))
        except NotApplicable:
            continue
        import io

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(mutant))
            texts = [
                e.value.decode("latin-1") if isinstance(e.value, bytes) else str(e.value)
                for e in ds.iterall()
                if e.VR != "SQ"
            ]
        if place == "wrong-vr-copy":  # pydicom decodes FD, DS... as numbers: look at the bytes
            layout = walk(mutant)
            texts = [layout.value(e).decode("latin-1") for e in layout.elements]
        assert any("ZZPLANTED" in t for t in texts), (place, number)
        assert walk(mutant).syntax == walk(data).syntax


def test_uniquify_gives_a_valid_uid_of_the_same_length(seeds: Seeds) -> None:
    data = seeds.files[0][0]
    first, second = uniquify(data, 1), uniquify(data, 2)
    assert len(first) == len(second) == len(data) and first != second
    uids = {_uid(first), _uid(second), _uid(data)}
    assert len(uids) == 3
    for uid in uids:
        assert all(part and (part == "0" or part[0] != "0") for part in uid.split("."))


def _uid(data: bytes) -> str:
    import io

    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    return str(ds.SOPInstanceUID)


def test_a_value_is_found_in_every_encoding_and_case() -> None:
    value = "GUÉRIN^Hélène"
    for form in (
        value.encode(),
        value.lower().encode("latin-1"),
        b"GUERIN^HELENE",
        b"x guerin^helene",
    ):
        assert contains_value(b"..." + form + b"...", value), form
    assert not contains_value(b"GUERI^HELENE", value)
