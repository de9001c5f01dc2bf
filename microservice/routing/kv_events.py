"""vLLM's KV-cache events from one replica: which prompt blocks it stored, evicted or cleared.

A replica started with ``VLLM_KV_EVENTS_PORT`` publishes them on a ZMQ PUB socket, and its
``GET /kv_event_sources`` names that socket per data-parallel rank (``endpoints``). Each message
is three frames: the topic, an 8-byte big-endian sequence number, and a msgpack batch
``[ts, [event, ...], dp_rank]`` whose events are maps tagged by ``type`` (vLLM
``distributed/kv_events.py``). Use::

    reader = KvEventsReader("tcp://10.0.0.5:5557")
    async for item in reader.read():      # runs until cancelled; reconnects by itself
        if isinstance(item, Gap):
            index.forget(replica)         # events were lost: the index is no longer true
        else:
            index.apply(replica, item.events)

Block hashes are vLLM's external hashes: by default (``VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=1``)
the last 8 bytes, as an unsigned int, of ``sha256(cbor(parent digest, token ids, extra keys))``,
the hash chained over the whole prefix. A block holds ``block_size`` tokens, decoded ones too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec
import zmq
import zmq.asyncio

KV_EVENT_SOURCES = "/kv_event_sources"
BlockHash = int | bytes


@dataclass(frozen=True, slots=True)
class BlocksStored:
    """Full blocks now cached, in prefix order; ``parent``: the hash of the block before the
    first (None: they start the prompt); ``token_ids``: theirs, ``block_size`` each;
    ``medium``: vLLM's tier (``GPU`` is the device's cache, on CPU too)."""

    hashes: tuple[BlockHash, ...]
    parent: BlockHash | None
    token_ids: tuple[int, ...]
    block_size: int
    medium: str | None
    lora_name: str | None


@dataclass(frozen=True, slots=True)
class BlocksRemoved:
    hashes: tuple[BlockHash, ...]
    medium: str | None


@dataclass(frozen=True, slots=True)
class AllCleared:
    """The replica's prefix cache was reset (``POST /reset_prefix_cache``)."""


KvEvent = BlocksStored | BlocksRemoved | AllCleared


@dataclass(frozen=True, slots=True)
class EventBatch:
    seq: int
    ts: float
    events: tuple[KvEvent, ...]
    dp_rank: int | None


@dataclass(frozen=True, slots=True)
class Gap:
    """Events were lost (a skipped or restarted sequence, a dropped connection, a batch that
    cannot be read): what was learned from this replica before may be wrong."""

    reason: str
    expected: int | None = None
    received: int | None = None


class KvEventsError(ValueError):
    """A message that is not a vLLM KV-event batch."""


# vLLM's wire structs; fields we do not use are skipped, fields vLLM adds later are ignored.
class _Stored(msgspec.Struct, tag="BlockStored"):
    block_hashes: list[int | bytes]
    parent_block_hash: int | bytes | None
    token_ids: list[int]
    block_size: int
    medium: str | None = None
    lora_name: str | None = None


class _Removed(msgspec.Struct, tag="BlockRemoved"):
    block_hashes: list[int | bytes]
    medium: str | None = None


class _Cleared(msgspec.Struct, tag="AllBlocksCleared"):
    pass


class _Batch(msgspec.Struct, array_like=True):
    ts: float
    events: list[_Stored | _Removed | _Cleared]
    data_parallel_rank: int | None = None


_DECODER = msgspec.msgpack.Decoder(_Batch)


def _event(wire: _Stored | _Removed | _Cleared) -> KvEvent:
    if isinstance(wire, _Stored):
        return BlocksStored(
            tuple(wire.block_hashes), wire.parent_block_hash, tuple(wire.token_ids),
            wire.block_size, wire.medium, wire.lora_name,
        )  # fmt: skip
    if isinstance(wire, _Removed):
        return BlocksRemoved(tuple(wire.block_hashes), wire.medium)
    return AllCleared()


def decode_batch(seq: bytes, payload: bytes) -> EventBatch:
    """One message's sequence and batch frames; raises KvEventsError when they are not."""
    if len(seq) != 8:
        raise KvEventsError(f"sequence frame of {len(seq)} bytes, not 8")
    try:
        batch = _DECODER.decode(payload)
    except msgspec.DecodeError as error:
        raise KvEventsError(f"not a KV-event batch: {error}") from None
    events = tuple(_event(wire) for wire in batch.events)
    return EventBatch(int.from_bytes(seq, "big"), batch.ts, events, batch.data_parallel_rank)


def sequence_gap(expected: int | None, seq: int) -> Gap | None:
    """The gap that receiving ``seq`` reveals when ``expected`` was next (None: no batch yet)."""
    if expected is None or seq == expected:
        return None
    reason = "batches were lost" if seq > expected else "the publisher restarted"
    return Gap(reason, expected, seq)


def endpoints(replica_url: str, sources: Mapping[str, Any]) -> list[str]:
    """Where to subscribe, from a replica's ``/kv_event_sources`` answer: each rank's ZMQ
    endpoint, a wildcard host (bound on every interface) replaced by the replica's host."""
    host = urlsplit(replica_url).hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    found = []
    for _rank, config in sorted(sources.items(), key=lambda item: int(item[0])):
        endpoint = str(config.get("endpoint") or "")
        if not config.get("enable_kv_cache_events") or config.get("publisher") != "zmq":
            continue
        scheme, _, address = endpoint.partition("://")
        bound_host, _, port = address.rpartition(":")
        if scheme == "tcp" and bound_host in ("*", "0.0.0.0", "[::]", "::"):
            endpoint = f"tcp://{host}:{port}"
        found.append(endpoint)
    return found


class KvEventsReader:
    """A SUB client of one publisher endpoint. ZMQ reconnects by itself after
    ``reconnect_s``; a dropped connection is reported as a Gap, since what was published
    meanwhile is lost (vLLM's replay socket is not opened by our setting)."""

    def __init__(
        self,
        endpoint: str,
        *,
        topic: str = "",
        reconnect_s: float = 0.5,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._topic = topic.encode()
        self._reconnect_ms = max(1, int(reconnect_s * 1000))
        self._context = context

    async def read(self) -> AsyncGenerator[EventBatch | Gap, None]:
        """Batches in order, and a Gap before the first batch that follows lost ones."""
        context = self._context or zmq.asyncio.Context.instance()
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RECONNECT_IVL, self._reconnect_ms)
        # No back-off: what a restarted replica publishes before we are back is lost.
        sub.setsockopt(zmq.RECONNECT_IVL_MAX, self._reconnect_ms)
        sub.setsockopt(zmq.SUBSCRIBE, self._topic)
        monitor = sub.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        poller = zmq.asyncio.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        sub.connect(self.endpoint)
        expected: int | None = None
        try:
            while True:
                ready = dict(await poller.poll())
                if monitor in ready:
                    await monitor.recv_multipart()  # only EVENT_DISCONNECTED is asked for
                    if expected is not None:
                        yield Gap("the connection dropped", expected)
                    expected = None
                if sub not in ready:
                    continue
                frames = await sub.recv_multipart()
                try:
                    if len(frames) != 3:
                        raise KvEventsError(f"a message of {len(frames)} frames, not 3")
                    batch = decode_batch(frames[1], frames[2])
                except KvEventsError as error:
                    expected = None
                    yield Gap(str(error))
                    continue
                gap = sequence_gap(expected, batch.seq)
                if gap is not None:
                    yield gap
                expected = batch.seq + 1
                yield batch
        finally:
            sub.disable_monitor()
            monitor.close(linger=0)
            sub.close(linger=0)
