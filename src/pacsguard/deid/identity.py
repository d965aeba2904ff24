"""Who a file is about: identity gathered from the raw bytes of everything that carries it.

The final sweep and the post-write check search for these tokens, so they must not depend
on one exact Patient's Name. Every identity attribute (``identifying-keywords.toml``) is read
at any depth — Other Patient IDs Sequence, referenced patients, nested items — and each value
is decoded under the declared Specific Character Set *and* the plausible others (Latin-1,
UTF-8), since a file may declare one and hold another. Values are normalised (case, accents,
NUL / space / caret / backslash separators, DICOM padding) and split into the tokens that
identify on their own: name parts, IDs, dates in their written forms, address parts.
Identifiers whose shape proves them (a NIR with a valid key, an INS, an e-mail address, a
phone number) are taken from any free text of the input too: a file that names no patient
attribute may still carry one in a code meaning.
"""

from __future__ import annotations

import contextlib
import functools
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import tag_for_keyword

from pacsguard.core.names import width
from pacsguard.core.shapes import find_email, find_ins, find_nir, find_phone
from pacsguard.deid.grammar import Header, Node
from pacsguard.deid.profile import load_identifying_keywords
from pacsguard.deid.text import KnownValues, date_forms, fold, visible

CHARSET_TAG = 0x00080005
MIN_NAME = 3
MIN_ID = 3
MIN_PLACE = 4
_SPLIT = re.compile(r"[\s\^=\\,;:/\x00|_]+")
_ID_SPLIT = re.compile(r"[\s\^=\\,;:/\x00|_\-.#]+")
_DIGIT_RUN = re.compile(r"[0-9]+")
MIN_ID_NUMBER = 6  # a shorter number inside an ID is any number (a year, a count)
_HOUSE_NUMBER = re.compile(r"^\s*\d+\s*(?:bis|ter|[a-z])?\b[\s,]*", re.IGNORECASE)
_DIGITS = re.compile(r"\D+")


@dataclass(frozen=True)
class Identity:
    """The identifying tokens of one file, by kind (normalised: folded, lower case)."""

    names: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    dates: frozenset[str] = frozenset()
    places: frozenset[str] = frozenset()

    def known(self) -> KnownValues:
        """The same tokens as the sweep's known values."""
        return KnownValues(self.names, self.ids, self.dates, self.places)

    def __bool__(self) -> bool:
        return bool(self.names or self.ids or self.dates or self.places)


@functools.cache
def _tag_kinds(institution: bool) -> dict[int, str]:
    words = load_identifying_keywords()
    kinds = {
        "person_names": "name",
        "patient_ids": "id",
        "birth_dates": "date",
        "addresses": "place",
        "institution": "place",
    }
    out: dict[int, str] = {}
    for group, kind in kinds.items():
        if group == "institution" and not institution:
            continue
        for keyword in words[group]:
            tag = tag_for_keyword(keyword)
            if tag is not None:
                out[tag] = kind
    return out


def decodings(raw: bytes, charsets: list[str]) -> set[str]:
    """``raw`` decoded as declared and as the encodings files hold instead."""
    body = raw.rstrip(b" \x00")
    if not body:
        return set()
    out = {body.decode("latin-1"), body.decode("utf-8", "ignore")}
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an undecodable declaration adds nothing
        out.add(decode_bytes(body, convert_encodings(charsets or ["ISO_IR 6"]), set()))
    return {text for text in out if text.strip()}


def gather(header: Header, *, institution: bool = True) -> Identity:
    """The identity tokens of every identity element of ``header``, at any depth."""
    kinds = _tag_kinds(institution)
    buf = header.buf
    names: set[str] = set()
    ids: set[str] = set()
    dates: set[str] = set()
    places: set[str] = set()
    into = {"name": names, "id": ids, "date": dates, "place": places}
    # Each dataset with the character sets in force there: its own, else its parent's.
    pending: list[tuple[list[Node], list[str]]] = [(header.elements, [])]
    while pending:
        nodes, charsets = pending.pop()
        charsets = _declared(buf, nodes, charsets)
        for node in nodes:
            if node.items is not None:
                pending.extend((item, charsets) for item in node.items)
                continue
            kind = kinds.get(node.tag)
            if kind is None:
                if node.vr in FREE_TEXT_VRS:
                    raw = buf[node.value : node.end]
                    if _MAYBE_SHAPED.search(raw):
                        ids |= _shaped_cached(raw)
                continue
            into.get(kind, places).update(
                _tokens(buf[node.value : node.end], tuple(charsets), kind)
            )
    return Identity(frozenset(names), frozenset(ids), frozenset(dates), frozenset(places))


def gathered_from(institution: bool = True) -> Callable[[Node], bool]:
    """Whether ``gather`` reads a leaf's value: its tag names identity, it holds free
    text, or it declares the character set (``walkmemo.Derived`` carries an identity on
    while no such leaf changes)."""
    kinds = _tag_kinds(institution)
    return lambda node: node.tag in kinds or node.vr in FREE_TEXT_VRS or node.tag == CHARSET_TAG


FREE_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UT", "UC", "PN", "UN"})
# Identifiers whose shape alone proves them (a NIR's key, an INS label, an e-mail, a phone
# number): found in any text of the input, they are identity wherever no attribute names them.
_SHAPE_FINDERS = (find_nir, find_ins, find_email, find_phone)
_MAYBE_SHAPED = re.compile(rb"[0-9]{2}|@")


@functools.lru_cache(maxsize=1 << 14)  # keyed by the exact bytes: slices repeat their text
def _shaped_cached(raw: bytes) -> frozenset[str]:
    texts = {raw.decode("latin-1")} if raw.isascii() else decodings(raw, [])
    found: set[str] = set()
    for text in texts:
        text = visible(text)[0]
        for finder in _SHAPE_FINDERS:
            found |= {fold(hit.text).strip() for hit in finder(text) if len(hit.text) >= MIN_ID}
    return frozenset(found)


def _declared(buf: bytes, nodes: list[Node], charsets: list[str]) -> list[str]:
    """The character sets a dataset declares (0008,0005), else those it inherits."""
    own = next((n for n in nodes if n.tag == CHARSET_TAG and n.items is None), None)
    if own is not None:
        declared = buf[own.value : own.end].decode("latin-1").strip(" \x00")
        return [c.strip() for c in declared.split("\\")] if declared else charsets
    return charsets


@functools.lru_cache(maxsize=1 << 14)  # keyed by the exact bytes, charsets and kind
def _tokens(raw: bytes, charsets: tuple[str, ...], kind: str) -> frozenset[str]:
    out: set[str] = set()
    split = {"name": _name_tokens, "id": _id_tokens, "date": _date_tokens}.get(kind, _place_tokens)
    for text in decodings(raw, list(charsets)):
        for value in text.split("\\"):
            value = fold(visible(value)[0]).strip(" \x00")
            if value:
                out |= split(value)
    return frozenset(out)


def _name_tokens(value: str) -> set[str]:
    """A name's tokens, from each of its component groups (PS3.5 6.2.1: alphabetic,
    ideographic, phonetic, '='-separated): its parts long enough to identify, its family
    and given names together (apart and run together), and a name of one part whatever
    its length ("KO": the name itself, as a whole word)."""
    tokens: set[str] = set()
    for group in value.split("="):
        parts = [p for p in _SPLIT.split(group) if p]
        tokens |= {p for p in parts if width(p) >= MIN_NAME and any(c.isalpha() for c in p)}
        if len(parts) >= 2:
            tokens.add(" ".join(parts[:2]))
            tokens.add("".join(parts[:2]))  # SURNAMEGIVEN, run together
        elif parts and sum(c.isalpha() for c in parts[0]) >= 2:
            tokens.add(parts[0])
    return tokens


def _id_tokens(value: str) -> set[str]:
    """An ID, its parts with a digit, and the number it holds as people write it again:
    the digits of "SSN-998877665" or "MRN84736251", without leading zeros ("0012345678"
    is also written "12345678"), when long enough not to be any number."""
    tokens = {value} if len(value) >= MIN_ID else set()
    tokens |= {
        p for p in _ID_SPLIT.split(value) if len(p) >= MIN_ID + 1 and any(c.isdigit() for c in p)
    }
    for digits in _DIGIT_RUN.findall(value):
        tokens |= {d for d in (digits, digits.lstrip("0")) if len(d) >= MIN_ID_NUMBER}
    return tokens


def _date_tokens(value: str) -> set[str]:
    digits = _DIGITS.sub("", value)
    if len(digits) == 8:
        return {fold(form) for form in date_forms(digits)}
    return {value} if len(value) >= 6 else set()


def _place_tokens(value: str) -> set[str]:
    """An address, its parts, and its street without the house number ("rue des Lilas": the
    first part, of two words at least; "75011 Paris" stays whole, a town alone is any town)."""
    tokens = {value} if len(value) >= MIN_PLACE else set()
    parts = [p.strip() for p in re.split(r"[\^,;\n]+", value)]
    tokens |= {p for p in parts if len(p) >= MIN_PLACE}
    street = _HOUSE_NUMBER.sub("", parts[0]).strip() if parts else ""
    if street != parts[0] and len(street.split()) >= 2:  # "rue X", not "75011 Paris"
        tokens.add(street)
    return tokens
