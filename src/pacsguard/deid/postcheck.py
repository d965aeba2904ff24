"""Defence in depth: the written header, searched for the identity of the input.

After an output is written, and before it is committed, its header bytes are read back and
walked with the strict grammar, then searched — whatever the VR of each element, in every
encoding a file may use — for the identity tokens gathered from the raw *input* bytes
(``identity.gather``). Any hit sends the input to quarantine. This is a second
implementation on purpose: one multi-pattern byte search, sharing nothing with the engines'
sweep but the tokens, so a bug in one is caught by the other.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pacsguard.deid.grammar import GrammarError, Header, Node, parse, read_header, tag_text
from pacsguard.deid.identity import Identity
from pacsguard.deid.text import fold
from pacsguard.deid.walkmemo import WalkMemo

_PLACEHOLDER = re.compile(rb"\[(?:NAME|ID|DATE|ADDR|PHONE|EMAIL|NIR)\]")
ENCODINGS = ("utf-8", "latin-1", "cp1252", "iso8859_15", "utf-16-le")
_LETTER = rb"A-Za-z\x80-\xff"
_WORD = re.compile(rb"[a-z0-9\x80-\xff]+")  # on the lowered header: its maximal words
_DIGITS = re.compile(rb"[0-9]+")
# The same words, found by turning every other byte into a space and splitting: set(words)
# is set(_WORD.findall(lowered)), a few times quicker (tests/test_deid_shared_nodes.py).
_WORD_BYTES = (
    frozenset(range(0x61, 0x7B)) | frozenset(range(0x30, 0x3A)) | frozenset(range(0x80, 0x100))
)
_WORDS_APART = bytes(b if b in _WORD_BYTES else 0x20 for b in range(256))
_NUMBERS_APART = bytes(b if 0x30 <= b <= 0x39 else 0x20 for b in range(256))


def words_of(lowered: bytes) -> set[bytes]:
    """The maximal runs of ``_WORD`` in ``lowered``."""
    return set(lowered.translate(_WORDS_APART).split())


def numbers_of(lowered: bytes) -> set[bytes]:
    """The maximal runs of digits in ``lowered``."""
    return set(lowered.translate(_NUMBERS_APART).split())


@dataclass(frozen=True)
class Residue:
    """Where an identity token was found in the written header (no value)."""

    kind: str
    tag: int

    @property
    def reason(self) -> str:
        return (
            f"post-write check: an identifying {self.kind} of the input remains in "
            f"{tag_text(self.tag)}"
        )


def _variants(token: str) -> set[str]:
    plain = fold(token)
    return {token, token.upper(), token.title(), plain, plain.upper(), plain.title()}


def _encoded(token: str) -> set[bytes]:
    out: set[bytes] = set()
    for variant in _variants(token):
        for encoding in ENCODINGS:
            try:
                out.add(variant.encode(encoding))
            except UnicodeEncodeError:
                continue
    return {b for b in out if b}


_SEPARATORS = rb"[\s^,_\x00]+"
# A two-letter token (a one-part name, "KO") is also a word of every file's structure: a VR
# code ("OB", "UN") stands alone between tag and length bytes. The byte search leaves such
# tokens to the sweep, which looks at values only.
MIN_TOKEN = 3


def _bounds(numeric: bool) -> tuple[bytes, bytes]:
    """What may not stand before a token (a class) and after it (a lookahead)."""
    if numeric:
        return rb"[0-9.]", rb"(?![0-9]|\.[0-9])"
    return rb"[" + _LETTER + rb"0-9]", rb"(?![" + _LETTER + rb"0-9])"


def _pattern(raw: bytes, numeric: bool) -> bytes:
    """The token's bounded pattern, searched case-insensitively in the header (the
    meaning of a residue; ``_fast_pattern`` is the same search, made quick)."""
    words = [re.escape(w) for w in re.split(rb"[ ]+", raw) if w]
    before, after = _bounds(numeric)
    return rb"(?<!" + before + rb")" + _SEPARATORS.join(words) + after


def _fast_pattern(raw: bytes, numeric: bool) -> bytes:
    """``_pattern``'s search as a case-sensitive one in the lowered header: the words
    lowered (ASCII, as ``re.IGNORECASE`` folds bytes and ``bytes.lower`` lowers them), and
    the look behind moved past the first word, so that the pattern starts with a literal
    the regex engine scans for. ``W(?<!CW)`` is ``(?<!C)W``: the W just matched ends the
    look-behind's window, which then tests only the byte before W (none at the start)."""
    words = [re.escape(w) for w in re.split(rb"[ ]+", raw.lower()) if w]
    before, after = _bounds(numeric)
    first = words[0] + rb"(?<!" + before + words[0] + rb")"
    return _SEPARATORS.join([first, *words[1:]]) + after


@dataclass(frozen=True)
class Needle:
    """One encoded form of one token: found by a plain byte search (``needle``, ASCII
    lower case), then confirmed on its word boundaries (``pattern``). ``anchor``: the
    needle's leading word, which its boundaries force to be a whole word of the header (a
    run of digits for a number): looked up in the header's set of words, one pass for all
    needles, instead of a search of the header per needle. None: a plain byte search."""

    needle: bytes
    pattern: bytes  # the reference search: case-insensitive, in the header
    kind: str
    anchor: bytes | None = None
    numeric: bool = False
    fast: bytes = b""  # the same search in the lowered header, compiled when needed


def _anchor(first: bytes, numeric: bool) -> bytes | None:
    """The leading run of ``first`` that must stand alone in the header, when it is long
    enough to tell anything (a lone letter, as in UTF-16, is everywhere)."""
    run = (_DIGITS if numeric else _WORD).match(first)
    return run.group(0) if run is not None and len(run.group(0)) >= 2 else None


@functools.lru_cache(maxsize=64)
def compile_identity(identity: Identity) -> tuple[Needle, ...]:
    """The needles of every token of ``identity`` (cached on the tokens themselves). A
    single alternation of hundreds of bounded patterns costs the regex engine each of them
    at each position; ``bytes.find`` per needle, then one bounded match, is fast."""
    needles: dict[bytes, Needle] = {}
    for kind, tokens in (
        ("name", identity.names),
        ("ID", identity.ids),
        ("date", identity.dates),
        ("address", identity.places),
    ):
        for token in tokens:
            if len(token) < MIN_TOKEN:
                continue
            numeric = token.replace("/", "").replace("-", "").replace(".", "").isdigit()
            for raw in _encoded(token):
                first = re.split(rb"[ ]+", raw.strip())[0].lower()
                if not first:
                    continue
                key = raw.lower()
                if key not in needles:
                    needles[key] = Needle(
                        first,
                        _pattern(raw, numeric),
                        kind,
                        _anchor(first, numeric),
                        numeric,
                        _fast_pattern(raw, numeric),
                    )
    return tuple(sorted(needles.values(), key=lambda n: -len(n.pattern)))


@dataclass(frozen=True)
class _Index:
    """An identity's needles by what must be in the header for each to match: its anchor
    among the header's words (or digit runs), or, anchorless, its bytes anywhere."""

    needles: tuple[Needle, ...]
    words: dict[bytes, list[int]]
    numbers: dict[bytes, list[int]]
    plain: dict[bytes, list[int]]


@functools.lru_cache(maxsize=64)
def _index(identity: Identity) -> _Index:
    needles = compile_identity(identity)
    words: dict[bytes, list[int]] = {}
    numbers: dict[bytes, list[int]] = {}
    plain: dict[bytes, list[int]] = {}
    for position, needle in enumerate(needles):
        if needle.anchor is None:
            plain.setdefault(needle.needle, []).append(position)
        else:
            (numbers if needle.numeric else words).setdefault(needle.anchor, []).append(position)
    return _Index(needles, words, numbers, plain)


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: bytes) -> re.Pattern[bytes]:
    return re.compile(pattern)


def check_header(header: Header, identity: Identity) -> Residue | GrammarError | None:
    """The first residue of ``identity`` in a written file's header (parsed strictly), or
    the grammar error of an output that breaks the grammar (never expected: fail closed)."""
    if header.anomalies:
        reason = header.anomalies[0].reason
        return GrammarError(f"post-write check: the output breaks the grammar ({reason})")
    extent = header.pixel_offset if header.pixel_offset is not None else len(header.buf)
    # The cleaning's own placeholders ("[NAME]") are not residues: blanked, same length, so
    # that offsets still name their element; any other bracketed text is searched.
    data = header.buf[:extent]
    if b"[" in data:
        data = _PLACEHOLDER.sub(lambda m: b" " * len(m.group(0)), data)
    lowered = data.lower()
    index = _index(identity)
    # The needles that can match, in their order: the first that does names the residue.
    found = [p for w in index.words.keys() & words_of(lowered) for p in index.words[w]]
    found += [p for n in index.numbers.keys() & numbers_of(lowered) for p in index.numbers[n]]
    found += [p for needle, at in index.plain.items() if needle in lowered for p in at]
    for position in sorted(found):
        needle = index.needles[position]
        match = _compiled(needle.fast).search(lowered)
        if match is not None:
            return Residue(needle.kind, _tag_at(header.elements, match.start()))
    return None


def check_bytes(data: bytes, identity: Identity) -> Residue | GrammarError | None:
    """``check_header`` on a whole written file held in memory."""
    try:
        header = parse(data, whole=True)
    except GrammarError as exc:
        return GrammarError(f"post-write check: the output does not parse ({exc})")
    return check_header(header, identity)


def check_file(path: Path, identity: Identity) -> Residue | GrammarError | None:
    """``check_header`` on the written file at ``path``; its pixels are not read."""
    with path.open("rb") as handle:
        return check_handle(handle, identity)


def check_handle(
    handle: BinaryIO, identity: Identity, memo: WalkMemo | None = None, first: int | None = None
) -> Residue | GrammarError | None:
    """``check_file`` on a written file open from its start (read up to its pixels);
    ``memo``: the last clean walk of an output (``walkmemo``); ``first``: how many bytes to
    read first, when the writer knows where its header ends (more are read if need be)."""
    try:
        size = os.fstat(handle.fileno()).st_size
        header, _ = read_header(handle, size, memo, first=first)
    except GrammarError as exc:
        return GrammarError(f"post-write check: the output does not parse ({exc})")
    return check_header(header, identity)


def _tag_at(nodes: list[Node], offset: int) -> int:
    """The innermost element whose bytes hold ``offset`` (0 when in the File Meta)."""
    for node in nodes:
        if node.value - 12 <= offset < node.end:
            for item in node.items or []:
                inner = _tag_at(item, offset)
                if inner:
                    return inner
            return node.tag
    return 0
