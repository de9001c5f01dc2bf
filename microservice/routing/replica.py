"""What is known about one replica: whether it takes requests, and how loaded it is.

Written by the prober (health, load scraped from vLLM's ``/metrics``) and by the request path
(requests in flight here, failures); read by the policies and the health answer.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

# vLLM's gauges (V1 names; older V0 engines call the KV-cache one gpu_cache_usage_perc).
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
SAMPLE = re.compile(r"^(vllm:[a-z_]+)(?:\{[^}]*\})? ([0-9.eE+-]+|NaN)$", re.M)


@dataclass(frozen=True, slots=True)
class Load:
    """What the replica's engine itself reports; zeros when it reports nothing."""

    running: float = 0.0
    waiting: float = 0.0
    kv_cache: float = 0.0  # fraction in use, 0..1


def parse_load(metrics_text: str) -> Load:
    """The engine's gauges from a Prometheus text page, summed over label sets (engines)."""
    totals: dict[str, float] = {}
    for name, value in SAMPLE.findall(metrics_text):
        if value != "NaN":
            totals[name] = totals.get(name, 0.0) + float(value)
    kv = next((totals[name] for name in KV_CACHE if name in totals), 0.0)
    return Load(totals.get(RUNNING, 0.0), totals.get(WAITING, 0.0), kv)


@dataclass(slots=True)
class Replica:
    url: str
    healthy: bool = False
    reason: str = "not checked yet"
    load: Load = field(default_factory=Load)
    in_flight: int = 0
    last_error: str | None = None
    checked_at: float = 0.0  # monotonic time of the last probe, 0 before the first
    wrong_model: bool = False  # up, but does not serve our model
    slow_checks: int = 0  # checks in a row that timed out

    def mark_healthy(self, load: Load) -> None:
        self.healthy, self.reason, self.load, self.wrong_model = True, "ready", load, False
        self.slow_checks = 0
        self.checked_at = time.monotonic()

    def mark_down(self, reason: str, *, wrong_model: bool = False) -> None:
        """Out of the rotation at once; the next good probe brings it back."""
        self.healthy, self.reason, self.last_error = False, reason, reason
        self.wrong_model = wrong_model
        self.checked_at = time.monotonic()

    def describe(self) -> dict[str, Any]:
        """This replica in the health answer."""
        return {
            "address": self.url,
            "healthy": self.healthy,
            "reason": self.reason,
            "in_flight": self.in_flight,
            "running": self.load.running,
            "waiting": self.load.waiting,
            "kv_cache_usage": round(self.load.kv_cache, 4),
            "last_error": self.last_error,
        }
