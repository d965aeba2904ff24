"""What a run may claim: its output bound to the settings that made it, resumes that check.

- **Binding.** The state records the key's keyed fingerprint (never the key), the options,
  the policy's hash, the date-shift range, the patient map's hash, the engine version and
  the switches that change outputs. A run into an existing output with other settings is
  refused with what differs, unless ``--redo`` asks to reprocess everything.
- **Resume.** Every journalled output must still be there with its recorded size (and
  SHA-256, with ``--check``); a missing or changed one is redone, and the run says so.
- **Places.** An output equal to, or inside, an input (or an input inside the output) is
  refused before anything is written.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from pacsguard import __version__
from pacsguard.core import remote
from pacsguard.core.errors import InputError
from pacsguard.core.io import InputItem
from pacsguard.core.keys import ProjectKey
from pacsguard.core.manifest import DEID_MANIFEST_NAME, Journal
from pacsguard.core.remote import RemoteFolder
from pacsguard.deid.policy import Policy

Folder = Path | RemoteFolder

# Bumped whenever the same input, key and settings would give other output bytes.
ENGINE_REVISION = "2"


def key_fingerprint(key: ProjectKey) -> str:
    """A keyed fingerprint of the project key: tells keys apart, reveals nothing of them."""
    return hmac.new(key.material, b"pacsguard key fingerprint", hashlib.sha256).hexdigest()[:16]


def _file_sha256(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def run_settings(
    key: ProjectKey,
    *,
    options: frozenset[str],
    strict: bool,
    policy: Policy,
    shift_range: tuple[int, int],
    patient_map: Path | None,
    verify: bool,
    repair: bool,
    burned_in: str = "clean",
) -> dict[str, object]:
    """Everything that decides an output's bytes, and nothing secret."""
    return {
        "engine": f"{__version__}+{ENGINE_REVISION}",
        "key": key_fingerprint(key),
        "options": sorted(options),
        "strict": strict,
        "policy_sha256": policy.sha256,
        "date_shift_range": list(shift_range),
        "patient_map_sha256": _file_sha256(patient_map),
        "verify": verify,
        "repair": repair,
        "burned_in": burned_in,
    }


_LABELS = {
    "engine": "the pacsguard engine version",
    "key": "the project key",
    "options": "the options",
    "strict": "--strict",
    "policy_sha256": "the policy file",
    "date_shift_range": "the date-shift range",
    "patient_map_sha256": "the patient map",
    "verify": "--verify",
    "repair": "--repair",
    "burned_in": "what happens to images at risk of burned-in text",
}
_SHOWN = frozenset(
    {"options", "strict", "date_shift_range", "verify", "repair", "engine", "burned_in"}
)


def differences(before: dict[str, object], now: dict[str, object]) -> list[str]:
    """What changed, in words; values only for settings that are not secret."""
    out = []
    for name, label in _LABELS.items():
        old, new = before.get(name), now.get(name)
        if old == new:
            continue
        if name in _SHOWN:
            out.append(f"{label} (was {_show(old)}, now {_show(new)})")
        else:
            out.append(f"{label} differs")
    return out


def _show(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def bind(journal: Journal, output: Folder, settings: dict[str, object], *, redo: bool) -> int:
    """Bind ``output`` to ``settings``; with ``redo``, first undo every recorded output.
    Returns how many outputs a redo removed."""
    before = journal.settings()
    removed = 0
    if before is None and len(journal) == 0 and _exists(output, DEID_MANIFEST_NAME):
        if not redo:
            raise InputError(
                f"{output} holds a pacsguard output whose state folder is gone: its settings "
                "cannot be checked. Choose a new OUTPUT, or give --redo to write over it"
            )
    elif before is not None and before != settings:
        changed = differences(before, settings)
        if not redo:
            raise InputError(
                f"{output} was made with other settings: {'; '.join(changed)}. Give --redo to "
                "reprocess every input under the new settings, or choose another OUTPUT"
            )
    if redo and len(journal):
        for outcome in journal:
            if outcome.status == "output" and outcome.output:
                if isinstance(output, RemoteFolder):
                    remote.remove(output.join(outcome.output))
                else:
                    (output / outcome.output).unlink(missing_ok=True)
                removed += 1
        journal.clear()
    journal.set_settings(settings)
    return removed


@dataclass
class Resume:
    """Inputs already done, and journalled outputs that were found missing or changed."""

    todo: list[InputItem]
    resumed: int
    redone: int


def resume(items: list[InputItem], journal: Journal, output: Folder, *, check: bool) -> Resume:
    """Split ``items`` into what is done and what is left; journalled outputs that are no
    longer there as recorded (size, or SHA-256 with ``check``) are forgotten and redone."""
    todo: list[InputItem] = []
    stale: list[str] = []
    recorded = journal.get_many([item.fingerprint for item in items])
    for item in items:
        outcome = recorded.get(item.fingerprint)
        if outcome is None:
            todo.append(item)
            continue
        if outcome.status == "output" and outcome.output:
            if not _intact(output, outcome.output, outcome.size, outcome.sha256, check):
                stale.append(item.fingerprint)
                todo.append(item)
        elif outcome.status == "duplicate" and outcome.output:
            owner = journal.owner(outcome.output)
            if owner is None or not _intact(output, outcome.output, owner.size, None, False):
                stale.append(item.fingerprint)
                todo.append(item)
    journal.forget(stale)
    return Resume(todo, len(items) - len(todo), len(stale))


def _exists(output: Folder, name: str) -> bool:
    if isinstance(output, RemoteFolder):
        return remote.size(output.join(name)) is not None
    return (output / name).exists()


def _intact(
    output: Folder, relative: str, size: int | None, sha256: str | None, check: bool
) -> bool:
    if isinstance(output, RemoteFolder):
        url = output.join(relative)
        found = remote.size(url)
        if found is None or (size is not None and found != size):
            return False
        return not check or sha256 is None or remote.sha256(url) == sha256
    path = output / relative
    try:
        if size is not None and path.stat().st_size != size:
            return False
    except OSError:
        return False
    if not check or sha256 is None:
        return True
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest() == sha256


def check_remote_places(inputs: list[RemoteFolder], output: RemoteFolder) -> None:
    """The same refusals for URLs: an output inside an input, or an input inside it."""
    for given in inputs:
        if output.inside(given):
            raise InputError(f"OUTPUT {output} is inside the input {given}: keep them apart")
        if given.inside(output):
            raise InputError(f"the input {given} is inside OUTPUT {output}: keep them apart")


def check_places(inputs: list[Path], output: Path) -> None:
    """Refuse an output equal to or inside an input, and an input inside the output."""
    out = os.path.realpath(output)
    for given in inputs:
        real = os.path.realpath(given)
        if out == real:
            raise InputError(f"OUTPUT {output} is the input itself: choose a new, separate folder")
        if out.startswith(real.rstrip(os.sep) + os.sep) and Path(real).is_dir():
            raise InputError(
                f"OUTPUT {output} is inside the input {given}: choose a folder outside every input"
            )
        if real.startswith(out.rstrip(os.sep) + os.sep):
            raise InputError(f"the input {given} is inside OUTPUT {output}: keep them apart")
