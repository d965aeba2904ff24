"""``pacsguard gateway``: receive from a PACS, de-identify on the fly, forward, lose nothing.

    config = load_config(Path("gateway.toml"))
    run_gateway(config)                 # until SIGTERM
    status(config)                      # {"received": N, "quarantined": N, "destinations": {...}}
    retry(config, "research")           # dead letters of a destination back in its queue

Layers, as pynetdicom names them: association policy and TLS (``pacsguard.net``), the
C-STORE and STOW-RS services (``scp``, ``stow``), the receive path (``receive``: spool,
de-identify with ``pacsguard.deid.FileDeidentifier``, commit), the durable queue
(``queue``), the destinations (``forward``), observation (``observe``).
"""

from __future__ import annotations

from typing import Any

from pacsguard.gateway.config import GatewayConfig, load_config


def status(config: GatewayConfig) -> dict[str, Any]:
    """Counts read from the queue database (works while the gateway runs, or not)."""
    from pacsguard.gateway.queue import Queue

    if not config.database.exists():
        queue = None
        empty = {"queued": 0, "sent": 0, "dead_letter": 0}
        return {"received": 0, "accepted": 0, "quarantined": 0, "refused": 0, "spooled": 0,
                "destinations": {d.name: dict(empty) for d in config.destinations}}  # fmt: skip
    queue = Queue(config.database)
    try:
        return queue.status([d.name for d in config.destinations])
    finally:
        queue.close()


def retry(config: GatewayConfig, destination: str) -> int:
    """Requeue every dead letter of ``destination``; returns how many."""
    from pacsguard.gateway.forward import clear_dead_letters
    from pacsguard.gateway.queue import Queue

    config.destination(destination)  # a ConfigError for an unknown name
    queue = Queue(config.database)
    try:
        requeued = queue.requeue_dead(destination)
    finally:
        queue.close()
    clear_dead_letters(config, destination, [uid for uid, _ in requeued])
    return len(requeued)


def run_gateway(config: GatewayConfig, ready: Any = None) -> None:
    from pacsguard.gateway.node import run_gateway as run

    run(config, ready)


__all__ = ["GatewayConfig", "load_config", "retry", "run_gateway", "status"]
