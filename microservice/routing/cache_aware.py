"""``cache_aware`` routing: the replica that already holds the prompt's leading blocks, when
that saves a real share of the prefill, within the load bound; else the least loaded.

Filters, then scorers, then a picker:
- filter: the replicas within the load bound (``policies.within_load_bound``), so one hot
  prefix cannot swamp a replica;
- scorer: the number of the prompt's leading blocks each replica holds (``PrefixIndex``);
- picker: the highest score, when it exceeds the lowest by at least ``min_share`` of the
  prompt's blocks; otherwise the least loaded, turning. A prefix every prompt shares (the
  instruction template) is thus no reason to prefer the first replica that saw it: new
  documents and conversations spread, and their follow-ups find them where they went.

The prompt is then recorded as held by the replica it went to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from microservice.routing.policies import Choice, least_loaded, within_load_bound
from microservice.routing.prefix_index import PrefixIndex
from microservice.routing.prompt_text import prompt_text
from microservice.routing.replica import Replica
from microservice.upstream.model_call import ModelCall

# Why a request went where it went (the reason label of llm_usvc_routing_decisions).
CACHE_MATCH = "cache_match"  # its replica holds a larger share of the prompt than the others
NO_CACHE_ADVANTAGE = "no_cache_advantage"  # no replica holds much more of it: least loaded
LOAD_BOUND = "load_bound"  # the replica holding more of it was over the load bound


class CacheAwarePicker:
    def __init__(self, index: PrefixIndex, turn: Callable[[], int], min_share: float) -> None:
        self._index = index
        self._turn = turn
        self._min_share = min_share

    def __call__(self, call: ModelCall, replicas: Sequence[Replica]) -> Choice:
        index = self._index
        hashes = index.hashes(prompt_text(call.body))
        held = {r.url: index.matched(r.url, hashes) for r in replicas}
        allowed = within_load_bound(replicas)
        lowest = min(held[r.url] for r in allowed)
        best = max(held[r.url] for r in allowed)
        worth = self._min_share * len(hashes)  # blocks of advantage worth a preference
        if hashes and best - lowest >= worth:
            leaders = [r for r in allowed if held[r.url] == best]
            choice = Choice(least_loaded(leaders, self._turn()), CACHE_MATCH)
        else:
            over = bool(hashes) and max(held.values()) - lowest >= worth
            reason = LOAD_BOUND if over else NO_CACHE_ADVANTAGE
            choice = Choice(least_loaded(allowed, self._turn()), reason)
        index.add(choice.replica.url, hashes)
        return choice
