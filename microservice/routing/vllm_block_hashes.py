"""vLLM's prefix-cache block hashes, computed here from a prompt's token ids, so that a prompt
can be looked up in what a replica's KV-cache events say it holds (precise ``cache_aware``).

vLLM 0.32 with ``--prefix-caching-hash-algo sha256_cbor`` hashes each full block of
``block_size`` tokens as SHA-256 over canonical CBOR of ``(parent digest, token ids, extra
keys)``, chained from the digest of ``PYTHONHASHSEED`` (``VLLM_KV_EVENTS_PORT`` renders it as
``0``). Its events publish each digest's last 8 bytes as an unsigned big-endian int. Blocks
with extra keys (a LoRA adapter, images, a ``cache_salt``) hash differently and never match
here: such prompts are routed as if nothing were cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import cbor2

SEED = "0"  # the PYTHONHASHSEED that VLLM_KV_EVENTS_PORT renders


@dataclass(frozen=True, slots=True)
class PromptBlocks:
    """A prompt in vLLM's terms: its full blocks' hashes, each of ``block_size`` tokens, and
    its length in tokens (the last, partial block is never cached)."""

    hashes: Sequence[int]
    block_size: int
    tokens: int

    def share(self, blocks: int) -> float:
        """The share of the prompt's tokens in its first ``blocks`` blocks."""
        return blocks * self.block_size / self.tokens if self.tokens else 0.0


def _digest(value: object) -> bytes:
    return hashlib.sha256(cbor2.dumps(value, canonical=True)).digest()


def block_hashes(token_ids: Sequence[int], block_size: int, seed: str = SEED) -> list[int]:
    """The published hash of every full block of the prompt, in order."""
    parent, hashes = _digest(seed), []
    for start in range(0, len(token_ids) - block_size + 1, block_size):
        parent = _digest((parent, tuple(token_ids[start : start + block_size]), None))
        hashes.append(int.from_bytes(parent[-8:], "big"))
    return hashes
