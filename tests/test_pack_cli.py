"""The CLI: key creation, pack/unpack options, secrets kept out of argv, one-line errors."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pacsguard.cli import app
from pacsguard.core.errors import KeyFileError
from pacsguard.pack import MANIFEST_NAME, PackRefused
from test_pack_support import files_of

runner = CliRunner()


def invoke(*args: str | Path) -> str:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_keys_then_signed_pack_and_unpack(tree: Path, tmp_path: Path) -> None:
    recipient = invoke("key", "new-identity", tmp_path / "me.key").strip()
    assert recipient.startswith("age1") and "SECRET" not in recipient
    assert stat.S_IMODE((tmp_path / "me.key").stat().st_mode) == 0o600
    assert "SHA256:" in invoke("key", "new-signing-key", tmp_path / "sender.key")
    assert stat.S_IMODE((tmp_path / "sender.key").stat().st_mode) == 0o600
    (tmp_path / "team.txt").write_text(f"# the team\n{recipient}\n")
    shown = invoke(
        "pack", tree, tmp_path / "p.age", "--to-file", tmp_path / "team.txt",
        "--sign", tmp_path / "sender.key", "--no-ocr", "--volume-size", "8K",
    )  # fmt: skip
    assert "packed 4 files" in shown and "volumes" in shown and "signed by SHA256:" in shown
    shown = invoke(
        "unpack", tmp_path / "p.age", tmp_path / "out", "--identity", tmp_path / "me.key",
        "--verify-signer", tmp_path / "sender.key.pub",
    )  # fmt: skip
    assert "signature verified" in shown
    assert set(files_of(tmp_path / "out")) - set(files_of(tree)) == {
        MANIFEST_NAME,
        "PACSGUARD-MANIFEST.sig",
    }


def test_passphrase_from_a_private_file(tree: Path, tmp_path: Path) -> None:
    secret = tmp_path / "pass.txt"
    secret.write_text("a long shared passphrase\n")
    secret.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        runner.invoke(
            app, ["pack", str(tree), str(tmp_path / "p.age"), "--passphrase-file", str(secret)],
            catch_exceptions=False,
        )  # fmt: skip
    secret.chmod(0o600)
    invoke("pack", tree, tmp_path / "p.age", "--passphrase-file", secret, "--no-ocr")
    shown = invoke("unpack", tmp_path / "p.age", tmp_path / "out", "--passphrase-file", secret)
    assert "not signed" in shown


def test_refusal_and_forced_warning(tree: Path, tmp_path: Path) -> None:
    recipient = invoke("key", "new-identity", tmp_path / "me.key").strip()
    (tree / "pacsguard-deid.json").unlink()
    with pytest.raises(PackRefused, match="--force --reason"):
        runner.invoke(
            app, ["pack", str(tree), str(tmp_path / "p.age"), "--to", recipient, "--no-ocr"],
            catch_exceptions=False,
        )  # fmt: skip
    invoke("pack", tree, tmp_path / "p.age", "--to", recipient, "--force", "--reason", "demo")
    result = runner.invoke(
        app, ["unpack", str(tmp_path / "p.age"), str(tmp_path / "out"),
              "-i", str(tmp_path / "me.key")],
    )  # fmt: skip
    assert result.exit_code == 0 and "forced" in result.output and "demo" in result.output


def test_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    env = {**os.environ, "PACSGUARD_IDENTITY_FILE": "", "COLUMNS": "500"}  # rich wraps at 80
    done = subprocess.run(
        [sys.executable, "-c", "from pacsguard.cli import main; main()", "unpack",
         str(tmp_path / "missing.age"), str(tmp_path / "out")],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and "does not exist" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
