"""Which prompt blocks each replica holds in its prefix cache, as far as this process can tell
from the prompts it sent there (the approximate index of ``cache_aware`` routing).

A prompt is cut into blocks of ``block_chars`` characters, and each block's hash chains the
hash of the block before it, as vLLM chains its KV blocks' hashes: a block hash names the whole
prefix up to its end, so the longest match is the run of leading hashes a replica holds. Only
whole blocks count, as in vLLM.

Each replica's entries are an LRU, bounded by the smaller of ``max_blocks`` and what the
replica's own KV cache can hold (told by its ``vllm:cache_config_info``): a replica forgets
its oldest prefixes first, and so does its entry here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

# Characters per token of English text in a BPE vocabulary: turns the replica's KV capacity
# (tokens) into characters, the unit of this index.
CHARS_PER_TOKEN = 4


def chained_hashes(text: str, block_chars: int) -> list[int]:
    """The hash of every whole block of ``text``, each chained to the one before. Python's
    ``hash`` of a (int, str) pair is fast and, within one process, stable: the index never
    leaves the process."""
    hashes: list[int] = []
    previous = 0
    for start in range(0, len(text) - block_chars + 1, block_chars):
        previous = hash((previous, text[start : start + block_chars]))
        hashes.append(previous)
    return hashes


class ReplicaBlocks:
    """One replica's block hashes, oldest use first."""

    __slots__ = ("_blocks", "capacity")

    def __init__(self, capacity: int) -> None:
        self._blocks: OrderedDict[int, None] = OrderedDict()
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self._blocks)

    def matched(self, hashes: Sequence[int]) -> int:
        """How many of the leading blocks this replica holds."""
        count = 0
        for block in hashes:
            if block not in self._blocks:
                break
            count += 1
        return count

    def add(self, hashes: Sequence[int]) -> None:
        blocks = self._blocks
        for block in hashes:
            blocks[block] = None
            blocks.move_to_end(block)
        while len(blocks) > self.capacity:
            blocks.popitem(last=False)


class PrefixIndex:
    """Every replica's blocks, by replica URL."""

    def __init__(self, block_chars: int, max_blocks: int) -> None:
        self.block_chars = block_chars
        self._max_blocks = max_blocks
        self._replicas: dict[str, ReplicaBlocks] = {}

    def hashes(self, text: str) -> list[int]:
        return chained_hashes(text, self.block_chars)

    def matched(self, url: str, hashes: Sequence[int]) -> int:
        blocks = self._replicas.get(url)
        return blocks.matched(hashes) if blocks is not None else 0

    def add(self, url: str, hashes: Sequence[int]) -> None:
        """The replica was sent this prompt: it will hold these blocks."""
        blocks = self._replicas.get(url)
        if blocks is None:
            blocks = self._replicas[url] = ReplicaBlocks(self._max_blocks)
        blocks.add(hashes)

    def size_to(self, url: str, kv_tokens: int | None) -> None:
        """Bound a replica's entries by its KV cache (tokens, when it tells us)."""
        capacity = self._max_blocks
        if kv_tokens:
            capacity = min(capacity, max(1, kv_tokens * CHARS_PER_TOKEN // self.block_chars))
        blocks = self._replicas.get(url)
        if blocks is None:
            blocks = self._replicas[url] = ReplicaBlocks(capacity)
        blocks.capacity = capacity
        blocks.add(())  # trims to the new capacity

    def clear(self, url: str) -> None:
        """The replica restarted with an empty cache."""
        blocks = self._replicas.get(url)
        if blocks is not None:
            self._replicas[url] = ReplicaBlocks(blocks.capacity)

    def remove(self, url: str) -> None:
        """The replica left."""
        self._replicas.pop(url, None)

    def blocks(self, url: str) -> int:
        blocks = self._replicas.get(url)
        return len(blocks) if blocks is not None else 0
