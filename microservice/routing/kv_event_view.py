"""One replica's prefix cache as its own KV-cache events tell it (precise ``cache_aware``):
the vLLM block hashes it stored and has not evicted since.

A block routed there is also *expected* for a while (``EXPECTED_S``): vLLM publishes a block
once its prefill is done, seconds later on a CPU, and a follow-up sent meanwhile belongs on the
same replica. An expected block that the events never confirm is forgotten after that time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from microservice.routing.kv_events import AllCleared, BlocksRemoved, BlocksStored, KvEvent

# How long a block sent to a replica counts as held before its event arrives.
EXPECTED_S = 30.0
# vLLM's tier names for the engine's own KV cache; blocks offloaded elsewhere are not counted.
ENGINE_TIERS = (None, "GPU")
_CONFIRMED = 0.0


class KvEventView:
    """The blocks one replica holds; ``live`` once its events are read, until they are lost."""

    __slots__ = ("_held", "block_size", "capacity", "live")

    def __init__(self, capacity: int) -> None:
        self._held: dict[int | bytes, float] = {}  # hash: 0 (stored), or when expecting ends
        self.capacity = capacity
        self.block_size: int | None = None
        self.live = False

    def __len__(self) -> int:
        return len(self._held)

    def apply(self, events: Iterable[KvEvent]) -> None:
        held = self._held
        for event in events:
            if isinstance(event, BlocksStored):
                if event.medium in ENGINE_TIERS:
                    self.block_size = event.block_size
                    held.update(dict.fromkeys(event.hashes, _CONFIRMED))
            elif isinstance(event, BlocksRemoved):
                if event.medium in ENGINE_TIERS:
                    for block in event.hashes:
                        held.pop(block, None)
            elif isinstance(event, AllCleared):
                held.clear()
        if len(held) > self.capacity:  # removals were missed: what is held is unknown
            held.clear()

    def expect(self, hashes: Sequence[int], until: float) -> None:
        """These blocks were just sent here: held until ``until`` unless an event says so."""
        held = self._held
        for block in hashes:
            if held.get(block, until) != _CONFIRMED:
                held[block] = until
        if len(held) > self.capacity:
            self.forget_expired(until - EXPECTED_S)

    def forget_expired(self, now: float) -> None:
        self._held = {b: t for b, t in self._held.items() if t == _CONFIRMED or t > now}

    def matched(self, hashes: Sequence[int], now: float) -> int:
        """How many of the leading blocks the replica holds (or is expected to)."""
        held = self._held
        count = 0
        for block in hashes:
            until = held.get(block)
            if until is None or (until != _CONFIRMED and until <= now):
                break
            count += 1
        return count

    def clear(self) -> None:
        """Events were lost, or the replica restarted: start again from what comes next."""
        self._held.clear()
