"""``pacsguard key ...``: project keys (and, with the pack capability, identities)."""

from __future__ import annotations

from pathlib import Path

import typer

from pacsguard.core import keys

key_app = typer.Typer(help="Create project keys and identities.", no_args_is_help=True)


@key_app.command("new")
def key_new(
    path: Path = typer.Argument(..., metavar="FILE", help="Where to write the key (mode 0600)."),
) -> None:
    """Create a project key for keyed pseudonyms: 32 random bytes as 64 hex characters."""
    keys.new_key(path)
    typer.echo(f"wrote project key to {path} (mode 0600); keep it secret and backed up")


def register(app: typer.Typer) -> None:
    app.add_typer(key_app, name="key")
