"""Policy files: validated data with clear errors, applied per tag, keyword or private block."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from pacsguard.core.keys import ProjectKey
from pacsguard.core.pseudonym import Pseudonymizer
from pacsguard.deid.engine import Transformer
from pacsguard.deid.plan import Rules
from pacsguard.deid.policy import PolicyError, load_policy


def write(tmp_path: Path, text: str, suffix: str = ".toml") -> Path:
    path = tmp_path / f"policy{suffix}"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rule]]\ntag = "(0010,0010)"\naction = "obliterate"\n', "action must be one of"),
        ('[[rule]]\ntag = "(0010,001G)"\naction = "keep"\n', "not of the form"),
        ('[[rule]]\nkeyword = "PatientNom"\naction = "keep"\n', "not a DICOM keyword"),
        ('[[rule]]\nkeyword = "PatientName"\naction = "replace"\n', "needs a string 'value'"),
        ('[[rule]]\nkeyword = "PatientName"\naction = "keep"\nvalue = "x"\n', "only used with"),
        (
            '[[rule]]\nkeyword = "PatientName"\ntag = "(0010,0010)"\naction = "keep"\n',
            "exactly one",
        ),
        ('[[rule]]\nprivate = { creator = "X", group = "0010" }\naction = "keep"\n', "not odd"),
        ('[[rule]]\nkeyword = "PatientName"\naction = "keep"\ncolour = 1\n', "unknown key"),
        ("[[rule]\n", "not valid"),
        ("[other]\nx = 1\n", "unknown top-level"),
    ],
)
def test_invalid_policies_give_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_policy(write(tmp_path, text))


def test_yaml_policy_and_unknown_suffix(tmp_path: Path) -> None:
    policy = load_policy(
        write(tmp_path, "rule:\n  - keyword: StudyDescription\n    action: keep\n", ".yaml")
    )
    assert policy.for_tag(0x00081030) is not None and policy.sha256
    with pytest.raises(PolicyError, match=r"toml, \.yaml"):
        load_policy(write(tmp_path, "", ".json"))


def test_policy_actions_apply_at_any_depth(tmp_path: Path) -> None:
    policy = load_policy(
        write(
            tmp_path,
            '[[rule]]\nkeyword = "StudyDescription"\naction = "keep"\n'
            '[[rule]]\nkeyword = "BodyPartExamined"\naction = "replace"\nvalue = "CHEST"\n'
            '[[rule]]\nkeyword = "PatientBirthDate"\naction = "shift"\n'
            '[[rule]]\nprivate = { creator = "ACME 1.0", group = "0009" }\naction = "keep"\n',
        )
    )
    ds = Dataset()
    ds.PatientID, ds.PatientBirthDate = "P1", "19600312"
    ds.StudyDescription, ds.BodyPartExamined = "CT THORAX", "HEAD"
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "DS", "1.5")
    pseudo = Pseudonymizer(ProjectKey(bytes(32)))
    out = Transformer(Rules(policy=policy), pseudo).transform(ds).dataset
    assert out.StudyDescription == "CT THORAX" and out.BodyPartExamined == "CHEST"
    assert out.PatientBirthDate not in ("", "19600312")
    assert out[0x00091001].value == "1.5" and out[0x00090010].value == "ACME 1.0"
