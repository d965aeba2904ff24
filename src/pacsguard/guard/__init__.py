"""``pacsguard guard``: a protective DICOM proxy in front of a PACS that cannot protect itself.

    from pacsguard.guard import Guard, load_config
    with Guard(load_config(Path("guard.toml"))) as guard:
        ...  # listening; every association is checked, relayed and audited

The guard listens where clients expect the PACS (plain DIMSE and/or TLS), identifies each
client by calling AE title + source address (+ certificate subject), lets it use only the
services its config grants, and relays to the PACS at its private address. Research clients
see only de-identified answers and instances (the ``deid`` engine, the project key).
"""

from __future__ import annotations

from pacsguard.guard.config import GuardConfig, load_config, parse_config
from pacsguard.guard.errors import ConfigError, GuardError
from pacsguard.guard.proxy import Guard
from pacsguard.guard.report import ClientSummary, summarise

__all__ = [
    "ClientSummary",
    "ConfigError",
    "Guard",
    "GuardConfig",
    "GuardError",
    "load_config",
    "parse_config",
    "summarise",
]
