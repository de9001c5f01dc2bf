"""Prometheus metrics of the replicas and the queue, in the app's own registry."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from microservice.observability.metric_children import MetricChildren
from microservice.routing.replica import Replica

NO_KEY = "(none)"  # the key label without API keys: no key name can be it


def key_label(name: str) -> str:
    return name or NO_KEY


WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, ["replica"], registry=registry)

        self.requests = Counter(
            "llm_usvc_replica_requests",
            "Requests sent to each replica (tries included).",
            ["replica"],
            registry=registry,
        )
        self.failures = Counter(
            "llm_usvc_replica_failures",
            "Requests a replica failed (unreachable, reset, 5xx, timeout).",
            ["replica"],
            registry=registry,
        )
        self.stalls = Counter(
            "llm_usvc_replica_stalls",
            "Requests taken off a replica that answered nothing, not even its checks, for the "
            "stall limit (LLM_STALL_S, LLM_STREAM_STALL_S).",
            ["replica"],
            registry=registry,
        )
        self.resumes = Counter(
            "llm_usvc_stream_resumes",
            "Streams cut after they began, by outcome: `resumed` on another replica, "
            "`not_resumable` (ended with an error event; docs/scale-out.md says which), "
            "`no_replica` (none left to resume on).",
            ["outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "llm_usvc_retries", "Requests tried again on another replica.", registry=registry
        )
        self.rejected = Counter(
            "llm_usvc_rejected",
            "Requests refused before any replica saw them, by reason.",
            ["reason"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "llm_usvc_queue_depth", "Requests waiting for a replica.", registry=registry
        )
        self.queue_depth_by_key = Gauge(
            "llm_usvc_queue_depth_by_key",
            "Requests waiting for a replica, by priority class and API key (`(none)` without "
            "keys).",
            ["class", "key"],
            registry=registry,
        )
        self.queue_wait = Histogram(
            "llm_usvc_queue_wait_seconds",
            "Time a request waited for a replica (0 when one was free), by priority class and "
            "API key.",
            ["class", "key"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.in_flight = gauge("llm_usvc_replica_in_flight", "Our requests in flight, by replica.")
        self.healthy = gauge("llm_usvc_replica_healthy", "1 while the replica is in rotation.")
        self.running = gauge(
            "llm_usvc_replica_running", "Requests the replica's engine runs (its /metrics)."
        )
        self.waiting = gauge(
            "llm_usvc_replica_waiting", "Requests waiting in the replica's engine (its /metrics)."
        )
        self.kv_cache = gauge(
            "llm_usvc_replica_kv_cache_usage", "KV-cache use of the replica, 0 to 1 (its /metrics)."
        )
        self.decisions = Counter(
            "llm_usvc_routing_decisions",
            "Replicas picked, by the routing policy's reason (docs/scale-out.md).",
            ["reason"],
            registry=registry,
        )
        self.cache_queries = gauge(
            "llm_usvc_replica_prefix_cache_queries",
            "Prompt tokens the replica looked up in its prefix cache since it started (its "
            "vllm:prefix_cache_queries, as last read; rate() it like a counter).",
        )
        self.cache_hits = gauge(
            "llm_usvc_replica_prefix_cache_hits",
            "Of those, tokens found in its prefix cache (its vllm:prefix_cache_hits).",
        )
        self.index_blocks = gauge(
            "llm_usvc_replica_cache_index_blocks",
            "Prompt blocks `cache_aware` routing believes the replica holds.",
        )
        self.event_blocks = gauge(
            "llm_usvc_replica_kv_event_blocks",
            "Prompt blocks the replica's own KV-cache events say it holds; absent while they "
            "are not followed (the replica is then routed by the approximate index).",
        )
        self.adapter_loads = Counter(
            "llm_usvc_adapter_loads",
            "LoRA adapters loaded on a replica at run time, by adapter and outcome (`loaded`, "
            "`failed`).",
            ["adapter", "outcome"],
            registry=registry,
        )
        self.sent = MetricChildren(self.requests)  # per request: by replica
        self.decided = MetricChildren(self.decisions)
        self.in_flight_of = MetricChildren(self.in_flight)
        self.waited = MetricChildren(self.queue_wait)  # per request: by class and key
        self.waiting_of = MetricChildren(self.queue_depth_by_key)

    def observe(self, replica: Replica, index_blocks: int, event_blocks: int | None) -> None:
        """The replica's probed state (called after each probe)."""
        url = replica.url
        self.healthy.labels(url).set(1 if replica.healthy else 0)
        self.running.labels(url).set(replica.load.running)
        self.waiting.labels(url).set(replica.load.waiting)
        self.kv_cache.labels(url).set(replica.load.kv_cache)
        self.cache_queries.labels(url).set(replica.cache.queries)
        self.cache_hits.labels(url).set(replica.cache.hits)
        self.index_blocks.labels(url).set(index_blocks)
        if event_blocks is not None:
            self.event_blocks.labels(url).set(event_blocks)
        else:
            with contextlib.suppress(KeyError):
                self.event_blocks.remove(url)

    def forget(self, url: str) -> None:
        """A replica that left the endpoint list leaves the metrics too."""
        self.sent.forget(url)
        self.in_flight_of.forget(url)
        for per_replica in (
            self.requests, self.failures, self.stalls, self.in_flight, self.healthy, self.running,
            self.waiting, self.kv_cache, self.cache_queries, self.cache_hits, self.index_blocks,
            self.event_blocks,
        ):  # fmt: skip
            with contextlib.suppress(KeyError):  # never observed: nothing to remove
                per_replica.remove(url)
