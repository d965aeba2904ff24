"""The ``pacsguard`` command: a thin Typer shell over the library API.

Each capability registers its own commands from ``<capability>/cli.py`` so the
shell stays free of logic.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from pacsguard import __version__
from pacsguard.core.errors import PacsguardError

app = typer.Typer(
    name="pacsguard",
    help="Stop medical images and clinical data from leaking.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)

CAPABILITIES = ("core", "sample", "deid", "verify", "scan", "tables", "pack")


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


for _name in CAPABILITIES:
    importlib.import_module(f"pacsguard.{_name}.cli").register(app)


def main() -> None:
    try:
        app()
    except PacsguardError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted; run the same command again to finish the job")
        sys.exit(130)


if __name__ == "__main__":
    main()
