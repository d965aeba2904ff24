"""Printed lines are text, never markup; Rich only where the stream may be a terminal."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from rich.console import Console

from pacsguard.core import say as say_module
from pacsguard.core.say import is_terminal, live_bar, say

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NOT_MARKUP = "written to /data/study[2]/[bold]x[/] [link=a]b[/link] \\[c]"


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file")  # as io's streams do
        return self.tty


ENVIRONMENTS = [
    {},
    {"TTY_COMPATIBLE": "0"},
    {"TTY_COMPATIBLE": "1"},
    {"TTY_COMPATIBLE": "yes"},
    {"FORCE_COLOR": ""},
    {"FORCE_COLOR": "1"},
    {"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"},
]


@pytest.mark.parametrize("tty", [False, True])
@pytest.mark.parametrize("environ", ENVIRONMENTS)
def test_is_terminal_is_rich_s_rule(
    tty: bool, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR", "FORCE_TERMINAL", "JUPYTER_COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    stream = _Stream(tty)
    assert is_terminal(stream) == Console(file=stream).is_terminal


def test_a_closed_stream_is_no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    stream = _Stream(True)
    stream.close()
    assert not is_terminal(stream)


def test_plain_lines_keep_every_bracket(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    say(NOT_MARKUP)
    say(("error:", "bold red"), " ", NOT_MARKUP, out=True)
    captured = capsys.readouterr()
    assert captured.err == NOT_MARKUP + "\n"
    assert captured.out == "error: " + NOT_MARKUP + "\n"


def test_long_lines_are_not_wrapped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    line = "quarantined 1: " + "x" * 300
    say(line)
    assert capsys.readouterr().err == line + "\n"


def test_on_a_terminal_styles_but_text_stays_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    say(("error:", "bold red"), " ", NOT_MARKUP)
    written = capsys.readouterr().err
    assert "\x1b[" in written  # styled: it went through Rich
    assert ANSI.sub("", written).rstrip("\n") == "error: " + NOT_MARKUP


def test_live_bar_draws_nothing_off_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    with live_bar("verify") as show:
        show(1, 2, "1 files/s")
        show(2, 2, "[red]2 files/s")
    assert capsys.readouterr().err == ""


def test_live_bar_on_a_terminal_shows_counts_and_rate_as_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    say_module.terminal_console.cache_clear()  # a console made for this test's stderr
    try:
        with live_bar("de-identifying") as show:
            show(3, 4, "[b]5 files/s[/b]")
            show(4, 4, "[b]5 files/s[/b]")
    finally:
        say_module.terminal_console.cache_clear()
    drawn = ANSI.sub("", capsys.readouterr().err)
    assert "de-identifying" in drawn and "4/4" in drawn
    assert "[b]5 files/s[/b]" in drawn  # the rate is text, not markup


CODE = """import sys
from pacsguard import cli
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
print(sorted(m for m in sys.modules if m.split(".")[0] in ("rich", "yaml")))
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TTY_COMPATIBLE", "FORCE_COLOR")}
    return subprocess.run(
        [sys.executable, "-c", CODE, *args], capture_output=True, text=True, env=env
    )


def test_runs_off_a_terminal_import_neither_rich_nor_yaml(
    tmp_path: Path, sample_corpus: tuple[Path, object]
) -> None:
    """deid then verify, output to pipes (and no YAML policy given, no pixels to clean):
    the output folder's name holds brackets, and the summary names it whole (Rich's markup
    read "[2]" as a style and dropped it)."""
    key, output, cts = tmp_path / "key", tmp_path / "out[2]", tmp_path / "ct"
    cts.mkdir()
    for n, path in enumerate(sorted(sample_corpus[0].rglob("*.dcm"))):
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if header.get("Modality") in ("CT", "MR") and header.get("BurnedInAnnotation") == "NO":
            shutil.copy(path, cts / f"{n}.dcm")
    assert len(list(cts.iterdir())) >= 2
    assert _run("key", "new", str(key)).returncode == 0
    deid = _run("deid", str(cts), str(output), "--key", str(key))
    assert deid.stdout.strip().endswith("[]"), deid.stderr
    assert f"written to {output}," in deid.stderr
    assert f"local journal and manifest: {output}.pacsguard\n" in deid.stderr
    verify = _run("verify", str(output))
    assert verify.stdout.strip().endswith("[]"), verify.stderr
    assert "DICOM file(s) checked" in verify.stdout
