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
# vLLM's prefix-cache counters (tokens looked up, tokens found), and its cache configuration.
CACHE_QUERIES = "vllm:prefix_cache_queries_total"
CACHE_HITS = "vllm:prefix_cache_hits_total"
CACHE_CONFIG = re.compile(r"^vllm:cache_config_info\{([^}]*)\}", re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')
# The process's start time (prometheus_client's process collector): changes on a restart.
STARTED = re.compile(r"^process_start_time_seconds ([0-9.eE+]+)$", re.M)


@dataclass(frozen=True, slots=True)
class Load:
    """What the replica's engine itself reports; zeros when it reports nothing."""

    running: float = 0.0
    waiting: float = 0.0
    kv_cache: float = 0.0  # fraction in use, 0..1


@dataclass(frozen=True, slots=True)
class CacheStats:
    """The replica's prefix cache, as vLLM reports it; zeros and None when it does not."""

    queries: float = 0.0  # prompt tokens looked up in the prefix cache since it started
    hits: float = 0.0  # of which found
    kv_tokens: int | None = None  # what its KV cache holds (blocks times block size)
    started: float | None = None  # its process's start time

    def restarted_since(self, before: CacheStats) -> bool:
        """A new process behind the same address: its cache is empty."""
        if self.started is not None and before.started is not None:
            return self.started != before.started
        return self.queries < before.queries


def _totals(metrics_text: str) -> dict[str, float]:
    """vLLM's samples from a Prometheus text page, summed over label sets (engines)."""
    totals: dict[str, float] = {}
    for name, value in SAMPLE.findall(metrics_text):
        if value != "NaN":
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def parse_engine(metrics_text: str) -> tuple[Load, CacheStats]:
    """The engine's load and prefix cache from one read of its /metrics page."""
    totals = _totals(metrics_text)
    return _load(totals), _cache(metrics_text, totals)


def _load(totals: dict[str, float]) -> Load:
    kv = next((totals[name] for name in KV_CACHE if name in totals), 0.0)
    return Load(totals.get(RUNNING, 0.0), totals.get(WAITING, 0.0), kv)


def _cache(metrics_text: str, totals: dict[str, float]) -> CacheStats:
    kv_tokens = None
    config = CACHE_CONFIG.search(metrics_text)
    if config:
        labels = dict(LABEL.findall(config.group(1)))
        blocks, size = labels.get("num_gpu_blocks", ""), labels.get("block_size", "")
        if blocks.isdigit() and size.isdigit():
            kv_tokens = int(blocks) * int(size)
    started = STARTED.search(metrics_text)
    return CacheStats(
        totals.get(CACHE_QUERIES, 0.0),
        totals.get(CACHE_HITS, 0.0),
        kv_tokens,
        float(started.group(1)) if started else None,
    )


@dataclass(slots=True)
class Replica:
    url: str
    healthy: bool = False
    reason: str = "not checked yet"
    load: Load = field(default_factory=Load)
    cache: CacheStats = field(default_factory=CacheStats)
    in_flight: int = 0
    last_error: str | None = None
    checked_at: float = 0.0  # monotonic time of the last probe, 0 before the first
    wrong_model: bool = False  # up, but does not serve our model
    slow_checks: int = 0  # checks in a row that timed out
    heard_at: float = 0.0  # monotonic time it last answered anything: a check, a request, a chunk
    quiet_since: float | None = None  # a check began then and nothing was heard since
    adapters: frozenset[str] = frozenset()  # the LoRA adapters it lists (its /v1/models)

    def heard(self, now: float) -> None:
        """It answered something: a check, a request, a stream's chunk (passive health)."""
        self.heard_at = now
        self.quiet_since = None

    def checking(self, now: float) -> None:
        if self.quiet_since is None:
            self.quiet_since = now

    def answering(self, now: float, interval_s: float) -> bool:
        """False once a check has waited longer than one interval and nothing else was heard
        meanwhile: a frozen replica gets no new request within two intervals, long before its
        check times out."""
        return self.quiet_since is None or now - self.quiet_since <= interval_s

    def mark_healthy(self, load: Load, cache: CacheStats) -> None:
        self.healthy, self.reason, self.load, self.wrong_model = True, "ready", load, False
        self.cache = cache
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
