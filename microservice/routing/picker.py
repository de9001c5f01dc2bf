"""The LLM_ROUTING policy in front of the pool: one ``Picker`` per pool, holding what the
policy remembers between requests (the turn of round robin, the prefix index)."""

from __future__ import annotations

from collections.abc import Sequence

from microservice.routing import policies
from microservice.routing.cache_aware import CacheAwarePicker
from microservice.routing.kv_event_index import KvEventIndex
from microservice.routing.policies import Choice, Picker
from microservice.routing.prefix_index import PrefixIndex
from microservice.routing.replica import Replica
from microservice.routing.vllm_block_hashes import PromptBlocks
from microservice.settings import RoutingPolicy
from microservice.upstream.model_call import ModelCall

ONLY_REPLICA = "only_replica"


def make_picker(
    policy: RoutingPolicy, index: PrefixIndex, events: KvEventIndex | None, min_share: float
) -> Picker:
    """Without a key, session and prefix fall back to least_loaded."""
    turn = policies.turning()
    cache_aware = CacheAwarePicker(index, events, turn, min_share)

    def pick(
        call: ModelCall, replicas: Sequence[Replica], blocks: PromptBlocks | None = None
    ) -> Choice:
        if len(replicas) == 1:
            return Choice(replicas[0], ONLY_REPLICA)
        if policy == "cache_aware":
            return cache_aware(call, replicas, blocks)
        if policy == "round_robin":
            return Choice(policies.round_robin(replicas, turn()), policy)
        if policy == "session":
            session = call.session_id or call.body.get("user")
            if session:
                return Choice(policies.by_key(str(session), replicas), policy)
        elif policy == "prefix":
            prefix = policies.prompt_prefix(call.body)
            if prefix:
                return Choice(policies.by_key_bounded(prefix, replicas), policy)
        return Choice(policies.least_loaded(replicas, turn()), "least_loaded")

    return pick
