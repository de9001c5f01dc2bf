"""Per-key usage in Prometheus, labelled by the key's name (never the key)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class KeyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "llm_usvc_key_requests",
            "Requests admitted, by API key name.",
            ["key"],
            registry=registry,
        )
        self.prompt_tokens = Counter(
            "llm_usvc_key_prompt_tokens",
            "Prompt tokens of answered requests, by API key name.",
            ["key"],
            registry=registry,
        )
        self.completion_tokens = Counter(
            "llm_usvc_key_completion_tokens",
            "Generated tokens of answered requests, by API key name.",
            ["key"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "llm_usvc_key_rate_limited",
            "Requests refused with 429 by a key's own limit, by key name and limit "
            "(requests, tokens, tokens_per_day or tokens_per_month).",
            ["key", "limit"],
            registry=registry,
        )
        self.budget_remaining = Gauge(
            "llm_usvc_key_budget_remaining_tokens",
            "Tokens left in a key's budget for the current UTC day or month, as last checked "
            "or settled, by key name and period (day or month).",
            ["key", "period"],
            registry=registry,
        )
