"""vLLM's SSE body split into its chunks, as it arrives in pieces: the ``data:`` payloads of the
complete events, the incomplete rest kept for the next piece, and whether ``[DONE]`` came.

A Responses API stream names each event's type on an ``event:`` line before its data (its type
is in the data too) and ends with its ``response.completed`` (or ``.incomplete``, ``.failed``)
event instead of ``[DONE]``, which then counts as the ``[DONE]`` of the stream."""

from __future__ import annotations

from microservice.relay.push import DONE as PUSHED_TO_DONE
from microservice.relay.push import BatchConsumer, Consumer, StopPush

DONE = b"[DONE]"
# The last events of a Responses API stream (vLLM writes ``type`` last in each).
RESPONSE_ENDS = (
    b'"type":"response.completed"}',
    b'"type":"response.incomplete"}',
    b'"type":"response.failed"}',
)


def split_events(buffer: bytes) -> tuple[list[bytes], bytes, bool]:
    """The ``data:`` payloads of the complete SSE events in ``buffer``, the incomplete rest,
    and whether ``[DONE]`` was among them (events after it are ignored)."""
    events = buffer.split(b"\n\n")
    rest = events.pop()
    batch: list[bytes] = []
    for event in events:
        if not event.startswith(b"data: "):
            at = event.find(b"\ndata: ")  # "event: <type>" first (the Responses API)
            if at < 0:
                continue  # comments and keep-alives
            event = event[at + 1 :]
        if event[6:] == DONE:
            return batch, b"", True
        batch.append(event[6:])
    return batch, rest, False


class EventSplitter:
    """``split_events`` over a stream read in pieces: the incomplete rest is kept for the next."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> tuple[list[bytes], bool]:
        pending = self._pending
        batch, self._pending, done = split_events(pending + data if pending else data)
        if batch and not done and batch[-1].endswith(RESPONSE_ENDS):
            done = True  # a Responses API stream's end: nothing follows it
        return batch, done

    def consumer(self, batches: BatchConsumer) -> Consumer:
        """The pushed stream's bytes to ``batches``; ``StopPush(DONE)`` at [DONE] (even if
        ``batches`` asked to pause with that write: the stream is whole)."""
        feed = self.feed

        def consume(data: bytes) -> None:
            batch, done = feed(data)
            if batch:
                try:
                    batches(batch)
                except StopPush:
                    if not done:
                        raise
            if done:
                raise StopPush(PUSHED_TO_DONE)

        return consume
