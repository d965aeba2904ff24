"""The ``pacsguard`` command: a thin shell over the library API.

Each capability registers its commands from ``<capability>/cli.py``. Only the capability of
the command being run is imported, so ``pacsguard deid`` never pays for the imports of
``scan`` or ``tables`` (polars, pynetdicom, cryptography).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, NoReturn

from pacsguard import __version__
from pacsguard.core.errors import PacsguardError
from pacsguard.core.say import say
from pacsguard.core.startup import KEPT, prepare_process

if TYPE_CHECKING:
    import typer
    from typer._click.exceptions import UsageError

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


# Commands whose threads may first use numpy at once (the servers, and scan's thread a host):
# numpy is imported whole from the start there (``core/startup.py``: a kept module's run from
# the import system cannot safely wait on another thread's). The other commands do their
# pixel work on one thread.
THREADED = frozenset({"gateway", "guard", "scan"})


def kept_modules(args: list[str]) -> tuple[str, ...]:
    """The modules a run of ``args`` keeps until their first use (``core/startup.py``)."""
    command = next((a for a in args if not a.startswith("-")), None)
    return () if command in THREADED else KEPT


def _group() -> None:
    """Stop medical images and clinical data from leaking."""


def build_app(modules: tuple[str, ...] | None = None) -> typer.Typer:
    """The Typer app with the commands of ``modules`` (all capabilities when None)."""
    import typer

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
    prepare_process(kept=kept_modules(sys.argv[1:]))
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
    if command is None:
        if "--version" in args:
            print(__version__)
        elif any(a not in ("--help", "-h") for a in args):
            unknown = next(a for a in args if a not in ("--help", "-h"))
            _fail(f"no such option: {unknown}; the options are --version and --help")
        else:
            _root_help()
        return
    if command not in COMMANDS:
        _fail(_unknown_command(command))
    _run(command, args)


def _run(command: str, args: list[str]) -> None:
    """One command, through Typer (imported here: ``pacsguard --help`` and ``--version``,
    and every mistyped command, are answered without it)."""
    import typer.main
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
    from typer.exceptions import Abort

    from pacsguard.core.clihelp import restyle
    from pacsguard.core.cliparse import plain_coercion

    try:
        click_app = plain_coercion(restyle(typer.main.get_command(build_app(COMMANDS[command][0]))))
        code = click_app.main(args=args, prog_name="pacsguard", standalone_mode=False)
    except PacsguardError as exc:
        _fail(str(exc))
    except NoArgsIsHelpError as exc:  # `pacsguard tables`: its help, as for `pacsguard`
        print(exc.ctx.get_help() if exc.ctx is not None else "")
        return
    except UsageError as exc:
        _fail(_usage_message(exc))
    except ClickException as exc:
        _fail(exc.format_message())
    except Abort:
        _interrupted()
    except KeyboardInterrupt:
        _interrupted()
    except Exception as exc:  # a bug: said in one line (no value from a file), exit 2
        if os.environ.get("PACSGUARD_DEBUG"):
            raise
        _fail(
            f"internal error ({type(exc).__name__}); nothing half-written is kept: run again with "
            "PACSGUARD_DEBUG=1 for the traceback and report it"
        )
    if code == 130:
        _interrupted()
    sys.exit(code if isinstance(code, int) else 0)  # as Click's standalone mode does


def _fail(message: str) -> NoReturn:
    # the message as text: "[guard.upstream]" or a path with brackets is not markup
    say(("error:", "bold red"), " ", message)
    sys.exit(2)


def _interrupted() -> NoReturn:
    from pacsguard.core.progress import resume_command

    say(f"interrupted; to finish the job, run the same command again: {resume_command()}")
    sys.exit(130)


def _unknown_command(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, COMMANDS, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"no such command {name!r}; {hint}the commands are: {', '.join(COMMANDS)}"


def _usage_message(exc: UsageError) -> str:
    """Click's message in one line, with where to read more."""
    message = " ".join(exc.format_message().split())
    message = message[0].lower() + message[1:] if message else "wrong arguments"
    where = exc.ctx.command_path if exc.ctx is not None else "pacsguard"
    return f"{message.rstrip('.')}; see '{where} --help'"


if __name__ == "__main__":
    console()
