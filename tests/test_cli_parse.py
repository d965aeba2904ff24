"""The command line's values coerced without pydantic (``core/cliparse.py``), as Typer would.

The shortcut sets a private attribute of Typer 0.29's parameters: these tests fail loudly when
Typer changes what it relies on, and compare both coercions value by value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer._click import Context
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param
from typer.core import _TyperParameter

from pacsguard.cli import COMMANDS, build_app
from pacsguard.core import cliparse
from pacsguard.core.cliparse import plain_coercion


def _sample(
    text: str = typer.Option("x", "--text"),
    number: int | None = typer.Option(None, "--number"),
    bounded: int | None = typer.Option(None, "--bounded", min=1, max=64),
    below: int | None = typer.Option(None, "--below", max=3),
    path: Path | None = typer.Option(None, "--path"),
    existing: Path | None = typer.Option(None, "--existing", exists=True),
    folder: Path | None = typer.Option(None, "--folder", file_okay=False),
    texts: list[str] = typer.Option([], "--texts"),
    paths: list[Path] = typer.Option([], "--paths"),
    flag: bool = typer.Option(False, "--flag"),
) -> None:
    """A parameter of every kind the shortcut takes, and of a few it leaves to Typer."""


def _command() -> Any:
    app = typer.Typer()
    app.command("sample")(_sample)
    app.callback()(lambda: None)
    group = typer.main.get_command(app)
    return group.commands["sample"]  # type: ignore[attr-defined]


VALUES: dict[str, list[Any]] = {
    "text": ["x", "", " spaced ", "é", "-", b"bytes", 3],
    "number": [
        "0",
        "4",
        "007",
        "-3",
        "+5",
        "1_000",
        " 5",
        "5.0",
        "abc",
        "",
        "٣",
        "9" * 19,
        "9" * 18,
        7,
    ],
    "bounded": ["1", "64", "0", "65", "100", "-1", "abc"],
    "below": ["3", "4", "0"],
    "path": ["out", "out/", "./x", "a//b", "", "-", "~", " a ", "a\x00b", Path("p")],
    "existing": ["/", "/nonexistent/pacsguard", "/nonexistent/pacsguard/"],
    "folder": ["/", "/etc/hostname", "/etc/hostname/", "/nonexistent"],
    "texts": [("a", "b"), [], ("a", 3), "ab"],
    "paths": [("a", "b/"), ("x",), ()],
    "flag": [True, False, "true", "no"],
}


def _outcome(coerce: Any, value: Any) -> tuple[str, str]:
    try:
        result = coerce(value)
    except BadParameter as exc:
        return ("BadParameter", exc.format_message())
    except Exception as exc:
        return (type(exc).__name__, str(exc))
    return (type(result).__name__, repr(result))


def test_typer_still_has_what_the_shortcut_sets() -> None:
    assert cliparse.INTERNALS, "typer's private coercion API moved: see core/cliparse.py"
    command = plain_coercion(_command())
    kinds = {
        p.name: type(p._runtime_param).__name__
        for p in command.params
        if isinstance(p, _TyperParameter)
    }
    assert kinds == {name: "PlainRuntimeParam" for name in VALUES}
    first: Any = command.params[0]
    assert type(first.get_runtime_param()).__name__ == "PlainRuntimeParam"


@pytest.mark.parametrize("name", sorted(VALUES))
def test_the_shortcut_coerces_as_typer_does(name: str) -> None:
    """Same value (and type), or same error, for every value tried."""
    command = plain_coercion(_command())
    ctx = Context(command)
    (param,) = [p for p in command.params if p.name == name]
    assert isinstance(param, _TyperParameter)
    typers = build_runtime_param(param.type_descriptor)
    plain = param._runtime_param
    assert plain is not None
    for value in VALUES[name]:
        ours = _outcome(lambda v: plain.coerce(v, param=param, ctx=ctx), value)
        theirs = _outcome(lambda v: typers.coerce(v, param=param, ctx=ctx), value)
        assert ours == theirs, (name, value)


def test_every_command_parameter_gets_the_shortcut_where_it_applies() -> None:
    """Each parameter of each command is either shortcut or of a kind left to Typer."""
    root = plain_coercion(typer.main.get_command(build_app()))
    left: set[str] = set()
    stack = [root]
    while stack:
        command = stack.pop()
        stack.extend(getattr(command, "commands", {}).values())
        for param in command.params:
            if isinstance(param, _TyperParameter) and param._runtime_param is None:
                left.add(repr(param.type_descriptor.annotation))
    assert "<class 'str'>" not in left and "<class 'pathlib.Path'>" not in left


DEID_PROBE = """
import json, sys
from pacsguard.core.startup import prepare_process
prepare_process()
from pacsguard.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "imported": sorted(
    m for m in ("pydantic", "typer._adapters", "gdcm", "pylibjpeg", "pacsguard.deid.pixels.clean")
    if m in sys.modules)}))
"""


def test_a_deid_run_imports_no_pydantic_nor_codec(tmp_path: Path) -> None:
    from pacsguard.sample.generator import generate

    generate(tmp_path / "s", seed=3, patients=1)
    inputs = sorted((tmp_path / "s" / "dicom").rglob("*.dcm"))[:3]
    key = tmp_path / "k"
    subprocess.run(
        [sys.executable, "-m", "pacsguard", "key", "new", str(key)], check=True, capture_output=True
    )
    args = ["deid", *map(str, inputs), str(tmp_path / "out"), "--key", str(key), "-j", "1"]
    done = subprocess.run(
        [sys.executable, "-c", DEID_PROBE, *args, "--no-pixel-cleaning", "--keep-burned-in"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PACSGUARD_KEY_FILE"},
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"code": 0, "imported": []}
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == len(inputs)


def test_a_wrong_value_still_gets_typers_message() -> None:
    """``--jobs x`` goes to Typer's coercion (pydantic), which words the refusal."""
    done = subprocess.run(
        [sys.executable, "-m", "pacsguard", "deid", "a", "b", "--jobs", "x"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "--jobs" in done.stderr and "Traceback" not in done.stderr


def test_root_help_imports_neither_typer_coercion_nor_pydicom() -> None:
    code = (
        "import sys\nfrom pacsguard.core.startup import prepare_process\nprepare_process()\n"
        "from pacsguard.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pydantic', 'pydicom', 'numpy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith("[]")
    assert set(COMMANDS) <= set(done.stdout.split())
