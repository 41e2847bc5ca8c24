"""The server's Prometheus metrics: requests by route and status, their latency, texts per model call, and
texts waiting for the model."""
from __future__ import annotations

import time
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.responses import Response


class Metrics:
    """One application's metrics, in a registry of its own: two applications in one process (as in the tests)
    neither clash over the metrics' names nor add to each other's counts."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("revsent_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("revsent_request_seconds", "Request latency by route", ["route"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.batch_texts = Histogram("revsent_batch_texts", "Texts per model call", registry=self.registry,
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.queued = Gauge("revsent_queue_texts", "Texts waiting for the model", registry=self.registry)

    def record(self, route: str, status: int, started: float) -> None:
        """One answered request: ``started`` is its ``time.perf_counter()`` on arrival."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(time.perf_counter() - started)

    def watch_queue(self, waiting: Callable[[], float]) -> None:
        """The queue gauge reads ``waiting()`` at each scrape."""
        self.queued.set_function(waiting)

    def response(self) -> Response:
        """The metrics in Prometheus' text format, for GET /metrics."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
