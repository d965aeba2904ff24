"""Generate the packaged PS3.15 profile data from the standard's machine-readable tables.

    python scripts/gen_profile.py [--standard ../shared/standard] [--highdicom-standard DIR]

Writes src/pacsguard/deid/profile/table-e1-1.json from Table E.1-1 (innolitics/dicom-standard,
DICOM 2024b) and, when the folder of highdicom's bundled standard JSON is given,
iod-types.json: for each SOP Class, the Type of every attribute of the table whose action
depends on it (combined codes such as X/Z/D). Run it again when the standard changes;
tests/test_profile_data.py checks the shipped table against the source.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

PROFILE = Path(__file__).resolve().parent.parent / "src/pacsguard/deid/profile"
OPTION_COLUMNS = {
    "rtnSafePrivOpt": "retain-safe-private",
    "rtnUIDsOpt": "retain-uids",
    "rtnDevIdOpt": "retain-device-identity",
    "rtnInstIdOpt": "retain-institution-identity",
    "rtnPatCharsOpt": "retain-patient-characteristics",
    "rtnLongFullDatesOpt": "retain-long-full-dates",
    "rtnLongModifDatesOpt": "retain-long-modified-dates",
    "cleanDescOpt": "clean-descriptors",
    "cleanStructContOpt": "clean-structured-content",
    "cleanGraphOpt": "clean-graphics",
}
COMBINED = {"X/Z", "X/D", "X/Z/D", "Z/D", "X/Z/U*"}


def tag_pattern(raw: str) -> str:
    """'(0008,0050)' -> '00080050'; repeating groups keep their x: '(60XX,3000)' -> '60xx3000'."""
    if raw.startswith("(GGGG,EEEE)"):
        return "private"
    match = re.fullmatch(r"\(([0-9A-FX]{4}),([0-9A-FX]{4})\)", raw)
    if not match:
        raise SystemExit(f"unexpected tag form {raw!r}")
    return (match.group(1) + match.group(2)).lower()


def build_table(source: Path) -> list[dict[str, object]]:
    rows = json.loads((source / "confidentiality_profile_attributes.json").read_text())
    table = []
    for row in rows:
        options = {OPTION_COLUMNS[k]: v for k, v in row.items() if k in OPTION_COLUMNS}
        table.append(
            {
                "tag": tag_pattern(row["tag"]),
                "name": row["name"],
                "basic": row["basicProfile"],
                "in_std_iod": row["stdCompIOD"] == "Y",
                "options": dict(sorted(options.items())),
            }
        )
    table.sort(key=lambda r: (str(r["tag"]), str(r["name"])))
    return table


def build_types(table: list[dict[str, object]], hd: Path) -> dict[str, dict[str, str]]:
    """Top-level Type (1, 1C, 2, 2C, 3) of each combined-code attribute, per SOP Class UID."""
    from pydicom.datadict import tag_for_keyword

    modules = json.loads((hd / "module_attribute_map.json").read_text())
    iods = json.loads((hd / "iod_module_map.json").read_text())
    sop_classes = json.loads((hd / "sop_class_iod_map.json").read_text())
    wanted = {str(r["tag"]) for r in table if r["basic"] in COMBINED}
    strength = {"1": 0, "1C": 1, "2": 2, "2C": 3, "3": 4}
    out: dict[str, dict[str, str]] = {}
    for sop_class, iod in sorted(sop_classes.items()):
        types: dict[str, str] = {}
        for module in iods.get(iod, []):
            for attr in modules.get(module["key"], []):
                if attr["path"]:
                    continue
                tag = tag_for_keyword(attr["keyword"])
                if tag is None or f"{tag:08x}" not in wanted:
                    continue
                key, kind = f"{tag:08x}", attr["type"]
                if key not in types or strength[kind] < strength[types[key]]:
                    types[key] = kind
        out[sop_class] = dict(sorted(types.items()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--standard", type=Path, default=Path("../shared/standard"))
    parser.add_argument("--highdicom-standard", type=Path)
    args = parser.parse_args()
    table = build_table(args.standard)
    doc = {
        "source": "DICOM PS3.15 Table E.1-1 (2024b), via innolitics/dicom-standard (MIT)",
        "rows": table,
    }
    (PROFILE / "table-e1-1.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    if args.highdicom_standard:
        types = build_types(table, args.highdicom_standard)
        doc2 = {
            "source": "DICOM PS3.3 module tables (as bundled in highdicom, MIT), top-level Types",
            "types": types,
        }
        (PROFILE / "iod-types.json").write_text(json.dumps(doc2, indent=0) + "\n")


if __name__ == "__main__":
    main()
