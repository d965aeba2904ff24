"""Build the name lexicons of ``src/pacsguard/core/lexicon/`` from real data (run by a developer,
not at run time: ``pip install '.[lexicon]'`` then ``python scripts/build_name_lexicon.py``).

- ``given-names.txt``, ``family-names.txt``: the names of ``names-dataset`` (v3: 730k given
  and 980k family names from public profiles, with a rank per country) that rank within
  ``--top`` in one of the countries the project serves (France and its neighbours, the
  countries of the largest immigrant populations in France, the English-speaking ones).
  The rank cut drops the scrape's noise (``Liver`` is a given name in Bolivia at rank 7,716,
  ``Normal`` one in Algeria at 14,756); names of one or two letters are dropped.
- ``common-names.txt``: the most common names of the core countries (first names within
  ``--common-top``, last names within three times that): names even when they are DICOM
  words too ("George", "Caldwell").
- ``technical-words.txt``: every word of the DICOM vocabulary that pydicom ships (attribute
  names of the data dictionary, the code meanings of its SR concept tables, UID names) and
  of the de-identification profile: a lexicon name that is also one of these words
  (``Field``, ``Body``, ``Liver``…) is not evidence of a person by itself.

Each file is folded (upper case, no accents), one word a line, sorted; a header line records
the source, its version and the cut.
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "pacsguard" / "core" / "lexicon"
# France and neighbours; the main countries of birth of immigrants in France; English-speaking.
COUNTRIES = tuple(
    [
        "FR",
        "BE",
        "CH",
        "LU",
        "MC",
        "DE",
        "IT",
        "ES",
        "PT",
        "NL",
        "GB",
        "IE",
        "US",
        "CA",
        "AU",
        "DZ",
        "MA",
        "TN",
        "TR",
        "SN",
        "CI",
        "CM",
        "ML",
        "HT",
        "VN",
        "CN",
        "RO",
        "PL",
    ]
)

# Where a common name outweighs its being a DICOM word too ("George", "Grace", "Bell").
CORE_COUNTRIES = ("FR", "BE", "CH", "GB", "US", "CA")


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.split(r"[^0-9A-Za-z]+", ascii_text.upper())).strip()


def ranked(table: dict[str, dict[str, object]], countries: set[str], top: int) -> set[str]:
    names: set[str] = set()
    for name, info in table.items():
        ranks = info.get("rank") or {}
        assert isinstance(ranks, dict)
        if any(c in countries and r is not None and int(r) <= top for c, r in ranks.items()):
            folded = fold(name)
            if len(folded) >= 3 and folded.isalpha():
                names.add(folded)
    return names


def technical_words() -> set[str]:
    from pydicom import _dicom_dict, _uid_dict
    from pydicom.sr import _concepts_dict

    texts: list[str] = []
    texts += [entry[2] for entry in _dicom_dict.DicomDictionary.values()]
    texts += [entry[0] for entry in _uid_dict.UID_dictionary.values()]
    for scheme in _concepts_dict.concepts.values():
        for codes in scheme.values():
            texts += [meaning for meaning, _ in codes.values()]
    words: set[str] = set()
    for text in texts:
        for word in fold(text).split():
            if len(word) >= 3 and word.isalpha():
                words.add(word)
    return words


def write(path: Path, header: str, words: set[str]) -> None:
    path.write_text(f"# {header}\n" + "\n".join(sorted(words)) + "\n", encoding="utf-8")
    print(f"{path.relative_to(ROOT)}: {len(words)} words")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=5000, help="rank cut, per country")
    parser.add_argument("--common-top", type=int, default=300, help="rank cut, common names")
    parser.add_argument("--family-top", type=int, default=10000, help="rank cut, family names")
    args = parser.parse_args()
    from names_dataset import NameDataset

    version = metadata.version("names-dataset")
    pydicom_version = metadata.version("pydicom")
    data = NameDataset()
    countries = set(COUNTRIES)
    given = ranked(data.first_names, countries, args.top)
    family = ranked(data.last_names, countries, args.family_top)
    where = " ".join(COUNTRIES)
    write(
        OUT / "given-names.txt",
        f"names-dataset {version} first names, rank <= {args.top} in one of: {where}",
        given,
    )
    write(
        OUT / "family-names.txt",
        f"names-dataset {version} last names, rank <= {args.family_top} in one of: {where}",
        family,
    )
    core = set(CORE_COUNTRIES)
    common = ranked(data.first_names, core, args.common_top) | ranked(
        data.last_names, core, args.common_top * 3
    )
    write(
        OUT / "common-names.txt",
        f"names-dataset {version}: first names rank <= {args.common_top}, last names rank <= "
        f"{args.common_top * 3} in one of: {' '.join(CORE_COUNTRIES)}",
        common,
    )
    write(
        OUT / "technical-words.txt",
        f"words of pydicom {pydicom_version}'s data dictionary, UID names and SR code meanings",
        technical_words(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
