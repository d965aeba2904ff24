"""Text encodings of CSV/TSV exports, and the check that no table is read under a guess.

What spreadsheets write: Excel "CSV UTF-8" (UTF-8 with a BOM), "CSV" (cp1252 on Western
Windows), "Unicode text" (UTF-16 LE with a BOM), "CSV (Macintosh)" (mac-roman), "CSV (MS-DOS)"
(cp850); LibreOffice any of UTF-8, UTF-16/32 LE/BE, cp1252, ISO-8859-1/15. polars reads UTF-8
only, so anything else is transcoded to UTF-8 in streaming chunks.

Detection never guesses a multi-byte text into a single-byte one: a byte order mark decides
first, then NUL patterns (UTF-16/32 without a BOM), then UTF-8 if the whole file decodes, and
only then cp1252 / Latin-1. Whatever is chosen, detected or given, the header row must decode
cleanly under it (no NUL, no control character, no replacement character, no BOM left, no
UTF-8 read as a single-byte encoding), or the table is refused: a header that does not read
back is a policy that matches nothing, and that leaks.
"""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from pacsguard.tables.errors import TableReadError

CHUNK = 4 << 20
HEAD = 64 << 10
# Names accepted by --encoding (the detected ones first), each a Python codec name.
ENCODINGS = (
    "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le",
    "utf-32-be", "cp1252", "latin-1", "iso-8859-15", "mac-roman", "cp850",
)  # fmt: skip
SINGLE_BYTE = frozenset({"cp1252", "latin-1", "iso-8859-15", "mac-roman", "cp850"})
# Longest BOM first: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_C1 = bytes(range(0x80, 0xA0))
_UNDEFINED_IN_CP1252 = bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D])
DETECTION_ORDER = "byte order mark, UTF-16/32 NUL pattern, utf-8, cp1252/latin-1"
CHOOSE = "choose one with --encoding (" + ", ".join(ENCODINGS) + ")"


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(HEAD)


def bom_encoding(head: bytes) -> str | None:
    """The encoding a byte order mark announces, if the file starts with one."""
    return next((name for bom, name in _BOMS if head.startswith(bom)), None)


def nul_pattern(head: bytes) -> str | None:
    """UTF-16/32 without a BOM, from where the NUL bytes of mostly-ASCII text fall.

    Returns ``"binary"`` when NULs are there but fit no pattern: not text in any encoding
    a table may be read in."""
    if b"\0" not in head:
        return None
    size = len(head) - len(head) % 4
    if size < 4:
        return "binary"
    lanes = [head[i:size:4] for i in range(4)]
    zero = [lane.count(0) / len(lane) for lane in lanes]
    if zero[1] > 0.9 and zero[2] > 0.9 and zero[3] > 0.9:
        return "utf-32-le"
    if zero[0] > 0.9 and zero[1] > 0.9 and zero[2] > 0.9:
        return "utf-32-be"
    odd, even = head[1:size:2].count(0) / (size / 2), head[0:size:2].count(0) / (size / 2)
    if odd > 0.6 and even < 0.1:
        return "utf-16-le"
    if even > 0.6 and odd < 0.1:
        return "utf-16-be"
    return "binary"


def _decodes_as_utf8(path: Path) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for chunk in _chunks(path):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def detect_encoding(path: Path) -> str:
    """The encoding of a text table: its BOM, else its NUL pattern (UTF-16/32), else
    ``utf-8`` when the whole file decodes as UTF-8, else ``cp1252`` when it holds bytes that
    only cp1252 gives a meaning to (0x80-0x9F: €, œ, ’...), else ``latin-1``. The header
    check (``check_header``) is what makes a wrong answer a refusal rather than a leak."""
    head = _head(path)
    found = bom_encoding(head) or nul_pattern(head)
    if found == "binary":
        raise TableReadError(
            f"{path}: holds NUL bytes in no UTF-16/UTF-32 pattern: not a text table; {CHOOSE}"
        )
    if found is not None:
        return found
    if _decodes_as_utf8(path):
        return "utf-8"
    c1_seen = False
    chosen = None
    for chunk in _chunks(path):
        if chunk.translate(None, _UNDEFINED_IN_CP1252) != chunk:
            chosen = "latin-1"
            break
        c1_seen = c1_seen or chunk.translate(None, _C1) != chunk
    chosen = chosen or ("cp1252" if c1_seen else "latin-1")
    scores = {name: plausibility(head, name) for name in SINGLE_BYTE_ORDER}
    best = max(scores.values())
    top = [name for name in SINGLE_BYTE_ORDER if scores[name] == best]
    reading = head.decode(chosen, errors="replace")
    rivals = [name for name in top if head.decode(name, errors="replace") != reading]
    if chosen not in top or rivals:
        others = [name for name in top if name != chosen]
        raise TableReadError(
            f"{path}: single-byte text whose accents read as well or better as "
            f"{' or '.join(others)} than as {chosen} (the bytes alone cannot tell); "
            f"give --encoding {others[0]}, or --encoding {chosen} if that is what the export used"
        )
    return chosen


SINGLE_BYTE_ORDER = ("cp1252", "latin-1", "iso-8859-15", "mac-roman", "cp850")
_PLAUSIBLE_MARKS = frozenset("’‘“”«»°€–—…·²")


def plausibility(head: bytes, encoding: str) -> int:
    """How much the non-ASCII characters of ``head`` read like text under ``encoding``: +1
    for a letter whose case fits its neighbours (é inside a lower-case word, É in an upper-case
    one or starting a word) or a usual mark (’ « ° €), -1 for anything else (Ž inside
    "PrŽnom", ½, controls). Single-byte encodings all decode every byte; this tells them apart
    where their letters differ."""
    text = head.decode(encoding, errors="replace")
    score = 0
    for index, char in enumerate(text):
        if char.isascii():
            continue
        if char in _PLAUSIBLE_MARKS:
            score += 1
            continue
        before = text[index - 1] if index else " "
        after = text[index + 1] if index + 1 < len(text) else " "
        if char.islower():
            fits = (before.isalpha() and before.islower()) or (after.isalpha() and after.islower())
        elif char.isupper():
            fits = (before.isupper() or after.isupper()) or (
                not before.isalpha() and (after.islower() or not after.isalpha())
            )
        else:
            fits = False
        score += 1 if fits else -1
    return score


def _header_text(head: bytes, encoding: str) -> str:
    """The first row of ``head`` decoded under ``encoding`` (strict; the bytes after the
    first line break are not read, so an error in the body is the body's to report)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    text = ""
    for start in range(0, len(head), 4):
        text += decoder.decode(head[start : start + 4])
        if "\n" in text:
            break
    else:
        text += decoder.decode(b"", final=len(head) < HEAD)
    line = text.split("\n", 1)[0]
    return line[:-1] if line.endswith("\r") else line


def header_problem(head: bytes, encoding: str) -> str | None:
    """Why the header row of ``head`` does not read cleanly under ``encoding``, or None."""
    if encoding.startswith(("utf-16", "utf-32")) and b"\0" not in head:
        # every ASCII character (a separator, a digit, a line break) holds a NUL byte there:
        # read so, one-byte text is one "header" cell of whatever those pairs spell
        return "it holds no NUL byte, as any text in that encoding with a separator would"
    try:
        header = _header_text(head, encoding)
    except UnicodeError:  # UnicodeDecodeError, or "UTF-16 stream does not start with BOM"
        return "it is not valid text in that encoding"
    if not header.strip():
        return "it is empty"
    if "\ufeff" in header or "\ufffe" in header:
        return "it holds a byte order mark (the file is in another encoding)"
    if "\ufffd" in header:
        return "it holds replacement characters"
    controls = [c for c in header if c != "\t" and unicodedata.category(c) in ("Cc", "Cs", "Co")]
    if controls:
        return "it holds control characters (NUL or C1 bytes)"
    raw = head.split(b"\n", 1)[0]
    if encoding in SINGLE_BYTE and not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "its non-ASCII characters are UTF-8 (read as a single-byte encoding they garble)"
    return None


def check_header(path: Path, encoding: str, *, detected: bool) -> None:
    """Refuse ``path`` unless its header row decodes cleanly under ``encoding``."""
    head = _head(path)
    problem = header_problem(head, encoding)
    if problem is None:
        return
    if not head.strip():
        raise TableReadError(f"{path}: the file is empty (no header row); nothing to read")
    tried = DETECTION_ORDER + f" -> {encoding}" if detected else f"{encoding} (--encoding)"
    raise TableReadError(
        f"{path}: the header row does not decode cleanly as {encoding}: {problem}; "
        f"tried {tried}; {CHOOSE}"
    )


def transcode(source: Path, encoding: str, target: Path) -> None:
    """Write ``source`` (in ``encoding``) to ``target`` as UTF-8 without a BOM, chunk by
    chunk; a NUL anywhere in the decoded text refuses the table (no CSV reader agrees on
    what it means)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    try:
        with target.open("wb") as out:
            for chunk in _chunks(source):
                text = decoder.decode(chunk)
                _no_nul(source, text, encoding)
                out.write(text.encode("utf-8"))
                offset += len(chunk)
            text = decoder.decode(b"", final=True)
            _no_nul(source, text, encoding)
            out.write(text.encode("utf-8"))
    except UnicodeDecodeError as exc:
        raise TableReadError(
            f"{source}: not valid {encoding} text (byte offset {offset + exc.start}); {CHOOSE}"
        ) from None
    except UnicodeError:  # a codec's own refusal ("UTF-16 stream does not start with BOM")
        raise TableReadError(f"{source}: not valid {encoding} text; {CHOOSE}") from None


def _no_nul(source: Path, text: str, encoding: str) -> None:
    if "\0" in text:
        raise TableReadError(f"{source}: read as {encoding}, the text holds NUL bytes; {CHOOSE}")
