"""A folder destination's ``pacsguard-deid.json``: it lists exactly the files the gateway
confirmed (path, size, SHA-256 of the bytes written), says incomplete while deliveries to the
folder are queued or dead-lettered, and pack's pre-flight reads it as a deid output's."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pacsguard.core.manifest import DEID_MANIFEST_NAME
from pacsguard.gateway.config import load_config
from pacsguard.gateway.folder import FolderSender
from pacsguard.gateway.queue import NewInstance, Queue
from pacsguard.pack.preflight import check_deid_manifest
from pacsguard.pack.tree import list_files
from test_gateway_support import write_config


def test_manifest_follows_the_queue_and_pack_preflight_reads_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = load_config(
        write_config(tmp_path, port=11112,
                     destinations=[{"name": "copy", "type": "folder", "path": str(out)}])
    )  # fmt: skip
    queue = Queue(config.database)
    sender = FolderSender(config.destinations[0], config, queue)
    spool = config.spool
    for n in range(3):
        relative = f"PAT/2.25.1/2.25.2/2.25.{10 + n}.dcm"
        (spool / "work" / "0" / Path(relative).parent).mkdir(parents=True, exist_ok=True)
        (spool / "work" / "0" / relative).write_bytes(bytes([n]) * (100 + n))
        new = NewInstance(f"2.25.{10 + n}", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1",
                          "CT", relative, f"work/0/{relative}", 100 + n, "M", "dicom")  # fmt: skip
        queue.add(new, ["copy"])
    sender.settle(idle=True, changed=False)  # a start writes it at once: nothing landed yet
    doc = json.loads((out / DEID_MANIFEST_NAME).read_text())
    assert doc["complete"] is False and doc["counts"]["pending"] == 3 and doc["files"] == []
    assert any("unprocessed" in p for p in check_deid_manifest(out, list_files(out)))

    items = queue.due("copy", 10)
    first = sender.send(items[:2], spool)
    assert [error for _, error in first] == [None, None]
    queue.sent([item for item, _ in first])
    sender.settle(idle=True, changed=True)
    doc = json.loads((out / DEID_MANIFEST_NAME).read_text())
    assert doc["complete"] is False and doc["counts"]["pending"] == 1
    assert [f["path"] for f in doc["files"]] == sorted(i.relative for i in items[:2])

    rest = sender.send(items[2:], spool)
    queue.sent([item for item, _ in rest])
    sender.settle(idle=False, changed=True)  # within a second of the last: not yet due
    assert json.loads((out / DEID_MANIFEST_NAME).read_text())["counts"]["pending"] == 1
    sender.settle(idle=True, changed=False)  # the queue is idle: written now
    doc = json.loads((out / DEID_MANIFEST_NAME).read_text())
    assert doc["complete"] is True and doc["counts"]["output"] == 3
    for entry in doc["files"]:
        data = (out / entry["path"]).read_bytes()
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert check_deid_manifest(out, list_files(out)) == []
    (out / "PAT" / "stray.dcm").write_bytes(b"not sent by the gateway")
    assert check_deid_manifest(out, list_files(out)) == [
        "1 file(s) in the folder are not in the de-identification manifest"
    ]
    queue.close()
