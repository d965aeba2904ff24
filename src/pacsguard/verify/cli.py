"""CLI commands of pacsguard.verify (registered by pacsguard.cli)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
