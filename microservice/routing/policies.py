"""Which healthy replica a request goes to: pure functions over the replicas' state, so that
each policy is unit-tested without a socket. Every function gets a non-empty list of routable
replicas and returns one of them (``routing.picker`` puts the one LLM_ROUTING names in front).

``session`` and ``prefix`` use rendezvous (highest-random-weight) hashing: each key ranks the
replicas by a hash of (key, replica), so a replica that joins or leaves moves only the keys it
wins or held (about 1/N of them), and a replica that leaves and returns gets its keys back.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from microservice.routing.prompt_text import prompt_text
from microservice.routing.replica import Replica
from microservice.routing.vllm_block_hashes import PromptBlocks
from microservice.upstream.model_call import ModelCall


@dataclass(frozen=True, slots=True)
class Choice:
    """The replica a request goes to, and why (``llm_usvc_routing_decisions``' reason)."""

    replica: Replica
    reason: str


# (the call, the routable replicas, the prompt in vLLM's blocks when they are known)
Picker = Callable[[ModelCall, Sequence[Replica], PromptBlocks | None], Choice]

# A replica preferred for its cache (``prefix``, ``cache_aware``) may take a request while its
# requests in flight stay within PREFIX_LOAD_BOUND times the average, or LOAD_SLACK requests
# above it, whichever is more (consistent hashing with bounded loads): one hot prefix cannot
# swamp a replica. The slack is for low loads, where a ratio of small counts means little: an
# engine batches a few more requests at a small cost to each, while moving a request away
# from its cached prefix recomputes the whole prefix.
PREFIX_LOAD_BOUND = 1.25
LOAD_SLACK = 2
# Waiting requests cost more than ones in flight here: they mean the engine is already full.
WAITING_WEIGHT = 2.0
KV_CACHE_WEIGHT = 4.0
# Scores closer than this to the lowest count as equal (a quarter of one request in flight).
LOAD_TIE = 0.25
# Prompts that share this many leading characters count as one prefix for `prefix` routing.
PREFIX_CHARS = 256


def load_score(replica: Replica) -> float:
    """Lower is better: our requests in flight, the engine's own queue, and its KV-cache use."""
    load = replica.load
    return replica.in_flight + WAITING_WEIGHT * load.waiting + KV_CACHE_WEIGHT * load.kv_cache


def least_loaded(replicas: Sequence[Replica], start: int = 0) -> Replica:
    """The lowest score; among those within LOAD_TIE of it, the first from ``start`` on, so
    that an idle deployment still spreads its requests (the caller turns ``start``). The
    engine's gauges are up to a probe interval old: one request's KV blocks seen by the last
    probe (a few ten-thousandths of the cache) must not send every request elsewhere."""
    n = len(replicas)
    scores = [load_score(r) for r in replicas]
    lowest = min(scores)
    return next(
        replicas[(start + i) % n] for i in range(n) if scores[(start + i) % n] <= lowest + LOAD_TIE
    )


def turning() -> Callable[[], int]:
    """0, 1, 2, ...: where round robin (and least-loaded ties) start."""
    counter = itertools.count()
    return lambda: next(counter)


def round_robin(replicas: Sequence[Replica], start: int) -> Replica:
    return replicas[start % len(replicas)]


def _weight(key: str, url: str) -> int:
    digest = hashlib.blake2b(f"{key}\0{url}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def ranked(key: str, replicas: Sequence[Replica]) -> list[Replica]:
    """The replicas in the key's order of preference (rendezvous hashing)."""
    return sorted(replicas, key=lambda r: _weight(key, r.url), reverse=True)


def by_key(key: str, replicas: Sequence[Replica]) -> Replica:
    """The key's own replica while it is routable."""
    return max(replicas, key=lambda r: _weight(key, r.url))


def within_load_bound(replicas: Sequence[Replica]) -> list[Replica]:
    """The replicas that may take one more request within the load bound; all of them when
    none may (everyone equally busy)."""
    average = (sum(r.in_flight for r in replicas) + 1) / len(replicas)  # with this request
    bound = max(PREFIX_LOAD_BOUND * average, average + LOAD_SLACK)
    allowed = [r for r in replicas if r.in_flight + 1 <= bound]
    return allowed or list(replicas)


def by_key_bounded(key: str, replicas: Sequence[Replica]) -> Replica:
    """The key's highest-ranked replica within the load bound."""
    allowed = {id(r) for r in within_load_bound(replicas)}
    return next(r for r in ranked(key, replicas) if id(r) in allowed)


def prompt_prefix(body: dict[str, Any]) -> str:
    """The first PREFIX_CHARS characters of the prompt, roles included."""
    return prompt_text(body, PREFIX_CHARS)[:PREFIX_CHARS]
