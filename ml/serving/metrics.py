"""Prometheus text-format metrics of one worker (no client library: counters, one latency
histogram per endpoint, gauges), rendered by ``render``."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds
        self.n += 1


@dataclass
class Metrics:
    requests: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    latency: dict[str, Histogram] = field(default_factory=lambda: defaultdict(Histogram))
    transactions: int = 0
    flagged: int = 0
    shadow_scored: int = 0
    shadow_errors: int = 0
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    model_swaps: int = 0

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests[(endpoint, status)] += 1
        self.latency[endpoint].observe(seconds)

    def error(self, kind: str) -> None:
        self.errors[kind] += 1


def render(metrics: Metrics, models: dict[str, tuple[str, int]], ready: bool) -> str:
    """The text exposition format (version 0.0.4)."""
    lines = [
        "# HELP fraud_serve_requests_total HTTP requests by endpoint and status.",
        "# TYPE fraud_serve_requests_total counter",
    ]
    for (endpoint, status), count in sorted(metrics.requests.items()):
        lines.append(
            f'fraud_serve_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}'
        )
    lines += [
        "# HELP fraud_serve_request_seconds Request latency in the worker (body read to reply).",
        "# TYPE fraud_serve_request_seconds histogram",
    ]
    for endpoint, hist in sorted(metrics.latency.items()):
        running = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), hist.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(
                f'fraud_serve_request_seconds_bucket{{endpoint="{endpoint}",le="{le}"}} {running}'
            )
        lines.append(f'fraud_serve_request_seconds_sum{{endpoint="{endpoint}"}} {hist.total}')
        lines.append(f'fraud_serve_request_seconds_count{{endpoint="{endpoint}"}} {hist.n}')
    lines += [
        "# HELP fraud_serve_transactions_total Transactions scored by the champion.",
        "# TYPE fraud_serve_transactions_total counter",
        f"fraud_serve_transactions_total {metrics.transactions}",
        "# HELP fraud_serve_flagged_total Transactions the champion flagged.",
        "# TYPE fraud_serve_flagged_total counter",
        f"fraud_serve_flagged_total {metrics.flagged}",
        "# HELP fraud_serve_shadow_scored_total Transactions also scored by the challenger.",
        "# TYPE fraud_serve_shadow_scored_total counter",
        f"fraud_serve_shadow_scored_total {metrics.shadow_scored}",
        "# HELP fraud_serve_errors_total Rejected or failed requests by kind.",
        "# TYPE fraud_serve_errors_total counter",
    ]
    for kind, count in sorted(metrics.errors.items()):
        lines.append(f'fraud_serve_errors_total{{kind="{kind}"}} {count}')
    lines += [
        "# HELP fraud_serve_model_swaps_total Model versions swapped in after the alias moved.",
        "# TYPE fraud_serve_model_swaps_total counter",
        f"fraud_serve_model_swaps_total {metrics.model_swaps}",
        "# HELP fraud_serve_model_info The model version serving each role (value 1).",
        "# TYPE fraud_serve_model_info gauge",
    ]
    for role, (name, version) in sorted(models.items()):
        lines.append(
            f'fraud_serve_model_info{{role="{role}",model_name="{name}",'
            f'model_version="{version}"}} 1'
        )
    lines += [
        "# HELP fraud_serve_ready 1 when the model and the feature state are loaded.",
        "# TYPE fraud_serve_ready gauge",
        f"fraud_serve_ready {int(ready)}",
    ]
    return "\n".join(lines) + "\n"
