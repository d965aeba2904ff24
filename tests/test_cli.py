"""The root command: every subcommand loads on its own, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pacsguard.cli import COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_loads_alone(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pacsguard", command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_root_help_and_version_import_no_capability() -> None:
    code = (
        "import sys; from pacsguard.cli import main; main(['--help']); main(['--version']);"
        "print(sorted(m for m in sys.modules if m.startswith(('polars', 'pynetdicom', 'pyrage'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().endswith("[]")


def test_unknown_command_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pacsguard", "nope"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_console_script_keeps_exit_codes_and_flushes_output(tmp_path: object) -> None:
    """The console entry leaves with os._exit: codes and buffered output must survive it."""
    run = [sys.executable, "-m", "pacsguard"]
    version = subprocess.run([*run, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip()
    missing = subprocess.run(
        [*run, "deid", "/nonexistent/in", f"{tmp_path}/out", "--key", "/nonexistent/key"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "error:" in missing.stderr
    code = (
        "import sys, pacsguard.cli as c; sys.argv = ['pacsguard', 'nope']\n"
        "try:\n    c.main()\nexcept SystemExit as e:\n    print('caught', e.code)"
    )
    in_process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert in_process.stdout.strip() == "caught 2"  # main() exits through SystemExit
