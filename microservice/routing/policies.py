"""Which healthy replica a request goes to: pure functions over the replicas' state, so that
each policy is unit-tested without a socket. Every function gets a non-empty list of routable
replicas and returns one of them; ``make_picker`` puts the one LLM_ROUTING names in front.

``session`` and ``prefix`` use rendezvous (highest-random-weight) hashing: each key ranks the
replicas by a hash of (key, replica), so a replica that joins or leaves moves only the keys it
wins or held (about 1/N of them), and a replica that leaves and returns gets its keys back.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence

from microservice.routing.replica import Replica
from microservice.settings import RoutingPolicy
from microservice.upstream.model_call import ModelCall

Picker = Callable[[ModelCall, Sequence[Replica]], Replica]

# A prefix-routed replica may take at most this much more than the average in-flight load
# before the key's next replica in rank takes the request (consistent hashing, bounded loads).
PREFIX_LOAD_BOUND = 1.25
# Waiting requests cost more than ones in flight here: they mean the engine is already full.
WAITING_WEIGHT = 2.0
KV_CACHE_WEIGHT = 4.0
# Prompts that share this many leading characters count as one prefix for `prefix` routing.
PREFIX_CHARS = 256


def load_score(replica: Replica) -> float:
    """Lower is better: our requests in flight, the engine's own queue, and its KV-cache use."""
    load = replica.load
    return replica.in_flight + WAITING_WEIGHT * load.waiting + KV_CACHE_WEIGHT * load.kv_cache


def least_loaded(replicas: Sequence[Replica], start: int = 0) -> Replica:
    """The lowest score; among equals the first from ``start`` on, so that an idle deployment
    still spreads its requests (the caller turns ``start``)."""
    n = len(replicas)
    return min((replicas[(start + i) % n] for i in range(n)), key=load_score)


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


def by_key_bounded(key: str, replicas: Sequence[Replica]) -> Replica:
    """The key's highest-ranked replica whose in-flight count stays within the bound of the
    average, so one hot key cannot swamp a replica."""
    total = sum(r.in_flight for r in replicas) + 1  # the request being placed
    bound = max(1.0, PREFIX_LOAD_BOUND * total / len(replicas))
    order = ranked(key, replicas)
    return next((r for r in order if r.in_flight + 1 <= bound), order[0])


def prompt_prefix(body: dict[str, object]) -> str:
    """The first PREFIX_CHARS characters of the conversation's text, roles included."""
    parts: list[str] = []
    size = 0
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(f"{message.get('role')}:{content or ''}\n")
        size += len(parts[-1])
        if size >= PREFIX_CHARS:
            break
    return "".join(parts)[:PREFIX_CHARS]


def make_picker(policy: RoutingPolicy) -> Picker:
    """The LLM_ROUTING policy; without a key, session and prefix fall back to least_loaded."""
    turn = turning()

    def pick(call: ModelCall, replicas: Sequence[Replica]) -> Replica:
        if len(replicas) == 1:
            return replicas[0]
        if policy == "round_robin":
            return round_robin(replicas, turn())
        if policy == "session":
            session = call.session_id or call.body.get("user")
            if session:
                return by_key(str(session), replicas)
        elif policy == "prefix":
            prefix = prompt_prefix(call.body)
            if prefix:
                return by_key_bounded(prefix, replicas)
        return least_loaded(replicas, turn())

    return pick
