"""deid's inputs, outputs and quarantine on object storage (fsspec URLs, ``pacsguard[cloud]``).

A ``StoreWorker`` is the same ``Worker`` (one engine) with its files moved through local
scratch: an input object is downloaded to a scratch file and processed by the very code
that reads local files; an output is written and checked on scratch, then uploaded whole
to a temporary key beside its final one, which the run's naming thread later copies to the
final key (``core/remote.py``: no partial object under a final name). Scratch lives in a
private temporary folder (mode 0700) of the process that runs the worker, and a copy is
removed as soon as its file is done. Runs whose every place is a local path never build
one.

The quarantine may be a local folder or a URL. It defaults to the local state folder
(``--state``), even when the output is a URL: quarantined files are inputs as they came,
identity included, and the output's bucket is the place meant to be shared. A run on a
cluster of other hosts needs a quarantine its workers can reach: a URL, or a path they
share.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from dataclasses import replace
from pathlib import Path, PurePosixPath

from pacsguard.core import remote
from pacsguard.core.io import InputItem
from pacsguard.core.remote import RemoteFolder
from pacsguard.deid.pipeline import DeidConfig, ItemResult, Worker
from pacsguard.deid.policy import Policy

Place = Path | RemoteFolder
GONE = "could not be read: the object is no longer there"


class StoreWorker(Worker):
    """A Worker whose inputs may be objects and whose output or quarantine may be URLs."""

    def __init__(
        self, key: bytes, config: DeidConfig, policy: Policy, output: Place, quarantine: Place
    ) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="pacsguard-scratch-"))
        weakref.finalize(self, shutil.rmtree, self.scratch, True)
        self.remote_output = output if isinstance(output, RemoteFolder) else None
        self.remote_quarantine = quarantine if isinstance(quarantine, RemoteFolder) else None
        local_output = self.scratch / "output" if self.remote_output else output
        local_quarantine = self.scratch / "quarantine" if self.remote_quarantine else quarantine
        assert isinstance(local_output, Path) and isinstance(local_quarantine, Path)
        super().__init__(key, config, policy, local_output, local_quarantine)
        self._inputs = self.scratch / "inputs"
        self._inputs.mkdir()

    def process(self, item: InputItem) -> ItemResult:
        if item.remote is None:
            result = super().process(item)
        else:
            local = self._inputs / f"{item.fingerprint}-{os.getpid()}"
            try:
                remote.get_file(item.remote, local)
            except FileNotFoundError:
                return self._quarantine(item, GONE)
            try:
                result = super().process(replace(item, path=local))
            finally:
                local.unlink(missing_ok=True)
        if self.remote_output is not None and result.tmp is not None:
            result = self._upload(result)
        return result

    def _upload(self, result: ItemResult) -> ItemResult:
        """The checked output, whole, to a temporary key beside its final one."""
        assert result.tmp is not None and result.outcome.output is not None
        assert self.remote_output is not None
        folder = PurePosixPath(result.outcome.output).parent
        target = self.remote_output.join(str(folder / Path(result.tmp).name))
        try:
            remote.put_file(result.tmp, target)
        finally:
            os.unlink(result.tmp)  # noqa: PTH108
        return replace(result, tmp=target)

    def _input_bytes(self, item: InputItem) -> bytes:
        if item.remote is not None and item.path.is_absolute():  # the scratch copy
            return item.path.read_bytes()
        try:
            return item.read_bytes()
        except FileNotFoundError:
            return b""

    def _keep_quarantined(self, name: str, data: bytes, record: bytes) -> None:
        if self.remote_quarantine is None:
            super()._keep_quarantined(name, data, record)
            return
        remote.put_bytes(self.remote_quarantine.join(f"{name}.bin"), data)
        remote.put_bytes(self.remote_quarantine.join(f"{name}.json"), record)


__all__ = ["Place", "StoreWorker"]
