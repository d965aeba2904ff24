"""Status and Prometheus metrics on a loopback HTTP port: ``/status`` (JSON) and ``/metrics``.

Both read the queue database (the same figures as ``pacsguard gateway status``) plus the
in-process latency histogram (receipt to the destination's confirmation). No identifying
value: destinations are named by their configured names, instances are only counted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pacsguard.net import nodelay

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class _QueueCollector(Collector):
    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        data = self.snapshot()
        for key in ("received", "accepted", "quarantined", "refused"):
            family = CounterMetricFamily(f"pacsguard_gateway_{key}", f"Instances {key}.")
            family.add_metric([], data[key])
            yield family
        spooled = GaugeMetricFamily("pacsguard_gateway_spooled", "Instances held in the spool.")
        spooled.add_metric([], data["spooled"])
        yield spooled
        queued = GaugeMetricFamily(
            "pacsguard_gateway_queued", "Deliveries waiting.", labels=["destination"]
        )
        sent = CounterMetricFamily(
            "pacsguard_gateway_sent", "Deliveries confirmed.", labels=["destination"]
        )
        dead = GaugeMetricFamily(
            "pacsguard_gateway_dead_letter", "Dead letters.", labels=["destination"]
        )
        age = GaugeMetricFamily(
            "pacsguard_gateway_oldest_queued_age_seconds", "Age of the oldest waiting delivery.",
            labels=["destination"],
        )  # fmt: skip
        for name, dest in data["destinations"].items():
            queued.add_metric([name], dest["queued"])
            sent.add_metric([name], dest["sent"])
            dead.add_metric([name], dest["dead_letter"])
            age.add_metric([name], dest["oldest_queued_age_s"] or 0.0)
        yield from (queued, sent, dead, age)


class Metrics:
    """The gateway's own registry (never the process-global one)."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.snapshot = snapshot
        self.registry = CollectorRegistry()
        self.registry.register(_QueueCollector(snapshot))
        self.latency = Histogram(
            "pacsguard_gateway_forward_latency_seconds",
            "From receipt to the destination's confirmation.",
            ["destination"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _NoDelayHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        return nodelay(sock), address


def serve_status(metrics: Metrics, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, kind = metrics.render(), "text/plain; version=0.0.4"
            elif self.path in ("/status", "/"):
                body, kind = json.dumps(metrics.snapshot(), indent=1).encode(), "application/json"
            elif self.path == "/healthz":
                body, kind = b"ok\n", "text/plain"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = _NoDelayHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="gateway-status", daemon=True).start()
    return server
