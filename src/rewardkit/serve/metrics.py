"""Prometheus metrics for one served app, kept in the app's own registry.

A per-app `CollectorRegistry` (not prometheus_client's global one) lets tests and the load bench
build many apps in one process without "Duplicated timeseries" errors.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536)


class ServeMetrics:
    """Request, latency, batch and queue metrics for one app.

    Example:
        >>> m = ServeMetrics()
        >>> m.observe_request("/score", 200, 0.01)
        >>> b'rewardkit_requests_total{route="/score",status="200"} 1.0' in m.render()[0]
        True
    """

    def __init__(self, queue_depth: Callable[[], float] | None = None):
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = Counter(
            "rewardkit_requests", "HTTP requests by route and status code", ["route", "status"], registry=reg
        )
        self.latency = Histogram(
            "rewardkit_request_latency_seconds",
            "Time from request start to the end of the response, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.batch_size = Histogram(
            "rewardkit_batch_size", "Items per model call", buckets=BATCH_BUCKETS, registry=reg
        )
        self.batch_tokens = Histogram(
            "rewardkit_batch_tokens", "Tokens per model call (estimated)", buckets=TOKEN_BUCKETS, registry=reg
        )
        self.queue_depth = Gauge("rewardkit_queue_depth", "Items waiting for the model", registry=reg)
        if queue_depth is not None:
            self.queue_depth.set_function(queue_depth)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def observe_batch(self, items: int, tokens: int) -> None:
        self.batch_size.observe(items)
        self.batch_tokens.observe(tokens)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
