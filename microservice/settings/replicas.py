"""The settings of how requests reach a model's replicas: discovery, probes, routing, retries
and resumes, stalls, and the waiting room. Part of ``MicroserviceSettings``; their descriptions
are the documentation (``make docs``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from common.config_loading import SETTINGS_CONFIG

RoutingPolicy = Literal["cache_aware", "least_loaded", "round_robin", "session", "prefix"]


class ReplicaSettings(BaseSettings):
    """Discovery, probes, routing, failover and admission, for every model's replicas."""

    model_config = SETTINGS_CONFIG

    llm_discovery_refresh_s: float = Field(
        10.0,
        gt=0,
        description="Seconds between DNS lookups of the endpoint host names, so that replicas "
        "come and go without a restart.",
    )
    llm_probe_interval_s: float = Field(
        1.0,
        gt=0,
        description="Seconds between two checks of each replica (`/health`, and its load from "
        "vLLM's `/metrics`); a replica that fails one leaves the rotation until it answers again. "
        "A replica heard from by neither a check nor a request for two intervals gets no new "
        "request meanwhile.",
    )
    llm_probe_timeout_s: float = Field(
        5.0,
        gt=0,
        description="Seconds one check of a replica may take. A check that times out takes the "
        "replica out only when the next one times out too and no request on it made progress "
        "meanwhile: a replica busy answering is not dead.",
    )
    llm_routing: RoutingPolicy = Field(
        "cache_aware",
        description="How a request picks its replica: `cache_aware` (the replica that already "
        "holds the longest run of the prompt's leading blocks in its prefix cache, within a "
        "bounded load; else the least loaded), `least_loaded` (this service's requests in "
        "flight plus the replica's own waiting queue and KV-cache use), `round_robin`, "
        "`session` (the same `X-Session-Id` header, else the OpenAI `user` field, stays on one "
        "replica while it is healthy) or `prefix` (prompts sharing their first "
        "characters go to one replica, within a bounded load). docs/scale-out.md compares them.",
    )
    llm_cache_block_chars: int = Field(
        128,
        ge=16,
        le=4096,
        description="`cache_aware`: the prompt is matched against each replica's cache in "
        "blocks of this many characters (about 32 tokens at the default).",
    )
    llm_cache_min_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="`cache_aware`: a replica is preferred for its cache only when it holds "
        "more of the prompt than the other replicas by at least this share of what the one "
        "holding least lacks; below it, the least loaded takes the request. Keeps a prefix that "
        "every prompt shares (an instruction template) from piling all traffic onto one replica.",
    )
    llm_cache_index_blocks: int = Field(
        100_000,
        ge=1,
        description="`cache_aware`: the most prompt blocks remembered per replica (the oldest "
        "go first); fewer when the replica's KV cache holds less. At the default, about 13 MB "
        "per replica at most.",
    )
    llm_cache_events: bool = Field(
        True,
        description="`cache_aware`: follow each replica's own KV-cache events where it publishes "
        "them (the model server's `VLLM_KV_EVENTS_PORT`), so that the index holds what the "
        "replica really holds, evictions included, and every microservice process sees the "
        "same; each prompt is then tokenized by a replica's `/tokenize`. Replicas without "
        "events are routed by the approximate index.",
    )
    llm_retries: int = Field(
        1,
        ge=0,
        le=10,
        description="How many other replicas a request tries after a failure before its first "
        "byte reached the client (connection refused or reset, replica 5xx, a stall), and how "
        "many times a stream under way is resumed on another replica.",
    )
    llm_stream_resume: bool = Field(
        True,
        description="A stream whose replica fails after it began (connection lost, a stall) is "
        "continued on another replica from the text already sent: the client sees one stream. "
        "`false`: such a stream ends with an error event (docs/scale-out.md).",
    )
    llm_stall_s: float = Field(
        5.0,
        gt=0,
        description="Seconds a non-streaming request waits on a replica that answers neither "
        "it nor its checks before it is sent to another replica (the first try is closed). A "
        "replica that answers its checks is slow, not stalled: its requests are never sent twice.",
    )
    llm_stream_stall_s: float = Field(
        5.0,
        gt=0,
        description="Seconds a stream waits for its next chunk from a replica that answers "
        "nothing else either before the stream is resumed on another replica.",
    )
    llm_max_inflight_per_replica: int = Field(
        256,
        ge=1,
        description="Requests this service sends to one replica at once; more wait in the queue.",
    )
    llm_queue_size: int = Field(
        512,
        ge=0,
        description="Requests that may wait for a replica; one more is refused at once with "
        "429 and `Retry-After`.",
    )
    llm_queue_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Seconds a request may wait in the queue before it is refused with 429 and "
        "`Retry-After`.",
    )
    llm_priority_scheduling: bool = Field(
        False,
        description="`true`: the replicas run vLLM's priority scheduler "
        "(`VLLM_SCHEDULING_POLICY=priority`), and each request's priority class goes to vLLM "
        "as its `priority` (interactive 0, batch 1; the client's own is replaced), so the "
        "engine serves interactive requests first too. vLLM 0.32's default scheduler ignores "
        "a `priority`; older vLLM refuses it: leave this `false` unless the replicas run "
        "the priority scheduler.",
    )
