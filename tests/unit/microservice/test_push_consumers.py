"""The consumers a pushed stream is made of (``microservice/relay/push.py``), as pure
functions: what a pause or a failure inside one batch leaves behind."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from microservice.errors import ModelServerFailed
from microservice.forms.opea import OpeaAnswer
from microservice.relay.client_events import EventWriter
from microservice.relay.push import DONE, PAUSED, RenderFailed, StopPush
from microservice.relay.upstream_events import EventSplitter
from tests.unit.microservice.standin_model_server import chunk


def pausing(written: list[bytes]) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        written.append(data)
        raise StopPush(PAUSED)  # the client's socket is full after this write

    return write


def test_a_pause_with_done_in_the_same_read_still_ends_the_stream() -> None:
    batches: list[list[bytes]] = []

    def take(batch: list[bytes]) -> None:
        batches.append(batch)
        raise StopPush(PAUSED)

    consume = EventSplitter().consumer(take)
    with pytest.raises(StopPush) as stopped:
        consume(b"data: " + chunk("a") + b"\n\ndata: [DONE]\n\n")
    assert stopped.value.reason == DONE and batches == [[chunk("a")]]


def test_a_failure_in_a_batch_is_not_lost_to_a_pause() -> None:
    written: list[bytes] = []
    consume = EventWriter(OpeaAnswer("q", True, None).event, keep_usage_chunk=False).consumer(
        pausing(written)
    )
    with pytest.raises(RenderFailed) as failed:
        consume([chunk("a"), b'{"error": "engine died"}'])
    assert written == [b"data: 'a'\n\n"]  # what came before the failure went out
    assert isinstance(failed.value.error, ModelServerFailed)
