"""vLLM's prefix-cache block hashes recomputed outside vLLM, as a router would: what the KV-event
tests compare vLLM's published hashes with."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

# vLLM 0.32 `v1/core/kv_cache_utils.py`: the first block's parent is the digest of
# PYTHONHASHSEED (which VLLM_KV_EVENTS_PORT sets to 0), or when unset of this seed.
DEFAULT_SEED = "vllm-none-hash"


def sha256_cbor_hashes(token_ids: Sequence[int], block_size: int, seed: str) -> list[int]:
    """The hashes of the full blocks of ``token_ids`` under `--prefix-caching-hash-algo
    sha256_cbor`: each block's SHA-256 over canonical CBOR of (the parent's digest, its tokens,
    no extra keys), chained from the digest of ``seed``; published as each digest's last 8
    bytes, an unsigned big-endian int (VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES, on by default)."""
    cbor2 = pytest.importorskip("cbor2")

    def digest(value: object) -> bytes:
        return hashlib.sha256(cbor2.dumps(value, canonical=True)).digest()

    parent, hashes = digest(seed), []
    for start in range(0, len(token_ids) - block_size + 1, block_size):
        parent = digest((parent, tuple(token_ids[start : start + block_size]), None))
        hashes.append(int.from_bytes(parent[-8:], "big"))
    return hashes
