"""``cache_aware`` routing: the replica that already holds the prompt's leading blocks, when
that saves a real share of the prefill, within the load bound; else the least loaded.

Filters, then scorers, then a picker:
- filter: the replicas within the load bound (``policies.within_load_bound``), so one hot
  prefix cannot swamp a replica;
- scorer: the share of the prompt each replica holds in its leading blocks: by its own
  KV-cache events where they are followed (``KvEventIndex``, vLLM's block hashes of the
  prompt's tokens), else by the prompts sent there (``PrefixIndex``, the approximate index);
- picker: the highest share, when its lead over the lowest is at least ``min_share`` of what
  the lowest lacks; otherwise the least loaded, turning. A prefix every prompt shares (the
  instruction template) is thus no reason to prefer the first replica that saw it, and once
  every replica holds it, it neither helps nor hides a lead: new documents and conversations
  spread, and their follow-ups find them where they went.

The prompt is then recorded as held by the replica it went to, in both indexes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from microservice.routing.kv_event_index import KvEventIndex
from microservice.routing.policies import Choice, least_loaded, within_load_bound
from microservice.routing.prefix_index import PrefixIndex
from microservice.routing.prompt_text import prompt_text
from microservice.routing.replica import Replica
from microservice.routing.vllm_block_hashes import PromptBlocks
from microservice.upstream.model_call import ModelCall

# Why a request went where it went (the reason label of llm_usvc_routing_decisions).
CACHE_MATCH = "cache_match"  # its replica holds a larger share of the prompt than the others
NO_CACHE_ADVANTAGE = "no_cache_advantage"  # no replica holds much more of it: least loaded
LOAD_BOUND = "load_bound"  # the replica holding more of it was over the load bound


class CacheAwarePicker:
    def __init__(
        self,
        index: PrefixIndex,
        events: KvEventIndex | None,
        turn: Callable[[], int],
        min_share: float,
    ) -> None:
        self._index = index
        self._events = events
        self._turn = turn
        self._min_share = min_share

    def __call__(
        self, call: ModelCall, replicas: Sequence[Replica], blocks: PromptBlocks | None = None
    ) -> Choice:
        """``blocks``: the prompt in vLLM's blocks, when a replica's events are followed."""
        index = self._index
        hashes = index.hashes(prompt_text(call.body))
        share = {r.url: self._share(r.url, hashes, blocks) for r in replicas}
        allowed = within_load_bound(replicas)
        lowest = min(share[r.url] for r in allowed)
        best = max(share[r.url] for r in allowed)
        if self._leads(best, lowest):
            leaders = [r for r in allowed if share[r.url] == best]
            choice = Choice(least_loaded(leaders, self._turn()), CACHE_MATCH)
        else:
            over = self._leads(max(share.values()), lowest)
            reason = LOAD_BOUND if over else NO_CACHE_ADVANTAGE
            choice = Choice(least_loaded(allowed, self._turn()), reason)
        index.add(choice.replica.url, hashes)
        if self._events is not None:
            self._events.sent(choice.replica.url, blocks)
        return choice

    def _leads(self, best: float, lowest: float) -> bool:
        """Whether holding ``best`` of the prompt is worth a preference over ``lowest``."""
        return best > lowest and best - lowest >= self._min_share * (1 - lowest)

    def _share(self, url: str, hashes: Sequence[int], blocks: PromptBlocks | None) -> float:
        """The share of the prompt the replica holds, 0 to 1: in tokens by its events (a
        short prompt has few blocks, so a count of blocks would overstate a shared one), else
        in blocks of the prompts sent there."""
        view = self._events.live(url) if self._events is not None and blocks else None
        if view is not None and blocks is not None:
            return blocks.share(view.matched(blocks.hashes, time.monotonic()))
        return self._index.matched(url, hashes) / len(hashes) if hashes else 0.0
