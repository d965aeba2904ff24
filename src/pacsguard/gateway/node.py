"""The gateway process: queue, receiver, forwarders, listeners; graceful stop on SIGTERM.

Start-up order makes a crash harmless: the queue opens, the spool is swept of what no
committed row names, the forwarders resume every queued delivery, and only then do the
listeners accept anyone. Stop order is the reverse: stop accepting, let in-flight
associations finish (bounded), then the forwarders finish their current batch.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from types import FrameType
from typing import Any

from pacsguard.core.keys import load_key
from pacsguard.gateway.config import GatewayConfig
from pacsguard.gateway.forward import DestinationWorkers
from pacsguard.gateway.observe import Metrics, serve_status
from pacsguard.gateway.queue import Item, Queue
from pacsguard.gateway.receive import Receiver
from pacsguard.gateway.scp import StoreSCP
from pacsguard.gateway.stow import serve_stow
from pacsguard.net import AuditLog
from pacsguard.net.tls import server_context

DRAIN_TIMEOUT = 30.0


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.key = load_key(config.key_file)
        config.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.queue = Queue(config.database)
        self.audit = AuditLog(config.audit_log)
        self.receiver = Receiver(config, self.key, self.queue)
        self.metrics = Metrics(self.snapshot)
        self.workers = [
            DestinationWorkers(d, config, self.queue, self.audit, self.receiver.discard, self._sent)
            for d in config.destinations
        ]
        self.scp = StoreSCP(config, self.receiver, self.audit, self._stored)
        self._servers: list[Any] = []
        self._stopped = threading.Event()

    def snapshot(self) -> dict[str, Any]:
        return self.queue.status([d.name for d in self.config.destinations])

    def _stored(self) -> None:
        for worker in self.workers:
            worker.notify()

    def _sent(self, item: Item, latency: float) -> None:
        self.metrics.latency.labels(item.destination).observe(latency)

    def start(self) -> None:
        swept = self.receiver.sweep()
        self.audit.write("gateway-started", ae_title=self.config.ae_title, swept_spool_files=swept)
        for worker in self.workers:
            worker.start()
        cfg = self.config
        if cfg.status_port is not None:
            self._servers.append(serve_status(self.metrics, cfg.status_host, cfg.status_port))
        if cfg.stow is not None:
            tls = None
            if cfg.stow.cert_file is not None and cfg.stow.key_file is not None:
                tls = server_context(cfg.stow.cert_file, cfg.stow.key_file)
            self._servers.append(
                serve_stow(
                    self.receiver,
                    cfg.allow,
                    self.audit,
                    cfg.stow.host,
                    cfg.stow.port,
                    tls,
                    self._stored,
                )
            )
        self.scp.start()

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.scp.stop_listening()
        for server in self._servers:
            server.shutdown()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while self.scp.active() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.scp.abort_all()  # past the deadline: nothing unanswered was acknowledged
        self.receiver.close()
        for worker in self.workers:
            worker.stop()
        self.audit.write("gateway-stopped")
        self.audit.close()
        self.queue.close()

    def wait(self) -> None:
        self._stopped.wait()


def run_gateway(config: GatewayConfig, ready: Any = None) -> None:
    """Run until SIGTERM or SIGINT; ``ready(gateway)`` is called once it listens."""
    gateway = Gateway(config)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        gateway.start()
        if ready is not None:
            ready(gateway)
        while not stop.wait(0.5):
            pass
    finally:
        gateway.stop()
        for signum, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, handler)
