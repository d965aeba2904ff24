"""A starting guard.toml for one exposed PACS: what ``pacsguard guard init`` prints, and what
scan's remediation text can quote for a finding (``config_snippet(host, port, ae_title)``).

The guard takes over the address clients already use; the PACS moves to a private address
(by default the next port on the same host, to be changed to a private network). No client
is allowed yet: the guard admits nobody until the operator lists them (fail closed).
"""

from __future__ import annotations

import json

PLACEHOLDER_AE = "PACS"


def _ae_title(text: str | None) -> str:
    """A valid AE title (PS3.5: at most 16 characters, no backslash, no control
    characters), else the placeholder: scan quotes titles that a server answered to."""
    title = (text or "").strip()
    valid = 0 < len(title) <= 16 and "\\" not in title and title.isprintable()
    return title if valid else PLACEHOLDER_AE


def _toml(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text)


def _comment(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def config_snippet(
    host: str,
    port: int,
    ae_title: str | None = None,
    *,
    private_host: str | None = None,
    private_port: int | None = None,
) -> str:
    """guard.toml text for the PACS found at ``host:port`` answering ``ae_title``."""
    called = _ae_title(ae_title)
    upstream_host = private_host or host
    upstream_port = private_port or (port + 1 if port < 65535 else port - 1)
    where, private = _comment(f"{host}:{port}"), _comment(f"{upstream_host}:{upstream_port}")
    return f"""\
# pacsguard guard in front of the PACS found at {where}
# 1. Move the PACS to a private address: here {private} (better: a network
#    only the guard reaches), and register the guard there as a C-MOVE destination:
#    AE title "{called}" at this machine's address, port {port}.
# 2. List the clients below (calling AE title + address, what each may do), then run:
#    pacsguard guard check --config guard.toml && pacsguard guard run --config guard.toml

[guard]
ae_title = {_toml(called)}          # the called AE title clients already use
host = {_toml(host)}
port = {port}
state = "guard-state"

[guard.upstream]
ae_title = {_toml(called)}          # the AE title the PACS answers to
host = {_toml(upstream_host)}
port = {upstream_port}

# [guard.tls]                   # TLS for clients that can (BCP 195 non-downgrading)
# port = 2762
# cert_file = "guard.pem"
# key_file = "guard.key"
# ca_file = "clients-ca.pem"

# [[guard.client]]
# name = "viewer"
# ae_title = "VIEWER"
# host = "10.0.0.20"
# allow = ["echo", "find", "move"]
# move_destinations = ["VIEWERSTORE"]

# [[guard.destination]]
# ae_title = "VIEWERSTORE"
# host = "10.0.0.20"
# port = 11112
"""
