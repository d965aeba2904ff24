"""CLI commands of pacsguard.guard (registered by pacsguard.cli): ``guard run``,
``guard check`` and ``guard report``."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import FrameType

import typer
from rich.console import Console

from pacsguard.core.say import say
from pacsguard.core.texttable import TextTable

guard_app = typer.Typer(
    help="A protective DICOM proxy in front of a PACS that cannot protect itself.",
    no_args_is_help=True,
)
CONFIG = typer.Option(..., "--config", "-c", help="guard.toml", dir_okay=False)


@guard_app.command("run")
def run_command(config: Path = CONFIG) -> None:
    """Listen where clients expect the PACS and relay what each client may do."""
    from pacsguard.guard import Guard, load_config

    settings = load_config(config)
    guard = Guard(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    guard.start()
    for host, port in guard.addresses:
        say(f"guard {settings.ae_title} listening on {host}:{port}")
    say(
        f"upstream {settings.upstream.ae_title} at "
        f"{settings.upstream.host}:{settings.upstream.port}; audit log {guard.audit.path}"
    )
    try:
        while True:
            signal.pause()  # returns after any handled signal; only SIGTERM/SIGINT stop
    except KeyboardInterrupt:
        pass
    finally:
        guard.stop()
        say("guard stopped")


@guard_app.command("check")
def check_command(config: Path = CONFIG) -> None:
    """Validate guard.toml and print what each client may do."""
    from pacsguard.guard import load_config

    settings = load_config(config)
    table = TextTable("client", "AE title", "from", "role", "services", "move to", "TLS")
    for c in settings.clients:
        table.add_row(
            c.name,
            c.ae_title,
            ", ".join(str(n) for n in c.networks),
            c.role,
            ", ".join(sorted(c.allow)) or "-",
            ", ".join(c.move_destinations) or "-",
            c.certificate_subject or ("yes" if c.tls else "no"),
        )
    Console().print(table)


@guard_app.command("init")
def init_command(
    pacs: str = typer.Option(..., "--pacs", help="The exposed PACS as HOST:PORT."),
    ae_title: str = typer.Option("PACS", "--ae-title", help="The AE title it answers to."),
    private: str | None = typer.Option(
        None, "--private", help="HOST:PORT the PACS moves to (default: the next port)."
    ),
) -> None:
    """Print a starting guard.toml for one exposed PACS (no client allowed yet)."""
    from pacsguard.guard.errors import GuardError
    from pacsguard.guard.snippet import config_snippet

    def address(text: str, option: str) -> tuple[str, int]:
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise GuardError(f"{option} must be HOST:PORT, got {text!r}")
        return host.strip("[]"), int(port)

    host, port = address(pacs, "--pacs")
    private_host, private_port = address(private, "--private") if private else (None, None)
    print(config_snippet(host, port, ae_title, private_host=private_host,
                         private_port=private_port), end="")  # fmt: skip


@guard_app.command("report")
def report_command(
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Per client: associations, queries, instances retrieved, refusals (from the audit log)."""
    from pacsguard.guard import load_config, summarise
    from pacsguard.guard.report import COLUMNS
    from pacsguard.guard.report import as_json as rows_json

    rows = summarise(load_config(config).state)
    if as_json:
        print(json.dumps(rows_json(rows), indent=1))
        return
    table = TextTable(*COLUMNS)
    for row in rows_json(rows):
        table.add_row(*(str(row[c]) for c in COLUMNS))
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.add_typer(guard_app, name="guard")
