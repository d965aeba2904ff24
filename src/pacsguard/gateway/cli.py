"""``pacsguard gateway run|check|status|retry``: a DICOM node that de-identifies on the fly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from pacsguard.core.say import say

gateway_app = typer.Typer(
    help="Receive studies (C-STORE, DICOMweb STOW-RS), de-identify them, forward them.",
    no_args_is_help=True,
)
CONFIG = typer.Option(..., "--config", "-c", help="The gateway's TOML configuration file.")


@gateway_app.command("run")
def run_command(config: Path = CONFIG) -> None:
    """Run the gateway until SIGTERM (stop accepting, finish in-flight, keep the queue)."""
    from pacsguard.gateway import load_config, run_gateway

    settings = load_config(config)

    def ready(gateway: Any) -> None:
        ports = ", ".join(str(p) for p in gateway.scp.ports)
        say(f"gateway {settings.ae_title} listening on {settings.host} port(s) {ports}")

    run_gateway(settings, ready)


@gateway_app.command("check")
def check_command(config: Path = CONFIG) -> None:
    """Validate the configuration and print the effective settings (no secret in them)."""
    from pacsguard.core.keys import load_key
    from pacsguard.deid.policy import load_policy
    from pacsguard.gateway import load_config

    settings = load_config(config)
    load_key(settings.key_file)  # present, private, well-formed: its value is never printed
    load_policy(settings.policy)
    typer.echo(json.dumps(settings.describe(), indent=2))


@gateway_app.command("status")
def status_command(
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Queue depth per destination, oldest item age, throughput, errors, dead letters."""
    from pacsguard.gateway import load_config, status

    data = status(load_config(config))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(
        f"received {data['received']} (accepted {data['accepted']}, quarantined "
        f"{data['quarantined']}), refused {data['refused']}, spooled {data['spooled']}"
    )
    for name, dest in data["destinations"].items():
        age = dest.get("oldest_queued_age_s")
        typer.echo(
            f"  {name}: queued {dest['queued']}, sent {dest['sent']}, dead letter "
            f"{dest['dead_letter']}"
            + (f", oldest {age:.0f}s" if age else "")
            + (f", last error: {dest['last_error']}" if dest.get("last_error") else "")
        )


@gateway_app.command("retry")
def retry_command(
    destination: str = typer.Argument(..., help="The destination whose dead letters to requeue."),
    config: Path = CONFIG,
) -> None:
    """Put a destination's dead letters back in its queue (a running gateway picks them up)."""
    from pacsguard.gateway import load_config, retry

    count = retry(load_config(config), destination)
    typer.echo(f"requeued {count} dead letter(s) for {destination}")


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")
