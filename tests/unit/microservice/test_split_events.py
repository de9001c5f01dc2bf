"""The generic connector's SSE splitting: whole events out, the partial rest kept, [DONE] ends."""

from __future__ import annotations

from microservice.relay.upstream_events import split_events


def test_complete_events_out_partial_rest_kept() -> None:
    batch, rest, done = split_events(b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: {"c"')
    assert batch == [b'{"a":1}', b'{"b":2}'] and rest == b'data: {"c"' and not done


def test_comments_and_keepalives_are_skipped() -> None:
    batch, rest, done = split_events(b': ping\n\ndata: {"a":1}\n\nevent: x\n\n')
    assert batch == [b'{"a":1}'] and rest == b"" and not done


def test_done_ends_the_stream_and_drops_what_follows() -> None:
    batch, rest, done = split_events(b'data: {"a":1}\n\ndata: [DONE]\n\ndata: {"late":1}\n\n')
    assert batch == [b'{"a":1}'] and rest == b"" and done


def test_an_event_split_across_reads_is_joined() -> None:
    first, rest, _ = split_events(b'data: {"a"')
    second, rest, done = split_events(rest + b":1}\n\n")
    assert first == [] and second == [b'{"a":1}'] and rest == b"" and not done
