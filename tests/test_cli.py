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
    """Nor Typer or Rich: the root's help and version are plain text (~100 ms less)."""
    code = (
        "import sys; from pacsguard.cli import main; main(['--help']); main(['--version']);"
        "print(sorted(m for m in sys.modules"
        " if m.startswith(('polars', 'pynetdicom', 'pyrage', 'typer', 'rich', 'pydicom'))))"
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


def _all_paths() -> list[list[str]]:
    """Every command path of the full app: ["deid"], ["tables", "risk"], ["scan", "diff"]..."""
    import typer.main

    from pacsguard.cli import build_app

    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if path:
            found.append(path)
        for name, sub in (subcommands or {}).items():
            if name != "run":  # `scan run` is `scan` itself
                walk(sub, [*path, name])

    walk(typer.main.get_command(build_app()), [])
    return found


@pytest.mark.parametrize("path", _all_paths(), ids=lambda p: " ".join(p))
@pytest.mark.parametrize("width", [80, 100])
def test_help_has_one_style(
    path: list[str], width: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    from pacsguard.cli import main

    monkeypatch.setenv("COLUMNS", str(width))
    with pytest.raises(SystemExit) as done:
        main([*path, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: pacsguard {' '.join(path)}")
    assert "{" not in usage and "}" not in usage, usage
    assert not re.search(r"<(bool|path|str|int|float|list)", text), text
    assert "$PACSGUARD" not in text and "${" not in text
    assert all(len(line) <= width for line in text.splitlines()), text
    if path == ["scan"]:
        assert "pacsguard scan diff" in text and "pacsguard scan history" in text
        joined = " ".join(text.split())
        assert "104, 11112, 4242" in joined and "CLEARCANVAS, HOROS, OSIRIX" in joined
    if path == ["deid"]:
        assert usage.endswith("INPUT... OUTPUT") and "--date-shift-range MIN:MAX" in text


def test_groups_list_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    from pacsguard.cli import main

    for group in (["key"], ["tables"]):
        with pytest.raises(SystemExit):
            main([*group, "--help"])
        text = capsys.readouterr().out
        for path in _all_paths():
            if path[:-1] == group:
                assert f"  {path[-1]} " in text, (path, text)
