"""Folders on object storage: fsspec URLs (``s3://bucket/prefix``), through ``pacsguard[cloud]``.

Only what a URL names goes through fsspec; local paths never do (their code stays as it
is). What holds on a store whose PUT is atomic per object (S3 and the stores that speak
its protocol):

- **No partial object under a final name.** An output is written whole on local scratch,
  checked there, then sent in one PUT (a multipart upload for large ones, which also
  appears only once complete) to a temporary key ``.tmp-<input fingerprint>-<random>``
  beside its final key; once the run's one naming thread has decided the final name, the
  temporary object is copied server-side to it (atomic per object) and removed. A crash
  leaves either no final object or a complete one; temporary keys are swept at the next
  start. A PUT that returned is durable: there is no sync to make.
- **Credentials** come only from the environment and the stores' usual configuration
  (``AWS_*`` variables, ``~/.aws``, fsspec's ``FSSPEC_S3_*`` settings): a URL that carries
  them is refused, and no error names more than the URL and the kind of failure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pacsguard.core.errors import InputError, OutputError
from pacsguard.core.io import InputItem

URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)")
EXTRA = "pip install 'pacsguard[cloud]'"
TEMPORARY = ".tmp-"


class StoreError(OutputError):
    """The object store cannot be reached, or refused an operation: the run stops, and the
    same command run again once it is fixed finishes it."""


def is_url(value: object) -> bool:
    """Whether ``value`` (a str) names a place through fsspec (``scheme://...``)."""
    return isinstance(value, str) and URL.match(value) is not None


def path_or_url(text: str) -> Path | str:
    """A command-line place: a URL stays text (a Path would fold its ``//``), anything else
    is a path."""
    return text if is_url(text) else Path(text)


def _filesystem(protocol: str) -> Any:
    """The fsspec filesystem of ``protocol`` (fsspec keeps one per process and settings)."""
    try:
        import fsspec
    except ImportError:
        raise InputError(f"{protocol}:// paths need the optional extra: {EXTRA}") from None
    try:
        return fsspec.filesystem(protocol)
    except ImportError:
        raise InputError(
            f"{protocol}:// paths need the optional extra ({EXTRA}; s3fs for s3://)"
        ) from None
    except ValueError:
        raise InputError(f"{protocol}:// is not a storage that fsspec knows") from None


def failure(url: str, exc: BaseException) -> StoreError:
    """One line naming the URL and the kind of failure, never the store's own message
    (which may quote request details)."""
    kind = type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        why = "no such bucket or object"
    elif isinstance(exc, PermissionError):
        why = "access denied: check the credentials in the environment"
    else:
        why = f"unreachable or refused ({kind})"
    return StoreError(f"cannot use {url}: {why}; fix it, then run the same command again")


@dataclass(frozen=True)
class RemoteFolder:
    """A folder-like prefix on an object store; pickles as its URL alone."""

    url: str

    @classmethod
    def parse(cls, text: str) -> RemoteFolder:
        match = URL.fullmatch(text.strip())
        if match is None:
            raise InputError(f"{text!r} is not a URL")
        protocol, rest = match.group(1).lower(), match.group(2).strip("/")
        if protocol in ("file", "local"):
            raise InputError(f"{text}: give a local path as a path, not a file:// URL")
        bucket = rest.split("/", 1)[0]
        if "@" in bucket or not bucket:
            raise InputError(
                f"{protocol}:// URL without a bucket, or with credentials in it: name the "
                "bucket only; credentials come from the environment (AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY, ~/.aws) or fsspec's configuration, never argv"
            )
        return cls(f"{protocol}://{rest}")

    def __str__(self) -> str:
        return self.url

    @property
    def protocol(self) -> str:
        return self.url.split("://", 1)[0]

    @property
    def bucket(self) -> str:
        return self.url.split("://", 1)[1].split("/", 1)[0]

    @property
    def fs(self) -> Any:
        return _filesystem(self.protocol)

    def join(self, relative: str) -> str:
        return f"{self.url}/{relative}" if relative else self.url

    def inside(self, other: RemoteFolder) -> bool:
        """Whether this folder is ``other`` or lies under it."""
        return self.url == other.url or self.url.startswith(other.url + "/")

    def check(self) -> None:
        """The bucket is there and answers (a clear error before any work otherwise)."""
        fs = self.fs
        try:
            fs.ls(f"{self.protocol}://{self.bucket}", detail=False, refresh=True)
        except Exception as exc:
            raise failure(f"{self.protocol}://{self.bucket}", exc) from None

    def check_input(self) -> None:
        """Reachable, and an object or a prefix with objects under it."""
        self.check()
        if not self.is_file() and not self.entries(self.url):
            raise InputError(f"input {self} does not exist (no object under it)")

    def is_file(self) -> bool:
        fs = self.fs
        try:
            return bool(fs.isfile(self.url))
        except Exception as exc:
            raise failure(self.url, exc) from None

    def entries(self, url: str) -> list[dict[str, Any]]:
        """One listing (a "folder"), not cached: a walk of 10^8 objects keeps none."""
        fs = self.fs
        try:
            listing = fs.ls(url, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise failure(url, exc) from None
        finally:
            fs.invalidate_cache(url)
        return sorted(listing, key=lambda entry: str(entry["name"]))

    def walk(self, prune: Callable[[str], bool]) -> Iterator[dict[str, Any]]:
        """Every object under this folder: a folder's objects first, then its sub-folders,
        each in name order (as the local walk goes); folders for which ``prune(url)``
        holds are left out."""
        yield from self._walk(self.url, prune)

    def _walk(self, url: str, prune: Callable[[str], bool]) -> Iterator[dict[str, Any]]:
        folders = []
        for entry in self.entries(url):
            name = f"{self.protocol}://{str(entry['name']).strip('/')}"
            if entry.get("type") == "directory":
                if not prune(name):
                    folders.append(name)
            elif not PurePosixPath(name).name.startswith(TEMPORARY):
                yield {**entry, "url": name}
        for folder in folders:
            yield from self._walk(folder, prune)


def iter_remote(
    given: RemoteFolder, exclude: list[RemoteFolder], skip: Callable[[str, str], None]
) -> Iterator[InputItem]:
    """Every object under ``given`` (or ``given`` itself, an object), as inputs: streamed,
    one listing at a time. Folders in ``exclude`` (the output, a quarantine) are left out;
    zip archives are listed as skipped (they are read from local paths only)."""
    if any(given.inside(other) for other in exclude):
        return
    if given.is_file():
        fs = given.fs
        try:
            info = fs.info(given.url)
        except Exception as exc:
            raise failure(given.url, exc) from None
        entries: Iterator[dict[str, Any]] = iter([{**info, "url": given.url}])
    else:
        excluded = {other.url for other in exclude}
        entries = given.walk(lambda url: url in excluded)
    for entry in entries:
        url = str(entry["url"])
        if url.lower().endswith(".zip"):
            skip(url, "a zip archive on object storage: copy it to a local path to read it")
            continue
        yield InputItem(
            label=url,
            path=Path(PurePosixPath(url.split("://", 1)[1]).name),
            size=int(entry.get("size") or 0),
            mtime_ns=modified_ns(entry),
            remote=url,
        )


def _fs_of(url: str) -> Any:
    return _filesystem(url.split("://", 1)[0])


def put_file(local: str | Path, url: str) -> None:
    """One upload, whole: the object appears under ``url`` only once complete."""
    fs = _fs_of(url)
    try:
        fs.put_file(str(local), url)
    except Exception as exc:
        raise failure(url, exc) from None


def put_bytes(url: str, data: bytes) -> None:
    fs = _fs_of(url)
    try:
        fs.pipe_file(url, data)
    except Exception as exc:
        raise failure(url, exc) from None


def get_file(url: str, local: Path) -> None:
    """Download ``url`` to ``local``; FileNotFoundError when the object is gone."""
    fs = _fs_of(url)
    try:
        fs.get_file(url, str(local))
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise failure(url, exc) from None


def read_bytes(url: str) -> bytes:
    fs = _fs_of(url)
    try:
        return bytes(fs.cat_file(url))
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise failure(url, exc) from None


def move(tmp: str, final: str) -> None:
    """``tmp`` to ``final``: a server-side copy (atomic per object), then the temporary
    removed. Run again after a crash it finds the copy done and goes on."""
    fs = _fs_of(tmp)
    try:
        fs.copy(tmp, final)
    except FileNotFoundError:
        if size(final) is None:  # neither: not a retry of this very move
            raise StoreError(
                f"an output written to {final.rsplit('/', 1)[0]} vanished before it was "
                "named; run the same command again"
            ) from None
        return
    except Exception as exc:
        raise failure(final, exc) from None
    remove(tmp)


def remove(url: str) -> None:
    """Remove ``url``; one that is not there is fine."""
    fs = _fs_of(url)
    try:
        fs.rm_file(url)
    except FileNotFoundError:
        pass
    except Exception as exc:
        raise failure(url, exc) from None


def size(url: str) -> int | None:
    """The object's size, None when it is not there."""
    fs = _fs_of(url)
    try:
        info = fs.info(url, refresh=True)
    except FileNotFoundError:
        return None
    except Exception as exc:
        raise failure(url, exc) from None
    if info.get("type") != "file":
        return None
    return int(info["size"])


def sha256(url: str) -> str | None:
    fs = _fs_of(url)
    try:
        with fs.open(url, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return None
    except Exception as exc:
        raise failure(url, exc) from None


def modified_ns(entry: dict[str, Any]) -> int:
    """An object's modification time in ns (S3: LastModified), for its fingerprint; the
    ETag, where there is one, changes it too (a rewrite within the same second)."""
    stamp: Any = entry.get("LastModified") or entry.get("mtime") or entry.get("last_modified")
    seconds = float(stamp.timestamp()) if hasattr(stamp, "timestamp") else float(stamp or 0)
    tag = str(entry.get("ETag") or "")
    salt = int.from_bytes(hashlib.sha256(tag.encode()).digest()[:2], "big") if tag else 0
    return int(seconds * 1_000_000) * 1000 + salt % 1000


def sweep_temporaries(folder: RemoteFolder) -> None:
    """Remove the temporary objects that attempts lost in a crash left under ``folder``."""
    for entry in _temporaries(folder, folder.url):
        remove(entry)


def _temporaries(folder: RemoteFolder, url: str) -> Iterator[str]:
    for entry in folder.entries(url):
        name = f"{folder.protocol}://{str(entry['name']).strip('/')}"
        if entry.get("type") == "directory":
            yield from _temporaries(folder, name)
        elif PurePosixPath(name).name.startswith(TEMPORARY):
            yield name


__all__ = [
    "RemoteFolder",
    "StoreError",
    "get_file",
    "is_url",
    "iter_remote",
    "move",
    "put_bytes",
    "put_file",
    "read_bytes",
    "remove",
    "sha256",
    "size",
    "sweep_temporaries",
]
