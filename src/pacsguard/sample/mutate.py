"""Byte-level mutations of real DICOM files, built to break a de-identifier.

A small element walker of its own (not pydicom) finds every element header, its VR, its
length field and its value, at any depth, so that a mutation can aim at exactly one of
them: a length field that swallows its neighbours, a VR that lies, a tag one byte away
from an identity tag, a name with a NUL inside, a second Pixel Data, and so on.

Each strategy is a ``Strategy(name, mutate)`` with ``mutate(data, rng) -> Mutation``:
the mutated bytes and a short description of what was done (tags and keywords, never a
value). Strategies that plant values are built for one file's identity
(``strategies(values)``): the values a correct de-identifier must never let through.
A strategy that cannot apply to a file raises ``NotApplicable``.
"""

from __future__ import annotations

import random
import struct
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.datadict import dictionary_VR, keyword_for_tag

from pacsguard.sample.answer_key import PatientKey

PREAMBLE = 128
MAGIC = b"DICM"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
SPECIFIC_CHARACTER_SET = 0x00080005
SOP_INSTANCE_UID, MEDIA_SOP_INSTANCE_UID = 0x00080018, 0x00020003
PATIENT_NAME, PATIENT_ID = 0x00100010, 0x00100020
# VRs whose explicit header is 12 bytes (2 reserved bytes, a 4-byte length).
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
VALID_VRS = (
    LONG_VRS
    | TEXT_VRS
    | {
        "AS",
        "AT",
        "DA",
        "DS",
        "DT",
        "FD",
        "FL",
        "IS",
        "SL",
        "SS",
        "TM",
        "UI",
        "UL",
        "US",
    }
)
# Elements that name or identify the patient (mutating these tests identity gathering).
IDENTITY_TAGS = frozenset(
    {
        PATIENT_NAME,
        PATIENT_ID,
        0x00101001,  # Other Patient Names
        0x00101000,  # Other Patient IDs (retired)
        0x00101005,  # Patient's Birth Name
        0x00101060,  # Patient's Mother's Birth Name
        0x0040A123,  # Person Name (SR)
        0x00100030,  # Patient's Birth Date
    }
)
MAX_DEPTH = 64  # the walker's own limit: deeper nesting is left to the mutations


class NotApplicable(Exception):
    """The strategy has nothing to aim at in this file."""


class WalkError(ValueError):
    """The bytes are not a DICOM stream this walker can follow."""


@dataclass(frozen=True)
class Element:
    """One element header (or item) as found in the bytes."""

    tag: int
    vr: str | None  # None: implicit VR (or an item / delimiter)
    start: int  # first byte of the header
    value_start: int
    length: int  # the declared length (UNDEFINED possible)
    end: int  # first byte after the element, its delimiter included
    length_at: int  # offset of the length field
    length_size: int  # 2 or 4
    depth: int
    parent: int  # index of the enclosing element (SQ or item), -1 at the top

    @property
    def keyword(self) -> str:
        return keyword_for_tag(self.tag) or ("private" if (self.tag >> 16) & 1 else "unknown")

    @property
    def label(self) -> str:
        return f"({self.tag >> 16:04X},{self.tag & 0xFFFF:04X}) {self.keyword}"

    @property
    def is_container(self) -> bool:
        return self.vr == "SQ" or self.tag == ITEM


@dataclass
class Layout:
    """Where everything is: the file meta, the dataset's encoding, every element."""

    data: bytes
    meta_start: int  # 132 with a preamble, 0 without
    dataset_start: int
    syntax: str
    little: bool
    implicit: bool
    elements: list[Element] = field(default_factory=list)

    @property
    def deflated(self) -> bool:
        return self.syntax == DEFLATED

    def find(self, tag: int) -> list[int]:
        return [i for i, e in enumerate(self.elements) if e.tag == tag]

    def top(self) -> list[int]:
        return [i for i, e in enumerate(self.elements) if e.depth == 0 and e.tag != ITEM]

    def dataset_elements(self) -> list[int]:
        """Elements of the dataset proper (no meta, no items, no pixel data)."""
        return [
            i
            for i, e in enumerate(self.elements)
            if e.start >= self.dataset_start and e.tag not in (ITEM, ITEM_END, SEQ_END, PIXEL_DATA)
        ]

    def pixel(self) -> Element | None:
        top = [self.elements[i] for i in self.find(PIXEL_DATA)]
        found = [e for e in top if e.depth == 0]
        return found[0] if found else None

    def header_end(self) -> int:
        """Where the header ends: the Pixel Data element, or the end of the data."""
        pixel = self.pixel()
        return pixel.start if pixel is not None else len(self.data)

    def value(self, element: Element) -> bytes:
        end = element.value_start + (0 if element.length == UNDEFINED else element.length)
        return self.data[element.value_start : end]


# -- walking -------------------------------------------------------------------------------


class _Walker:
    def __init__(self, data: bytes, layout: Layout) -> None:
        self.data, self.layout = data, layout

    def u16(self, at: int, little: bool) -> int:
        return int(struct.unpack_from("<H" if little else ">H", self.data, at)[0])

    def u32(self, at: int, little: bool) -> int:
        return int(struct.unpack_from("<I" if little else ">I", self.data, at)[0])

    def tag(self, at: int, little: bool) -> int:
        if at + 4 > len(self.data):
            raise WalkError("truncated tag")
        return (self.u16(at, little) << 16) | self.u16(at + 2, little)

    def run(
        self,
        at: int,
        stop: int,
        depth: int,
        parent: int,
        little: bool,
        implicit: bool,
        until: int | None = None,
        meta: bool = False,
    ) -> int:
        """Elements from ``at`` to ``stop`` (or to the delimiter ``until``); returns the end."""
        if depth > MAX_DEPTH:
            raise WalkError("nested too deep for the walker")
        while at < stop:
            tag = self.tag(at, little)
            if meta and tag >> 16 != 0x0002:
                return at
            if until is not None and tag == until:
                self._add(tag, None, at, at + 8, 0, at + 8, at + 4, 4, depth, parent)
                return at + 8
            at = self.element(at, depth, parent, little, implicit)
        if until is not None:
            raise WalkError("missing delimiter")
        return at

    def element(self, at: int, depth: int, parent: int, little: bool, implicit: bool) -> int:
        data = self.data
        tag = self.tag(at, little)
        if tag in (ITEM, ITEM_END, SEQ_END):
            raise WalkError("an item outside a sequence")
        vr: str | None
        if implicit:
            vr, length_at, size = None, at + 4, 4
        else:
            raw = data[at + 4 : at + 6]
            vr = raw.decode("ascii", "replace")
            if vr not in VALID_VRS:
                raise WalkError("unknown VR")
            length_at, size = (at + 8, 4) if vr in LONG_VRS else (at + 6, 2)
        if length_at + size > len(data):
            raise WalkError("truncated header")
        length = self.u32(length_at, little) if size == 4 else self.u16(length_at, little)
        value_start = length_at + size
        index = self._add(tag, vr, at, value_start, length, 0, length_at, size, depth, parent)
        is_sq = vr == "SQ" or (implicit and self._implicit_sq(tag, value_start, length, little))
        if tag == PIXEL_DATA and length == UNDEFINED:
            end = self._fragments(value_start, little)
        elif is_sq:
            if vr is None:
                self._retype(index, "SQ")
            end = self._items(value_start, length, depth + 1, index, little, implicit)
        elif length == UNDEFINED:
            if vr == "UN":  # an SQ of unknown type, written in implicit VR little endian
                self._retype(index, "UN")
                end = self._items(value_start, length, depth + 1, index, True, True)
            else:
                raise WalkError("undefined length on a non-sequence")
        else:
            end = value_start + length
            if end > len(data):
                raise WalkError("value runs past the end")
        self._set_end(index, end)
        return end

    def _implicit_sq(self, tag: int, value_start: int, length: int, little: bool) -> bool:
        try:
            if dictionary_VR(tag) == "SQ":
                return True
        except KeyError:
            pass
        if length == 0 or value_start + 4 > len(self.data):
            return length == UNDEFINED
        return self.tag(value_start, little) == ITEM

    def _items(
        self, at: int, length: int, depth: int, parent: int, little: bool, implicit: bool
    ) -> int:
        stop = len(self.data) if length == UNDEFINED else at + length
        if stop > len(self.data):
            raise WalkError("sequence runs past the end")
        while at < stop:
            tag = self.tag(at, little)
            if tag == SEQ_END and length == UNDEFINED:
                self._add(tag, None, at, at + 8, 0, at + 8, at + 4, 4, depth, parent)
                return at + 8
            if tag != ITEM:
                raise WalkError("expected an item")
            item_length = self.u32(at + 4, little)
            index = self._add(ITEM, None, at, at + 8, item_length, 0, at + 4, 4, depth, parent)
            if item_length == UNDEFINED:
                end = self.run(
                    at + 8, len(self.data), depth + 1, index, little, implicit, until=ITEM_END
                )
            else:
                end = at + 8 + item_length
                if end > stop:
                    raise WalkError("item runs past its sequence")
                self.run(at + 8, end, depth + 1, index, little, implicit)
            self._set_end(index, end)
            at = end
        if length == UNDEFINED:
            raise WalkError("missing sequence delimiter")
        return stop

    def _fragments(self, at: int, little: bool) -> int:
        while at + 8 <= len(self.data):
            tag, length = self.tag(at, little), self.u32(at + 4, little)
            if tag == SEQ_END:
                return at + 8
            if tag != ITEM or length == UNDEFINED:
                raise WalkError("bad fragment")
            at += 8 + length
        raise WalkError("missing fragment delimiter")

    def _add(self, *fields: object) -> int:
        self.layout.elements.append(Element(*fields))  # type: ignore[arg-type]
        return len(self.layout.elements) - 1

    def _set_end(self, index: int, end: int) -> None:
        e = self.layout.elements[index]
        self.layout.elements[index] = Element(
            e.tag,
            e.vr,
            e.start,
            e.value_start,
            e.length,
            end,
            e.length_at,
            e.length_size,
            e.depth,
            e.parent,
        )

    def _retype(self, index: int, vr: str) -> None:
        e = self.layout.elements[index]
        self.layout.elements[index] = Element(
            e.tag,
            vr if e.vr is None else e.vr,
            e.start,
            e.value_start,
            e.length,
            e.end,
            e.length_at,
            e.length_size,
            e.depth,
            e.parent,
        )


def walk(data: bytes) -> Layout:
    """Every element of ``data`` (Part 10 file, or a bare dataset); raises ``WalkError``."""
    has_preamble = len(data) >= PREAMBLE + 4 and data[PREAMBLE : PREAMBLE + 4] == MAGIC
    layout = Layout(data, PREAMBLE + 4 if has_preamble else 0, 0, IMPLICIT_LE, True, True)
    walker = _Walker(data, layout)
    at = layout.meta_start
    if has_preamble or data[:2] == b"\x02\x00":
        at = walker.run(at, len(data), 0, -1, True, False, meta=True)
        for index in layout.find(0x00020010):
            raw = layout.value(layout.elements[index])
            layout.syntax = raw.rstrip(b"\x00 ").decode("ascii", "replace")
        if not layout.find(0x00020010):
            raise WalkError("no transfer syntax")
    elif len(data) >= 6 and data[4:6].decode("latin-1") in VALID_VRS:
        layout.syntax = "1.2.840.10008.1.2.1"
    layout.dataset_start = at
    layout.little = layout.syntax != EXPLICIT_BE
    layout.implicit = layout.syntax == IMPLICIT_LE
    if not layout.deflated:
        walker.run(at, len(data), 0, -1, layout.little, layout.implicit)
    return layout


def try_walk(data: bytes) -> Layout | None:
    try:
        return walk(data)
    except (WalkError, struct.error):
        return None


# -- encoding ------------------------------------------------------------------------------


def pad(value: bytes, vr: str | None) -> bytes:
    if len(value) % 2 == 0:
        return value
    return value + (b"\x00" if vr in ("UI", "OB", "UN", None) else b" ")


def header(tag: int, vr: str | None, length: int, layout: Layout, meta: bool = False) -> bytes:
    little = True if meta else layout.little
    implicit = False if meta else layout.implicit
    order = "<" if little else ">"
    tag_bytes = struct.pack(order + "HH", tag >> 16, tag & 0xFFFF)
    if implicit or vr is None:
        return tag_bytes + struct.pack(order + "I", length)
    if vr in LONG_VRS:
        return tag_bytes + vr.encode() + b"\x00\x00" + struct.pack(order + "I", length)
    return tag_bytes + vr.encode() + struct.pack(order + "H", length)


def element(tag: int, vr: str, value: bytes, layout: Layout) -> bytes:
    value = pad(value, vr)
    if vr not in LONG_VRS and len(value) > 0xFFFF:
        vr = "UT" if vr in TEXT_VRS else "UN"
    return header(tag, vr, len(value), layout) + value


def item(body: bytes, layout: Layout) -> bytes:
    return header(ITEM, None, len(body), layout) + body


def sequence(tag: int, items: Iterable[bytes], layout: Layout) -> bytes:
    body = b"".join(item(i, layout) for i in items)
    return header(tag, "SQ", len(body), layout) + body


def splice(layout: Layout, start: int, end: int, new: bytes, owner: int) -> bytes:
    """Replace ``data[start:end]`` inside the container ``owner`` (an element index, -1 for
    the top level), keeping the defined lengths of ``owner`` and of every container above
    it true (and the meta group length), so that only the intended anomaly remains."""
    data = bytearray(layout.data)
    delta = len(new) - (end - start)
    while owner >= 0:
        e = layout.elements[owner]
        if e.length != UNDEFINED:
            value = e.length + delta
            if e.length_size == 2 and not 0 <= value <= 0xFFFF:
                raise NotApplicable("a 2-byte length cannot hold the new size")
            order = "<" if layout.little else ">"
            struct.pack_into(
                order + ("H" if e.length_size == 2 else "I"), data, e.length_at, value & 0xFFFFFFFF
            )
        owner = e.parent
    if start < layout.dataset_start:
        for index in layout.find(0x00020000):
            group = layout.elements[index]
            if group.end <= start:
                old = struct.unpack_from("<I", data, group.value_start)[0]
                struct.pack_into("<I", data, group.value_start, (old + delta) & 0xFFFFFFFF)
    data[start:end] = new
    return bytes(data)


def replace_value(layout: Layout, index: int, value: bytes) -> bytes:
    """The element at ``index`` with a new value (same tag and VR), lengths kept true."""
    e = layout.elements[index]
    meta = e.start < layout.dataset_start
    value = pad(value, e.vr)
    if e.length_size == 2 and len(value) > 0xFFFF:
        raise NotApplicable("value too long for the element's VR")
    new = header(e.tag, e.vr, len(value), layout, meta) + value
    return splice(layout, e.start, e.end, new, e.parent)


def insert_sorted(layout: Layout, new: bytes, tag: int, parent: int = -1) -> bytes:
    """Insert an encoded element at its sorted place among its siblings (top level, or
    inside the item ``parent``)."""
    siblings = [e for e in layout.elements if e.parent == parent and e.tag != ITEM_END]
    if parent == -1:
        siblings = [e for e in siblings if e.start >= layout.dataset_start]
    later = [e.start for e in siblings if e.tag > tag]
    if later:
        at = later[0]
    elif parent == -1:
        at = layout.header_end()
    else:
        ends = [e.start for e in layout.elements if e.parent == parent and e.tag == ITEM_END]
        at = ends[0] if ends else layout.elements[parent].end
    return splice(layout, at, at, new, parent)


def append_item(layout: Layout, sq: int, body: bytes) -> bytes:
    """One more item at the end of the sequence ``sq``."""
    e = layout.elements[sq]
    at = e.end - 8 if e.length == UNDEFINED else e.end
    return splice(layout, at, at, item(body, layout), sq)


# -- text ----------------------------------------------------------------------------------


def fold(text: str) -> str:
    """Accents removed (é -> e), as a sweep that folds accents would compare."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def charset_of(layout: Layout) -> str:
    for index in layout.find(SPECIFIC_CHARACTER_SET):
        e = layout.elements[index]
        if e.depth == 0:
            return layout.value(e).decode("ascii", "replace").strip(" \x00").split("\\")[0]
    return ""


def encode_text(text: str, layout: Layout) -> bytes:
    """Text in the file's declared character set (UTF-8 or Latin-1, else ASCII-folded)."""
    charset = charset_of(layout)
    if charset == "ISO_IR 192":
        return text.encode("utf-8")
    if charset in ("ISO_IR 100", "ISO 2022 IR 100"):
        return text.encode("latin-1", "replace")
    return fold(text).encode("ascii", "replace")


def needle_forms(value: str) -> set[bytes]:
    """Every byte form of ``value`` a raw search must look for, ASCII-lowercased:
    UTF-8 and Latin-1, as written, upper, lower and accent-folded."""
    forms: set[bytes] = set()
    for text in {value, value.upper(), value.lower(), fold(value), fold(value).upper()}:
        for encoding in ("utf-8", "latin-1"):
            try:
                forms.add(text.encode(encoding).lower())
            except UnicodeEncodeError:
                continue
    return {f for f in forms if f}


def contains_value(data: bytes, value: str) -> bool:
    haystack = data.lower()
    return any(form in haystack for form in needle_forms(value))


# -- strategies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    data: bytes
    variant: str  # the class of mutation, e.g. "wrong-vr:LO->FD" (no values)
    detail: str  # where: tags and keywords, never a value


@dataclass(frozen=True)
class Strategy:
    name: str
    mutate: Callable[[bytes, random.Random], Mutation]
    description: str = ""


def _walked(data: bytes) -> Layout:
    layout = try_walk(data)
    if layout is None or layout.deflated:
        raise NotApplicable("not walkable (or deflated)")
    return layout


def _pick(rng: random.Random, indices: Sequence[int], why: str) -> int:
    if not indices:
        raise NotApplicable(why)
    return rng.choice(list(indices))


def _identity_first(layout: Layout, rng: random.Random, candidates: list[int]) -> int:
    """An identity element half the time when there is one, else any candidate."""
    identity = [i for i in candidates if layout.elements[i].tag in IDENTITY_TAGS]
    if identity and rng.random() < 0.5:
        return rng.choice(identity)
    return _pick(rng, candidates, "no element to aim at")


def bit_flip(data: bytes, rng: random.Random) -> Mutation:
    layout = try_walk(data)
    end = layout.header_end() if layout is not None else len(data)
    start = layout.dataset_start if layout is not None else 0
    if end - start < 8:
        start, end = 0, len(data)
    out = bytearray(data)
    count = rng.choice((1, 1, 2, 4, 8, 16))
    for _ in range(count):
        at = rng.randrange(start, end)
        out[at] ^= 1 << rng.randrange(8)
    bucket = "1" if count == 1 else "2-4" if count <= 4 else "8+"
    return Mutation(bytes(out), f"bit-flip:{bucket}", f"{count} bits in the header")


def length_corrupt(data: bytes, rng: random.Random) -> Mutation:
    layout = _walked(data)
    index = _identity_first(layout, rng, layout.dataset_elements())
    e = layout.elements[index]
    maximum = 0xFFFF if e.length_size == 2 else UNDEFINED
    choices = {
        "plus-small": e.length + rng.choice((1, 2, 4, 8)),
        "minus-small": max(0, e.length - rng.choice((1, 2, 4, 8))),
        "zero": 0,
        "double": e.length * 2,
        "max": maximum,
        "huge": rng.randrange(1 << 16, 1 << 31) if e.length_size == 4 else 0xFFF0,
    }
    kind = rng.choice(sorted(choices))
    value = min(choices[kind], maximum) if e.length != UNDEFINED else choices["plus-small"]
    out = bytearray(data)
    order = "<" if layout.little or e.start < layout.dataset_start else ">"
    struct.pack_into(
        order + ("H" if e.length_size == 2 else "I"), out, e.length_at, value & maximum
    )
    return Mutation(bytes(out), f"length-corrupt:{kind}", f"length of {e.label}")


def length_swallow(data: bytes, rng: random.Random) -> Mutation:
    """A kept element's length grows over its next 1-4 siblings: their bytes become its
    value, verbatim (class 2: a Modality that contains the patient's name)."""
    layout = _walked(data)
    if rng.random() < 0.4:  # the case: a kept element over the identity elements
        present = [t for t in KEPT_TAGS if layout.find(t)]
        payload = rng.sample(sorted(IDENTITY_TAGS), rng.randint(1, 3))
        if present:
            tag = rng.choice(present)
            label = keyword_for_tag(tag)
            return Mutation(
                swallow(data, tag, payload),
                "length-swallow:kept-over-identity",
                f"{label} over identity",
            )
    elements = layout.elements
    candidates = []
    for i in layout.dataset_elements():
        e = elements[i]
        if e.is_container or e.length == UNDEFINED:
            continue
        followers = [
            j
            for j in range(i + 1, len(elements))
            if elements[j].parent == e.parent
            and elements[j].start >= e.end
            and elements[j].tag not in (ITEM_END, SEQ_END)
        ]
        if followers:
            candidates.append((i, followers))
    if not candidates:
        raise NotApplicable("no element with followers")
    # Prefer a standard element a de-identifier keeps (Modality, a UID, a code) that sits
    # just before identity elements: its swallowed bytes are what must not survive.
    kept = [
        c
        for c in candidates
        if not (elements[c[0]].tag >> 16) & 1 and elements[c[0]].tag not in IDENTITY_TAGS
    ]
    led = [c for c in kept if any(elements[j].tag in IDENTITY_TAGS for j in c[1][:4])]
    pool = (
        led if led and rng.random() < 0.6 else kept if kept and rng.random() < 0.8 else candidates
    )
    i, followers = rng.choice(pool)
    e = elements[i]
    count = min(len(followers), rng.randint(1, 4))
    last = elements[followers[count - 1]]
    new_length = last.end - e.value_start
    if e.length_size == 2 and new_length > 0xFFFF:
        raise NotApplicable("the swallowed run is too long for a 2-byte length")
    if e.length_at < layout.dataset_start:
        raise NotApplicable("meta element")
    out = bytearray(data)
    order = "<" if layout.little else ">"
    struct.pack_into(order + ("H" if e.length_size == 2 else "I"), out, e.length_at, new_length)
    kind = "uid" if e.vr == "UI" else "text" if e.vr in TEXT_VRS or e.vr is None else "other"
    return Mutation(bytes(out), f"length-swallow:{kind}", f"{e.label} swallows {count} elements")


def truncate(data: bytes, rng: random.Random) -> Mutation:
    layout = try_walk(data)
    if layout is not None and layout.elements and rng.random() < 0.6:
        e = rng.choice(layout.elements)
        at = max(
            1, min(len(data) - 1, rng.choice((e.start, e.value_start, e.end)) + rng.randint(-3, 3))
        )
        return Mutation(data[:at], "truncate:element", f"cut near {e.label}")
    at = rng.randrange(1, len(data))
    return Mutation(data[:at], "truncate:anywhere", f"cut at {at * 100 // len(data)}%")


def remove_element(data: bytes, rng: random.Random) -> Mutation:
    layout = _walked(data)
    index = _identity_first(layout, rng, layout.dataset_elements())
    e = layout.elements[index]
    kind = (
        "identity"
        if e.tag in IDENTITY_TAGS
        else "charset"
        if e.tag == SPECIFIC_CHARACTER_SET
        else "other"
    )
    out = splice(layout, e.start, e.end, b"", e.parent)
    return Mutation(out, f"remove:{kind}", f"removed {e.label}")


def duplicate_element(data: bytes, rng: random.Random) -> Mutation:
    layout = _walked(data)
    index = _identity_first(layout, rng, layout.dataset_elements())
    e = layout.elements[index]
    copy = data[e.start : e.end]
    if rng.random() < 0.5:
        where, out = "adjacent", splice(layout, e.end, e.end, copy, e.parent)
    else:
        if e.start < layout.dataset_start:
            raise NotApplicable("meta element")
        where, out = "end", data + copy
    return Mutation(out, f"duplicate:{where}", f"second copy of {e.label} ({where})")


WRONG_VRS = ("FD", "DS", "OF", "OB", "UN", "US", "AT", "SQ", "UI", "FL", "SL", "DA", "IS")


def wrong_vr(data: bytes, rng: random.Random) -> Mutation:
    """A text element re-labelled with another VR, its bytes unchanged (class 3)."""
    layout = _walked(data)
    if layout.implicit:
        raise NotApplicable("implicit VR has no VR to lie about")
    text = [
        i
        for i in layout.dataset_elements()
        if layout.elements[i].vr in TEXT_VRS and layout.elements[i].length > 0
    ]
    index = _identity_first(layout, rng, text)
    e = layout.elements[index]
    vr = rng.choice(WRONG_VRS)
    value = layout.value(e)
    if vr not in LONG_VRS and len(value) > 0xFFFF:
        raise NotApplicable("too long for a short VR")
    new = header(e.tag, vr, len(value), layout) + value
    return Mutation(
        splice(layout, e.start, e.end, new, e.parent),
        f"wrong-vr:{e.vr}->{vr}",
        f"{e.label} {e.vr}->{vr}",
    )


def tag_neighbour(data: bytes, rng: random.Random) -> Mutation:
    """An identity element moved to a tag one byte away (class 4: (0010,0010)->(0010,0011))."""
    layout = _walked(data)
    candidates = [i for i in layout.dataset_elements() if layout.elements[i].tag in IDENTITY_TAGS]
    index = _pick(rng, candidates, "no identity element")
    e = layout.elements[index]
    raw = bytearray(e.tag.to_bytes(4, "big"))
    position = rng.choice((3, 3, 3, 2, 1))  # mostly the element number's low byte
    raw[position] = (raw[position] + rng.choice((1, -1, 0x10, 0x80))) % 256
    tag = int.from_bytes(raw, "big")
    if tag >> 16 in (0x0002, 0xFFFE, 0x7FE0) or tag == e.tag:
        raise NotApplicable("unusable neighbour tag")
    out = bytearray(data)
    order = "<" if layout.little else ">"
    struct.pack_into(order + "HH", out, e.start, tag >> 16, tag & 0xFFFF)
    kind = "private-group" if (tag >> 16) & 1 else "same-group"
    return Mutation(
        bytes(out), f"tag-neighbour:{kind}", f"{e.label} -> ({tag >> 16:04X},{tag & 0xFFFF:04X})"
    )


def _name_trick(value: bytes, rng: random.Random) -> tuple[str, bytes]:
    text = value.rstrip(b" \x00")
    if not text:
        raise NotApplicable("empty name")
    cut = rng.randrange(1, len(text)) if len(text) > 1 else 1
    caret = text.find(b"^")
    tricks = {
        "nul-inside": text[:caret] + b"\x00" + text[caret:]
        if caret > 0
        else text[:cut] + b"\x00" + text[cut:],
        "nul-padding": text + b"\x00\x00",
        "nul-lead": b"\x00" + text,
        "backslash": text + b"\\" + text,
        "caret-doubled": text.replace(b"^", b"^^", 1),
        "caret-lead": b"^" + text,
        "group-equals": text + b"=" + text,
        "spaces": b"  " + text.replace(b"^", b" ^ ", 1),
        "lowercase": text.lower(),
        "byte-changed": text[:cut] + bytes([(text[cut] + 1) % 128 or 65]) + text[cut + 1 :]
        if cut < len(text)
        else text[:-1] + b"X",
        "esc": b"\x1b(B" + text,
    }
    kind = rng.choice(sorted(tricks))
    return kind, tricks[kind]


def name_trick(data: bytes, rng: random.Random) -> Mutation:
    """NUL, backslash and caret tricks in Patient's Name (class 5)."""
    layout = _walked(data)
    names = [i for i in layout.dataset_elements() if layout.elements[i].tag == PATIENT_NAME]
    if not names or rng.random() < 0.2:
        names = [
            i
            for i in layout.dataset_elements()
            if layout.elements[i].vr == "PN" or layout.elements[i].tag in IDENTITY_TAGS
        ]
    index = _pick(rng, names, "no name")
    e = layout.elements[index]
    kind, value = _name_trick(layout.value(e), rng)
    return Mutation(replace_value(layout, index, value), f"name-trick:{kind}", f"{e.label}")


CHARSETS = (
    "ISO_IR 126",
    "GBK",
    "ISO_IR 100",
    "ISO 2022 IR 100",
    "ISO 2022 IR 87",
    "ISO_IR 192",
    "GB18030",
    "ISO_IR 13",
    "ISO_IR 144",
    "NONSENSE",
)


def _text_elements(layout: Layout) -> list[int]:
    return [
        i
        for i in layout.dataset_elements()
        if layout.elements[i].vr in TEXT_VRS
        or (layout.elements[i].vr is None and layout.elements[i].length > 0)
    ]


def _reencode(layout: Layout, convert: Callable[[bytes], bytes | None]) -> bytes:
    """Every text element whose value ``convert`` changes, rewritten (last first, so that
    earlier offsets stay true; the walk is redone after each)."""
    data = layout.data
    changed = 0
    for index in reversed(_text_elements(layout)):
        e = layout.elements[index]
        try:
            if e.vr is None and dictionary_VR(e.tag) not in TEXT_VRS:
                continue
        except KeyError:
            continue
        new = convert(layout.value(e))
        if new is None or new == layout.value(e):
            continue
        current = walk(data)
        data = replace_value(current, index, new)
        changed += 1
    if not changed:
        raise NotApplicable("no text to re-encode")
    return data


def charset_change(data: bytes, rng: random.Random) -> Mutation:
    """Specific Character Set changed, removed, or the text re-encoded against it (class 6)."""
    layout = _walked(data)
    kind = rng.choice(("declare", "declare", "remove", "latin1-bytes", "iso2022-escapes"))
    scs = [i for i in layout.find(SPECIFIC_CHARACTER_SET) if layout.elements[i].depth == 0]
    if kind == "declare":
        charset = rng.choice(CHARSETS)
        new = element(SPECIFIC_CHARACTER_SET, "CS", charset.encode(), layout)
        if scs:
            e = layout.elements[scs[0]]
            out = splice(layout, e.start, e.end, new, -1)
        else:
            out = insert_sorted(layout, new, SPECIFIC_CHARACTER_SET)
        return Mutation(out, f"charset:declare-{charset.replace(' ', '_')}", "(0008,0005)")
    if kind == "remove":
        if not scs:
            raise NotApplicable("no Specific Character Set")
        e = layout.elements[scs[0]]
        return Mutation(splice(layout, e.start, e.end, b"", -1), "charset:remove", "(0008,0005)")
    if kind == "latin1-bytes":  # UTF-8 declared, Latin-1 written (or the other way round)
        declared = charset_of(layout)
        source, target = ("utf-8", "latin-1") if declared == "ISO_IR 192" else ("latin-1", "utf-8")

        def convert(raw: bytes) -> bytes | None:
            try:
                return raw.decode(source).encode(target)
            except (UnicodeDecodeError, UnicodeEncodeError):
                return None

        return Mutation(_reencode(layout, convert), f"charset:{target}-bytes", "text elements")

    def escapes(raw: bytes) -> bytes | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if text.isascii():
            return b"\x1b(B" + raw
        try:
            return b"\x1b-A" + text.encode("latin-1") + b"\x1b(B"
        except UnicodeEncodeError:
            return None

    out = _reencode(layout, escapes)
    layout = walk(out)
    scs = [i for i in layout.find(SPECIFIC_CHARACTER_SET) if layout.elements[i].depth == 0]
    new = element(SPECIFIC_CHARACTER_SET, "CS", b"\\ISO 2022 IR 100", layout)
    if scs:
        e = layout.elements[scs[0]]
        out = splice(layout, e.start, e.end, new, -1)
    return Mutation(out, "charset:iso2022-escapes", "text elements + (0008,0005)")


def _identity_value(values: Sequence[str], rng: random.Random) -> str:
    if not values:
        raise NotApplicable("no identity to plant")
    return rng.choice(list(values))


def _after_pixel_element(layout: Layout, value: bytes, rng: random.Random) -> tuple[str, bytes]:
    kinds = ("patient-name", "private", "signature", "padding", "unknown-tag")
    kind = rng.choice(kinds)
    if kind == "patient-name":
        return kind, element(PATIENT_NAME, "PN", value, layout)
    if kind == "private":
        creator = element(0x7FE10010, "LO", b"FUZZ PRIVATE", layout)
        return kind, creator + element(0x7FE11001, "LT", value, layout)
    if kind == "signature":
        inner = element(0x0040A160, "UT", value, layout)
        return kind, sequence(0xFFFAFFFA, [inner], layout)
    if kind == "padding":
        return kind, element(0xFFFCFFFC, "OB", value, layout)
    return kind, element(0x7FE00100, "LO", value, layout)


def strategies(values: Sequence[str]) -> list[Strategy]:
    """Every strategy, those that plant values planting ``values`` (one file's identity)."""

    def after_pixel(data: bytes, rng: random.Random) -> Mutation:
        layout = _walked(data)
        if layout.pixel() is None:
            raise NotApplicable("no Pixel Data")
        value = encode_text(_identity_value(values, rng), layout)
        kind, new = _after_pixel_element(layout, value, rng)
        return Mutation(data + new, f"after-pixel:{kind}", "appended after (7FE0,0010)")

    def second_pixel(data: bytes, rng: random.Random) -> Mutation:
        layout = _walked(data)
        pixel = layout.pixel()
        if pixel is None:
            raise NotApplicable("no Pixel Data")
        text = encode_text(_identity_value(values, rng), layout)
        size = max(len(text) * 4, min(4096, pixel.end - pixel.value_start))
        body = (text + b" ") * (size // (len(text) + 1) + 1)
        new = element(PIXEL_DATA, "OW" if not layout.implicit else "OB", body[:size], layout)
        if rng.random() < 0.5:
            return Mutation(data + new, "second-pixel:after", "a second (7FE0,0010) at the end")
        out = splice(layout, pixel.start, pixel.start, new, -1)
        return Mutation(out, "second-pixel:before", "a second (7FE0,0010) before the first")

    def deep_nesting(data: bytes, rng: random.Random) -> Mutation:
        layout = _walked(data)
        value = encode_text(_identity_value(values, rng), layout)
        depth = rng.choice((3, 8, 20, 64, 200, 1000))
        kind = rng.choice(("patient-name", "code-meaning", "text"))
        if kind == "patient-name":
            inner = element(PATIENT_NAME, "PN", value, layout)
        elif kind == "code-meaning":
            inner = (
                element(0x00080100, "SH", b"F1", layout)
                + element(0x00080102, "SH", b"99FUZZ", layout)
                + element(0x00080104, "LO", value, layout)
            )
        else:
            inner = element(0x0040A160, "UT", value, layout)
        tags = (0x00081115, 0x0040A730, 0x00082218, 0x00171010)
        tag = rng.choice(tags)
        body = inner
        for _ in range(depth):
            body = sequence(tag, [body], layout)
        if tag == 0x00171010:  # a private sequence: its creator first, both at its place
            if [i for i in layout.top() if layout.elements[i].tag >> 16 == 0x0017]:
                raise NotApplicable("group 0017 taken")
            body = element(0x00170010, "LO", b"FUZZ NEST", layout) + body
        elif layout.find(tag):
            raise NotApplicable("the sequence is already there")
        out = insert_sorted(layout, body, 0x00170010 if tag == 0x00171010 else tag)
        bucket = "1000" if depth >= 1000 else "64+" if depth >= 64 else "<64"
        return Mutation(
            out,
            f"deep-nesting:{bucket}:{kind}",
            f"{depth} levels of ({tag >> 16:04X},{tag & 0xFFFF:04X})",
        )

    def planted(data: bytes, rng: random.Random) -> Mutation:
        layout = _walked(data)
        value = encode_text(_identity_value(values, rng), layout)
        place = rng.choice(PLANT_PLACES)
        out = _plant(layout, place, value, rng)
        after = walk(out)
        where = sorted(
            {
                _path(after, k)
                for k, e in enumerate(after.elements)
                if value in after.value(e) and e.tag != ITEM and e.vr != "SQ"
            }
        )
        return Mutation(out, f"planted:{place}", f"{place}: {', '.join(where)}")

    return [
        Strategy("bit-flip", bit_flip, "random bits flipped in the header"),
        Strategy("length-corrupt", length_corrupt, "one element's length field changed"),
        Strategy(
            "length-swallow",
            length_swallow,
            "a kept element's length grows over the following elements",
        ),
        Strategy("truncate", truncate, "the file cut short"),
        Strategy("remove", remove_element, "one element removed (identity elements favoured)"),
        Strategy("duplicate", duplicate_element, "one element twice (adjacent, or at the end)"),
        Strategy("wrong-vr", wrong_vr, "a text element relabelled with another VR"),
        Strategy("tag-neighbour", tag_neighbour, "an identity tag one byte away"),
        Strategy("name-trick", name_trick, "NUL, backslash, caret tricks in a name"),
        Strategy("charset", charset_change, "character set changed or text re-encoded"),
        Strategy("after-pixel", after_pixel, "identity in elements after Pixel Data"),
        Strategy("second-pixel", second_pixel, "a second Pixel Data element"),
        Strategy("deep-nesting", deep_nesting, "identity nested deep in sequences"),
        Strategy("planted", planted, "identity planted into kept places"),
    ]


def _path(layout: Layout, index: int) -> str:
    """``(0008,1032) ProcedureCodeSequence > (0008,0104) CodeMeaning``: where an element is."""
    names = []
    while index >= 0:
        e = layout.elements[index]
        if e.tag != ITEM:
            names.append(e.label)
        index = e.parent
    return " > ".join(reversed(names))


PLANT_PLACES = (
    "code-meaning",
    "private-block",
    "description",
    "sr-text",
    "unknown-tag",
    "wrong-vr-copy",
    "private-sq",
)


def _plant(layout: Layout, place: str, value: bytes, rng: random.Random) -> bytes:
    """One identity value written into a place a de-identifier usually keeps."""
    if place == "code-meaning":
        code = (
            element(0x00080100, "SH", b"T-D4000", layout)
            + element(0x00080102, "SH", b"SRT", layout)
            + element(0x00080104, "LO", value, layout)
        )
        tag = rng.choice((0x00082218, 0x00400260, 0x00081032))
        existing = [i for i in layout.top() if layout.elements[i].tag == tag]
        if existing:
            return append_item(layout, existing[0], code)
        return insert_sorted(layout, sequence(tag, [code], layout), tag)
    if place == "private-block":
        group = rng.choice((0x0011, 0x0021, 0x0043))
        if [i for i in layout.top() if layout.elements[i].tag >> 16 == group]:
            raise NotApplicable("group taken")
        creator = element((group << 16) | 0x0010, "LO", b"FUZZ 1.0", layout)
        body = creator + element(
            (group << 16) | 0x1001, rng.choice(("LO", "LT", "UN")), value, layout
        )
        return insert_sorted(layout, body, (group << 16) | 0x0010)
    if place == "description":
        tag = rng.choice((0x0008103E, 0x00081030, 0x00204000, 0x00181030, 0x00082111))
        vr = "LT" if tag == 0x00204000 else "ST" if tag == 0x00082111 else "LO"
        new = element(tag, vr, b"Fuzz " + value, layout)
        existing = [i for i in layout.top() if layout.elements[i].tag == tag]
        if existing:
            e = layout.elements[existing[0]]
            return splice(layout, e.start, e.end, new, -1)
        return insert_sorted(layout, new, tag)
    if place == "sr-text":
        body = (
            element(0x0040A010, "CS", b"CONTAINS", layout)
            + element(0x0040A040, "CS", b"TEXT", layout)
            + element(0x0040A160, "UT", value, layout)
        )
        existing = [i for i in layout.top() if layout.elements[i].tag == 0x0040A730]
        if existing:
            return append_item(layout, existing[0], body)
        return insert_sorted(layout, sequence(0x0040A730, [body], layout), 0x0040A730)
    if place == "unknown-tag":
        tag = rng.choice((0x00100011, 0x00109999, 0x00089999, 0x00189999, 0x00209999))
        if layout.find(tag):
            raise NotApplicable("tag taken")
        return insert_sorted(layout, element(tag, "LO", value, layout), tag)
    if place == "wrong-vr-copy":
        tag = rng.choice((0x00100011, 0x00204000, 0x0008103E, 0x00181030))
        vr = rng.choice(("UN", "OB", "FD", "DS", "OF"))
        new = element(tag, vr, value, layout)
        existing = [i for i in layout.top() if layout.elements[i].tag == tag]
        if existing:
            e = layout.elements[existing[0]]
            return splice(layout, e.start, e.end, new, -1)
        return insert_sorted(layout, new, tag)
    # private-sq: a private sequence whose item holds standard identity elements
    group = rng.choice((0x0013, 0x0015))
    if [i for i in layout.top() if layout.elements[i].tag >> 16 == group]:
        raise NotApplicable("group taken")
    inner = element(0x00081030, "LO", value, layout) + element(0x00100010, "PN", value, layout)
    body = element((group << 16) | 0x0010, "LO", b"FUZZ SQ", layout) + sequence(
        (group << 16) | 0x1001, [inner], layout
    )
    return insert_sorted(layout, body, (group << 16) | 0x0010)


# -- one mutant per call -------------------------------------------------------------------


def uniquify(data: bytes, number: int) -> bytes:
    """The same bytes with a SOP Instance UID of the same length made unique by ``number``
    (file meta and dataset), so that mutants of one file never collide on their output."""
    layout = try_walk(data)
    if layout is None:
        return data
    targets = [
        layout.elements[i]
        for i in layout.find(SOP_INSTANCE_UID) + layout.find(MEDIA_SOP_INSTANCE_UID)
        if layout.elements[i].depth == 0
    ]
    if not targets:
        return data
    out = bytearray(data)
    digits = _digits(number)
    for e in targets:
        raw = layout.value(e).rstrip(b"\x00 ")
        positions = [k for k, c in enumerate(raw) if chr(c).isdigit()]
        usable = [k for k in positions if k > 0 and chr(raw[k - 1]).isdigit()]  # no leading 0
        chosen = usable[-len(digits) :]
        fresh = bytearray(raw)
        for k, d in zip(chosen, digits[-len(chosen) :], strict=True):
            fresh[k] = ord(d)
        out[e.value_start : e.value_start + len(raw)] = fresh
    return bytes(out)


def _digits(number: int) -> str:
    """``number`` in base 9 with the digits 1-9, 12 digits wide."""
    text = ""
    for _ in range(12):
        number, rest = divmod(number, 9)
        text = str(rest + 1) + text
    return text


def mutate(
    data: bytes, rng: random.Random, chosen: Sequence[Strategy]
) -> tuple[Strategy, Mutation]:
    """Apply one of ``chosen`` (tried in random order until one applies)."""
    order = list(chosen)
    rng.shuffle(order)
    for strategy in order:
        try:
            return strategy, strategy.mutate(data, rng)
        except NotApplicable:
            continue
    raise NotApplicable("no strategy applies to this file")


__all__ = [
    "Element",
    "Layout",
    "Mutation",
    "NotApplicable",
    "Strategy",
    "WalkError",
    "contains_value",
    "mutate",
    "needle_forms",
    "patient_values",
    "plant",
    "pydicom_test_files",
    "relabel",
    "strategies",
    "swallow",
    "try_walk",
    "uniquify",
    "walk",
]


# -- targeted helpers (for tests that aim at one element) ------------------------------------


def relabel(data: bytes, tag: int, vr: str, occurrence: int = 0) -> bytes:
    """The ``occurrence``-th element ``tag`` (any depth) re-labelled with ``vr``, its value
    bytes unchanged (explicit VR files only)."""
    layout = _walked(data)
    found = layout.find(tag)
    if layout.implicit or len(found) <= occurrence:
        raise NotApplicable("no such element in an explicit VR file")
    e = layout.elements[found[occurrence]]
    value = layout.value(e)
    new = header(e.tag, vr, len(value), layout) + value
    return splice(layout, e.start, e.end, new, e.parent)


def plant(data: bytes, place: str, value: str, rng: random.Random) -> bytes:
    """``value`` written into one of ``PLANT_PLACES``, in the file's character set."""
    layout = _walked(data)
    return _plant(layout, place, encode_text(value, layout), rng)


def patient_values(patient: PatientKey) -> tuple[str, ...]:
    """The identity values of a sample patient (``AnswerKey.patients[i]``) that must never
    reach an output: name forms, family and other names, IDs, NIR, e-mail, address, phones,
    birth date (5 characters or more)."""
    values = {
        patient.name,
        *patient.names,
        patient.family_name,
        *patient.other_names,
        patient.patient_id,
        *patient.other_patient_ids,
        patient.nir,
        patient.email,
        patient.address,
        *patient.phones,
        patient.birth_date,
    }
    return tuple(sorted(v for v in values if len(v) >= 5))


KEPT_TAGS = (0x00080060, 0x00080016, 0x00080070, 0x00180015, 0x00200011, 0x00280004)


def swallow(data: bytes, kept: int, payload: Sequence[int]) -> bytes:
    """Copies of the elements ``payload`` (identity elements of the file itself) placed
    right after the top-level element ``kept``, whose length then covers them: a kept
    element (Modality, SOP Class UID...) that holds identity elements verbatim, as a
    corrupted length field makes it (class 2)."""
    layout = _walked(data)
    found = [i for i in layout.top() if layout.elements[i].tag == kept]
    copies = b"".join(
        data[e.start : e.end]
        for tag in payload
        for e in (layout.elements[i] for i in layout.top() if layout.elements[i].tag == tag)
    )
    if not found or not copies:
        raise NotApplicable("no such elements")
    e = layout.elements[found[0]]
    new_length = e.length + len(copies)
    if e.length_size == 2 and new_length > 0xFFFF:
        raise NotApplicable("too long for a 2-byte length")
    out = bytearray(data[: e.end] + copies + data[e.end :])
    order = "<" if layout.little else ">"
    struct.pack_into(order + ("H" if e.length_size == 2 else "I"), out, e.length_at, new_length)
    return bytes(out)


def pydicom_test_files() -> list[Path]:
    """The test files pydicom ships in its package (never the ones it would download:
    ``get_testdata_files`` with a pattern tries the network for those)."""
    import pydicom.data

    root = Path(pydicom.data.__file__).parent / "test_files"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in (".py", ".gz"))
