"""De-identification of one dataset in memory: walk, act, mark, sweep.

``Transformer.transform`` applies the plan to every element at every depth, remaps UIDs
through the keyed pseudonym function, shifts dates by the patient's keyed offset, adds
the conformance markers, then sweeps every remaining text value for the dataset's own
identifying values. It raises :class:`UncleanError` when a value cannot be cleaned; the
caller quarantines the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from pacsguard import __version__
from pacsguard.core.errors import PacsguardError
from pacsguard.core.pseudonym import Pseudonymizer, normalise
from pacsguard.deid import actions
from pacsguard.deid.acts import (
    ActOn,
    NotText,
    Replacements,
    Uncleanable,
    binary_identifies,
    mapping_rows,
    swept,
)
from pacsguard.deid.options import PIXEL_OPTIONS
from pacsguard.deid.plan import (
    Act,
    Decision,
    Mode,
    Rules,
    decide,
    decide_private,
    references_only,
)
from pacsguard.deid.profile import load_cid7050
from pacsguard.deid.text import KnownValues, contains_known

IMPLEMENTATION_CLASS_UID = "2.25.141733298328236651197460346734318346153"
IMPLEMENTATION_VERSION = "PACSGUARD_" + __version__.replace(".", "")[:6]
SWEPT_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UT", "UC", "PN"}) | {"AE", "CS", "DA", "DT"}
BINARY_VRS = frozenset({"OB", "OW", "UN"})
BULK_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
MARKER_TAGS = frozenset({0x00120062, 0x00120063, 0x00120064, 0x00280303})


class UncleanError(PacsguardError):
    """A value that the sweep cannot clean: the file goes to quarantine."""


@dataclass
class PatientMapping:
    """Explicit pseudonyms for some patients (e.g. trial subject IDs), by source PatientID."""

    ids: dict[str, tuple[str, str]] = field(default_factory=dict)

    def get(self, patient_id: str) -> tuple[str, str] | None:
        return self.ids.get(normalise(patient_id))


@dataclass
class Result:
    """The de-identified dataset and what a re-identification mapping needs."""

    dataset: Dataset
    patient_pseudonym: str
    mapping: list[tuple[str, str, str]]


def patient_key(ds: Dataset) -> str:
    """The identity that keys pseudonyms and date offsets: the PatientID, else name + birth."""
    pid = str(ds.get("PatientID", "") or "").strip()
    if pid:
        return pid
    name = str(ds.get("PatientName", "") or "")
    birth = str(ds.get("PatientBirthDate", "") or "")
    return f"~{name}^{birth}" if name or birth else "~UNKNOWN"


@dataclass
class Transformer:
    rules: Rules
    pseudonymizer: Pseudonymizer
    patients: PatientMapping = field(default_factory=PatientMapping)
    # decide() is pure: its answers are kept for the next file (keys include the IOD).
    decision_cache: dict[tuple[int, str, bool, Mode, int], Decision] = field(default_factory=dict)
    private_decision_cache: dict[tuple[int, str, str | None, Mode], Decision] = field(
        default_factory=dict
    )
    # rawpath's memo of rewritten elements, keyed by every input of each decision.
    raw_memo: dict[object, dict[bytes, object]] = field(default_factory=dict)

    # --- the walk --------------------------------------------------------------------
    def transform(
        self,
        ds: Dataset,
        *,
        file_meta: FileMetaDataset | None = None,
        known: KnownValues | None = None,
    ) -> Result:
        """De-identify ``ds`` in place; ``known`` adds identifying values gathered beyond
        its top level (``identity.gather`` over the raw bytes)."""
        options = self.rules.options
        own = KnownValues.from_dataset(ds, institution="retain-institution-identity" not in options)
        known = own.merged(known) if known else own
        replacements = Replacements.of(self, patient_key(ds))
        act_on = ActOn(self.pseudonymizer, replacements, known)
        state = _Walk(
            transformer=self,
            types=self.rules.iod_types(ds.get("SOPClassUID")),
            act_on=act_on,
            decisions=self.decision_cache,
            private_decisions=self.private_decision_cache,
        )
        name = str(ds.get("PatientName", ""))
        accession = str(ds.AccessionNumber) if ds.get("AccessionNumber") else None
        birth = str(ds.PatientBirthDate) if ds.get("PatientBirthDate") else None
        clear_pixel_bits(ds, embedded_overlay_bits(ds))
        state.walk(ds, depth=0, mode=Mode.NORMAL)
        _drop_orphan_overlays(ds)
        mapping = mapping_rows(
            self, replacements, name=name, accession=accession, birth=birth, uids=act_on.uids
        )
        self.mark(ds)
        self._sweep(ds, known, act_on.uids)
        ds.file_meta = self._file_meta(ds, file_meta)
        return Result(ds, replacements.patient_id, mapping)

    def mark(self, ds: Dataset) -> None:
        """PS3.15 E.1.1 conformance markers: identity removed, method, CID 7050 codes."""
        codes = load_cid7050()
        options = sorted(o for o in self.rules.options if o in codes and o not in PIXEL_OPTIONS)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = [f"pacsguard {__version__}", "PS3.15 Basic Profile"] + [
            actions.fit(o, "LO") for o in options
        ]
        items = []
        for name in ["basic", *options]:
            value, scheme, meaning = codes[name]
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        if "retain-long-modified-dates" in self.rules.options:
            ds.LongitudinalTemporalInformationModified = "MODIFIED"
        elif "retain-long-full-dates" in self.rules.options:
            ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
        else:
            ds.LongitudinalTemporalInformationModified = "REMOVED"

    def _file_meta(self, ds: Dataset, source: FileMetaDataset | None) -> FileMetaDataset:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", UID("1.2.840.10008.5.1.4.1.1.7"))
        meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID")
        syntax = None if source is None else source.get("TransferSyntaxUID")
        meta.TransferSyntaxUID = syntax or UID("1.2.840.10008.1.2.1")
        meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION
        return meta

    # --- the final sweep -----------------------------------------------------------------
    def _sweep(
        self, ds: Dataset, known: KnownValues, uids: dict[str, str], top: bool = True
    ) -> None:
        if not known and not uids:
            return
        plain = _plain_charset(ds)
        if top and plain and not may_hit(_gather(ds), known, uids):
            return  # one look at all the text at once: the common case ends here
        for tag_obj in list(ds.keys()):
            tag = int(tag_obj)
            if tag in BULK_TAGS or tag in MARKER_TAGS:
                continue
            vr = raw_vr(ds, tag)
            if vr == "SQ":
                for item in ds[tag].value or []:
                    self._sweep(item, known, uids, top=False)
                continue
            if vr not in SWEPT_TEXT_VRS and vr not in BINARY_VRS and vr != "UI":
                continue
            raw = ds.get_item(tag)
            if plain and isinstance(raw, RawDataElement) and not may_hit(raw.value, known, uids):
                continue  # nothing to find: leave the element undecoded
            self._sweep_element(ds, ds[tag], known, uids)

    def _sweep_element(
        self, ds: Dataset, element: DataElement, known: KnownValues, uids: dict[str, str]
    ) -> None:
        vr = element.VR
        if vr in BINARY_VRS:
            raw = element.value
            if isinstance(raw, bytes) and binary_identifies(raw, known):
                raise UncleanError(
                    f"an identifying value remains in binary attribute {element.tag} "
                    "and cannot be cleaned"
                )
            return
        if vr not in SWEPT_TEXT_VRS and vr != "UI":
            return
        try:
            out = swept(vr, [str(v) for v in actions.values_of(element)], known, uids)
        except Uncleanable:
            raise UncleanError(f"attribute {element.tag} could not be cleaned") from None
        if out is not None:
            actions.set_values(element, list(out))


def add_method_code(ds: Dataset, option: str) -> None:
    """Record an option applied after the header (Clean Pixel Data once pixels are clean)."""
    value, scheme, meaning = load_cid7050()[option]
    items = ds.get("DeidentificationMethodCodeSequence") or Sequence()
    if any(item.get("CodeValue") == value for item in items):
        return
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    items.append(item)
    ds.DeidentificationMethodCodeSequence = items
    methods = (
        list(actions.values_of(ds["DeidentificationMethod"]))
        if "DeidentificationMethod" in ds
        else []
    )
    ds.DeidentificationMethod = [*methods, option]


def clean_overlay(ds: Dataset, tag: int) -> None:
    """Clean Graphics on an overlay bitmap: OCR it and blank the text; remove it if OCR fails."""
    import numpy as np

    from pacsguard.deid.pixels import ocr
    from pacsguard.deid.pixels.redact import PAD, pad

    base = tag & 0xFFFF0000
    try:
        rows, cols = int(ds[base | 0x0010].value), int(ds[base | 0x0011].value)
        frames = int(ds.get(base | 0x0015).value or 1) if (base | 0x0015) in ds else 1
        raw = np.frombuffer(ds[tag].value, dtype=np.uint8)
        bits = np.unpackbits(raw, bitorder="little")[: rows * cols * frames].copy()
        planes = bits.reshape(frames, rows, cols)
        for plane in planes:
            for word in ocr.find_text(plane * np.uint8(255), min_conf=0.0):
                box = pad((word.x, word.y, word.x + word.w, word.y + word.h), PAD, rows, cols)
                if box is not None:
                    plane[box[1] : box[3], box[0] : box[2]] = 0
    except Exception:  # no OCR, odd overlay: fail safe by removing the bitmap
        del ds[tag]
        return
    packed = np.packbits(planes.ravel(), bitorder="little").tobytes()
    ds[tag].value = packed + (b"\x00" if len(packed) % 2 else b"")


def embedded_overlay_bits(ds: Dataset) -> list[int]:
    """Bit positions of retired overlays stored in unused bits of Pixel Data (no 60xx,3000)."""
    bits = []
    for group in range(0x6000, 0x6020, 2):
        base = group << 16
        if (base | 0x3000) in ds or (base | 0x0010) not in ds:
            continue
        allocated = ds.get(base | 0x0100)
        position = ds.get(base | 0x0102)
        if allocated is not None and position is not None and int(allocated.value or 1) > 1:
            bits.append(int(position.value or 0))
    return bits


def clear_pixel_bits(ds: Dataset, bits: list[int]) -> None:
    """Zero the given bit positions in native Pixel Data (embedded overlays)."""
    import numpy as np

    if not bits or "PixelData" not in ds or ds.file_meta.TransferSyntaxUID.is_compressed:
        if bits:
            raise UncleanError("an overlay embedded in compressed pixel data cannot be cleared")
        return
    dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}.get(int(ds.BitsAllocated))
    if dtype is None:
        raise UncleanError("an overlay embedded in pixel data of unusual bit depth")
    data = np.frombuffer(ds.PixelData, dtype=np.dtype(dtype).newbyteorder("<")).copy()
    mask = 0
    for bit in bits:
        mask |= 1 << bit
    data &= np.array(~mask & ((1 << int(ds.BitsAllocated)) - 1), dtype=data.dtype)
    ds.PixelData = data.tobytes()


def _drop_orphan_overlays(ds: Dataset) -> None:
    """An overlay group whose data is gone carries nothing and breaks its module: drop it."""
    overlay_tags = [t for t in ds.keys() if 0x6000 <= t >> 16 <= 0x601E and not (t >> 16) & 1]
    for tag in overlay_tags:
        if ((tag & 0xFFFF0000) | 0x3000) not in ds:
            del ds[tag]


def _item_tags(items: object) -> list[set[int]]:
    """The tags of each item of a sequence, nested items' tags folded in."""
    out: list[set[int]] = []
    for item in items or []:  # type: ignore[attr-defined]
        tags: set[int] = set()
        for tag_obj in item.keys():
            tag = int(tag_obj)
            tags.add(tag)
            if raw_vr(item, tag) == "SQ":  # other elements stay undecoded
                for nested in _item_tags(item[tag].value):
                    tags |= nested
        out.append(tags)
    return out


def raw_vr(ds: Dataset, tag: int) -> str:
    """The element's VR without decoding its value (implicit VR: from the dictionary); a
    standard attribute sent as UN, by its meaning (``standard_vr_of_un``)."""
    element = ds.get_item(tag)
    vr = element.VR if element is not None else None
    if vr == "UN" and not (tag >> 16) & 1:
        return standard_vr_of_un(ds, tag)
    if vr:
        return str(vr)
    try:
        return str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        return "UN"


def standard_vr_of_un(ds: Dataset, tag: int) -> str:
    """The VR of a standard attribute that was sent as UN (CP-246: by a sender whose
    dictionary lacks it), decoded in ``ds`` as that VR: every rule, the walk and the sweep
    then see what it means. Judged as "UN", a sequence Table E.1-1 does not list was kept
    as opaque bytes, its items' comments, dates and UIDs with it.

    pydicom decodes such an element as its dictionary VR when its value is under 64 KiB;
    a longer one is decoded here the same way (a sequence's items in Implicit VR Little
    Endian, as CP-246 writes them). "UN" is left only for a tag no dictionary knows."""
    try:
        vr = str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        return "UN"
    if vr == "UN":
        return vr  # UN by definition (Selector UN Value): its rules are its tag's
    decoded = ds[tag]
    if decoded.VR != "UN":
        return str(decoded.VR)
    value = decoded.value if isinstance(decoded.value, bytes) else b""
    raw = RawDataElement(decoded.tag, vr, len(value), value, 0, vr == "SQ", True)
    ds[tag] = convert_raw_data_element(raw, encoding=ds._character_set, ds=ds)
    return vr


PLAIN_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 6"})


def _plain_charset(ds: Dataset) -> bool:
    """Raw values can be searched as bytes only in ASCII, Latin-1 or UTF-8 datasets."""
    charset = ds.get("SpecificCharacterSet", "") or ""
    names = [str(c).strip() for c in (charset if isinstance(charset, list | tuple) else [charset])]
    return all(name in PLAIN_CHARSETS for name in names)


def _gather(ds: Dataset) -> bytes:
    """Every swept value of ``ds`` and its items, joined, as encoded (or UTF-8) bytes."""
    parts: list[bytes] = []
    for tag_obj in ds.keys():
        tag = int(tag_obj)
        if tag in BULK_TAGS or tag in MARKER_TAGS:
            continue
        element = ds.get_item(tag)
        vr = raw_vr(ds, tag)
        if vr == "SQ":
            parts.extend(_gather(item) for item in ds[tag].value or [])
        elif vr in SWEPT_TEXT_VRS or vr in BINARY_VRS or vr == "UI":
            value = element.value if element is not None else None
            if isinstance(value, bytes):
                parts.append(value)
            elif value is not None:
                parts.append(str(value).encode("utf-8"))
    return b"\n".join(parts)


def may_hit(value: bytes | None, known: KnownValues, uids: dict[str, str]) -> bool:
    """A cheap, conservative pre-check on raw bytes before decoding an element."""
    if not value:
        return False
    text = value.decode("latin-1")
    if uids and "." in text and any(uid in text for uid in uids):
        return True
    if value.isascii():
        return contains_known(text, known)
    return contains_known(text, known) or contains_known(value.decode("utf-8", "replace"), known)


@dataclass
class _Walk:
    transformer: Transformer
    types: dict[int, str] | None
    act_on: ActOn
    decisions: dict[tuple[int, str, bool, Mode, int], Decision]
    private_decisions: dict[tuple[int, str, str | None, Mode], Decision]

    def walk(self, ds: Dataset, depth: int, mode: Mode) -> None:
        rules = self.transformer.rules
        kept_blocks: set[tuple[int, int]] = set()
        creators: dict[tuple[int, int], int] = {}
        for tag_obj in list(ds.keys()):
            tag = int(tag_obj)
            group, elem = tag >> 16, tag & 0xFFFF
            if group == 0x0002:
                continue
            if group & 1:
                if 0x0010 <= elem <= 0x00FF:
                    creators[(group, elem)] = tag
                    continue
                if elem < 0x0010:
                    del ds[tag]
                    continue
                creator_el = ds.get((group << 16) | (elem >> 8))
                creator = str(creator_el.value) if creator_el is not None else None
                vr = raw_vr(ds, tag)
                key = (tag, vr, creator, mode)
                decision = self.private_decisions.get(key) or self.private_decisions.setdefault(
                    key, decide_private(rules, tag, vr, creator, mode)
                )
                if decision.act is not Act.REMOVE:
                    kept_blocks.add((group, elem >> 8))
            else:
                vr = raw_vr(ds, tag)
                skey = (tag, vr, depth > 0, mode, id(self.types))
                decision = self.decisions.get(skey) or self.decisions.setdefault(
                    skey, decide(rules, tag, vr, depth=depth, mode=mode, types=self.types)
                )
                if decision.references and references_only(_item_tags(ds[tag].value)):
                    decision = Decision(Act.KEEP, source=decision.source)
                if vr == "UN" and not dictionary_has_tag(tag):  # no rule can read it
                    decision = Decision(Act.REMOVE, source="unreadable")
            if decision.act is Act.REMOVE:
                del ds[tag]
            elif decision.act is not Act.KEEP or vr == "SQ":
                self.apply(ds, tag, decision, depth)  # only now is the element decoded
        for (group, block), tag in creators.items():
            if (group, block) not in kept_blocks:
                del ds[tag]

    def apply(self, ds: Dataset, tag: int, decision: Decision, depth: int) -> None:
        element = ds[tag]
        act = decision.act
        if act is Act.REMOVE:
            del ds[tag]
        elif element.VR == "SQ":
            if act is Act.EMPTY:
                element.value = Sequence()
            elif act is Act.REPLACE:
                del ds[tag]
            else:
                for item in element.value or []:
                    self.walk(item, depth + 1, decision.mode)
        elif act is Act.CLEAN_OVERLAY:
            clean_overlay(ds, tag)
        elif act is not Act.KEEP:
            values = [str(v) for v in actions.values_of(element)]
            try:
                new = self.act_on.values(
                    act, element.VR, values, tag=tag, replacement=decision.value
                )
            except NotText:
                actions.dummy(element)  # zeros of the VR's own width or length
                return
            if new is not None:
                actions.set_values(element, list(new))
