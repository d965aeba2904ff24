"""Text encodings of CSV exports: UTF-8, or Latin-1 / cp1252 (common in French exports),
transcoded to UTF-8 in streaming chunks because polars reads UTF-8 only."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

from pacsguard.tables.errors import TableReadError

CHUNK = 4 << 20
ENCODINGS = ("utf-8", "cp1252", "latin-1")
_C1 = bytes(range(0x80, 0xA0))
_UNDEFINED_IN_CP1252 = bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D])


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def detect_encoding(path: Path) -> str:
    """``utf-8`` when the whole file decodes as UTF-8; else ``cp1252`` when it holds bytes
    that only cp1252 gives a meaning to (0x80-0x9F: €, œ, ’...), else ``latin-1``."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for chunk in _chunks(path):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    c1_seen = False
    for chunk in _chunks(path):
        if chunk.translate(None, _UNDEFINED_IN_CP1252) != chunk:
            return "latin-1"
        c1_seen = c1_seen or chunk.translate(None, _C1) != chunk
    return "cp1252" if c1_seen else "latin-1"


def transcode(source: Path, encoding: str, target: Path) -> None:
    """Write ``source`` (in ``encoding``) to ``target`` as UTF-8, chunk by chunk."""
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with target.open("wb") as out:
            for chunk in _chunks(source):
                out.write(decoder.decode(chunk).encode("utf-8"))
            out.write(decoder.decode(b"", final=True).encode("utf-8"))
    except UnicodeDecodeError as exc:
        raise TableReadError(
            f"{source}: not valid {encoding} text (byte offset {exc.start}); "
            f"give the right --encoding ({', '.join(ENCODINGS)})"
        ) from None
