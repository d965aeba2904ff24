"""The options of the PS3.15 Basic Application Level Confidentiality Profile."""

from __future__ import annotations

from collections.abc import Iterable

from pacsguard.core.errors import PacsguardError

TABLE_OPTIONS = (
    "retain-safe-private",
    "retain-uids",
    "retain-device-identity",
    "retain-institution-identity",
    "retain-patient-characteristics",
    "retain-long-full-dates",
    "retain-long-modified-dates",
    "clean-descriptors",
    "clean-structured-content",
    "clean-graphics",
)
PIXEL_OPTIONS = ("clean-pixel-data", "clean-recognizable-visual-features")
ALL_OPTIONS = TABLE_OPTIONS + PIXEL_OPTIONS
EXCLUSIVE = (("retain-long-full-dates", "retain-long-modified-dates"),)
# Options that this build can apply; the rest are refused rather than silently ignored.
SUPPORTED: set[str] = {*TABLE_OPTIONS, "clean-pixel-data"}


class OptionError(PacsguardError):
    pass


def validate_options(names: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(n.strip().lower() for n in names)
    unknown = sorted(chosen - set(ALL_OPTIONS))
    if unknown:
        raise OptionError(
            f"unknown option {', '.join(unknown)}; known options: {', '.join(ALL_OPTIONS)}"
        )
    unsupported = sorted(chosen - SUPPORTED)
    if unsupported:
        raise OptionError(
            f"option {', '.join(unsupported)} is not available in this build "
            "(Clean Recognizable Visual Features needs face removal, not built yet); "
            "refusing rather than ignoring it"
        )
    for first, second in EXCLUSIVE:
        if first in chosen and second in chosen:
            raise OptionError(f"options {first} and {second} exclude each other")
    return chosen
