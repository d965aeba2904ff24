"""The ``pacsguard`` command: a thin shell over the library API.

Each capability registers its commands from ``<capability>/cli.py``. Only the capability of
the command being run is imported, so ``pacsguard deid`` never pays for the imports of
``scan`` or ``tables`` (polars, pynetdicom, cryptography).
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console

from pacsguard import __version__
from pacsguard.core.errors import PacsguardError

err_console = Console(stderr=True)

# command -> (capability modules that register it, one-line help)
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "sample": (("sample",), "Generate synthetic DICOM studies with fake identifiers."),
    "key": (("core", "pack"), "Create project keys, age identities and signing keys."),
    "deid": (("deid",), "De-identify DICOM per PS3.15 Annex E (fail closed, resumable)."),
    "verify": (("verify",), "Prove a folder holds no residual identifiers."),
    "tables": (("tables",), "Inspect and de-identify clinical tables (CSV, Parquet, xlsx)."),
    "pack": (("pack",), "Encrypt a verified folder for named recipients (age format)."),
    "unpack": (("pack",), "Decrypt and check a package, then write it atomically."),
    "scan": (("scan",), "Audit your own hosts for exposed DICOM, DICOMweb and PACS web APIs."),
    "gateway": (("gateway",), "Receive studies, de-identify them on the fly, forward them."),
    "guard": (("guard",), "A protective DICOM proxy in front of a PACS that cannot protect it."),
}


def _group() -> None:
    """Stop medical images and clinical data from leaking."""


def build_app(modules: tuple[str, ...] | None = None) -> typer.Typer:
    """The Typer app with the commands of ``modules`` (all capabilities when None)."""
    app = typer.Typer(
        name="pacsguard",
        help="Stop medical images and clinical data from leaking.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    app.callback()(_group)  # keeps a one-command app a group: `pacsguard deid ...`
    wanted = modules or tuple(dict.fromkeys(m for ms, _ in COMMANDS.values() for m in ms))
    for module in wanted:
        importlib.import_module(f"pacsguard.{module}.cli").register(app)
    return app


def __getattr__(name: str) -> typer.Typer:
    """``pacsguard.cli.app``: the full app, built on first use (for CliRunner and embedding)."""
    if name == "app":
        return build_app()
    raise AttributeError(name)


def _root_help() -> None:
    print("Usage: pacsguard COMMAND [ARGS]...\n")
    print("Stop medical images and clinical data from leaking.\n")
    print("Commands:")
    for name, (_, text) in COMMANDS.items():
        print(f"  {name:<8} {text}")
    print("\nOptions:\n  --version  Print the version and exit.\n  --help     Show this message.")
    print("\nRun 'pacsguard COMMAND --help' for a command's options.")


def console() -> None:
    """The ``pacsguard`` console script: ``main``, then an exit without the interpreter's
    teardown once the output is flushed (freeing pydicom's dictionaries object by object
    costs a large run ~80 ms for nothing). In-process callers use ``main``, which exits
    the usual way (SystemExit)."""
    try:
        main()
        code: object = 0
    except SystemExit as exit_:
        code = exit_.code
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0)


def main(argv: list[str] | None = None) -> None:
    _main(sys.argv[1:] if argv is None else argv)


def _main(args: list[str]) -> None:
    command = next((a for a in args if not a.startswith("-")), None)
    try:
        if command is None:
            if "--version" in args:
                print(__version__)
            else:
                _root_help()
            return
        modules = COMMANDS[command][0] if command in COMMANDS else None
        build_app(modules)(args=args, prog_name="pacsguard")
    except PacsguardError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted; run the same command again to finish the job")
        sys.exit(130)


if __name__ == "__main__":
    console()
