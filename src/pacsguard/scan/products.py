"""What is known about PACS products: AE titles, fingerprints, default accounts, viewers."""

from __future__ import annotations

from dataclasses import dataclass

GENERIC_AE = "ANY-SCP"
CALLING_AE = "PACSGUARD"

# Called AE titles seen on exposed archives, tried in this order when the generic one fails.
COMMON_AE_TITLES: tuple[str, ...] = (
    "ORTHANC",
    "DCM4CHEE",
    "PACS",
    "DCMQRSCP",
    "STORESCP",
    "CONQUESTSRV1",
    "ARCHIVE",
    "SERVER",
    "DICOM",
    "CLEARCANVAS",
    "HOROS",
    "OSIRIX",
)

# Implementation Class UID prefixes -> toolkit or product family.
IMPLEMENTATION_PREFIXES: tuple[tuple[str, str], ...] = (
    ("1.2.276.0.7230010.3", "dcmtk"),
    ("1.2.826.0.1.3680043.9.3811", "pynetdicom"),
    ("1.2.40.0.13.1", "dcm4che"),
    ("1.2.826.0.1.3680043.2.135.1066", "conquest"),
    ("1.3.6.1.4.1.25403", "clearcanvas"),
    ("1.2.826.0.1.3680043.2.1143", "gdcm"),
    ("1.2.840.113619", "ge"),
    ("1.3.12.2.1107.5", "siemens"),
    ("1.3.46.670589", "philips"),
    ("1.2.392.200036.9116", "toshiba-canon"),
    ("1.2.840.113704", "philips"),
    ("1.2.840.114257", "agfa"),
    ("1.2.124.113532", "osirix-horos"),
)

DEFAULT_CREDENTIALS: dict[str, tuple[tuple[str, str], ...]] = {
    "orthanc": (("orthanc", "orthanc"),),
    "dcm4chee": (("admin", "admin"), ("root", "changeit")),
    "*": (("admin", "admin"),),
}


@dataclass(frozen=True)
class Viewer:
    name: str
    path: str
    markers: tuple[str, ...]


# Web viewers: a path to fetch and words its page holds (lower case).
VIEWERS: tuple[Viewer, ...] = (
    Viewer("ohif", "/", ("ohif", "app-config.js")),
    Viewer("ohif", "/viewer", ("ohif",)),
    Viewer("orthanc-explorer", "/app/explorer.html", ("orthanc explorer", "explorer.js")),
    Viewer("orthanc-explorer-2", "/ui/app/", ("orthanc explorer 2", "orthanc-explorer-2")),
    Viewer("orthanc-webviewer", "/web-viewer/app/viewer.html", ("viewer",)),
    Viewer("stone-webviewer", "/stone-webviewer/index.html", ("stone",)),
    Viewer("dcm4chee-ui", "/dcm4chee-arc/ui2/", ("dcm4chee",)),
    Viewer("meddream", "/meddream/", ("meddream",)),
)


def toolkit(implementation_class_uid: str | None, version_name: str | None) -> str | None:
    """The product family an implementation class UID (or version name) points to."""
    uid = (implementation_class_uid or "").strip()
    for prefix, name in IMPLEMENTATION_PREFIXES:
        if uid == prefix or uid.startswith(prefix + "."):
            return name
    version = (version_name or "").upper()
    if version.startswith("OFFIS_DCMTK"):
        return "dcmtk"
    if version.startswith("DCM4CHE"):
        return "dcm4che"
    return None


def version_of(version_name: str | None) -> str | None:
    """``OFFIS_DCMTK_367`` -> ``3.6.7``; other names as they are."""
    if not version_name:
        return None
    name = version_name.strip()
    if name.upper().startswith("OFFIS_DCMTK_"):
        digits = name[12:]
        return ".".join(digits) if digits.isdigit() else digits
    return name
