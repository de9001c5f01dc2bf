"""A stream survives its replica (issue #26), against two real vLLM CPU servers: B is SIGKILLed
or SIGSTOPped while streams and requests are under way on it, and every client still gets one
whole answer (a stream continued on A, a stalled request sent again). A replica that is only
slow, or starved of CPU, keeps its requests and its place in the rotation.

Every request form (OpenAI chat, OPEA, completions) through both connectors; the microservices
run with the default settings unless a test names one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import Server
from tests.integration.microservice.conftest import CONNECTORS
from tests.integration.microservice.helpers import metric, microservice
from tests.integration.microservice.second_vllm import SecondVllm, served, warm_up
from tests.integration.microservice.survival_clients import (
    FORMS,
    LONG,
    RESUMED,
    SHORT,
    STALL_S,
    Answer,
    busy_loops,
    on_b,
    page,
    problems_with,
    request,
    until,
    wait_both_healthy,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair(vllm_server: Server, vllm_b: SecondVllm, tiny_model: Path) -> Iterator[dict[str, Server]]:
    """One microservice per connector in front of A and B, with the default settings."""
    warm_up(vllm_server.base_url, str(tiny_model))
    endpoints = f"{vllm_server.base_url},{vllm_b.base_url}"
    with contextlib.ExitStack() as stack:
        usvcs = {
            connector: stack.enter_context(
                microservice(f"survival-{connector}", endpoints, str(tiny_model),
                             LLM_CONNECTOR=connector)
            )
            for connector in CONNECTORS
        }  # fmt: skip
        for usvc in usvcs.values():
            wait_both_healthy(usvc)
        yield usvcs


def test_a_replica_that_is_only_slow_gets_no_duplicate(
    vllm_server: Server, vllm_b: SecondVllm, tiny_model: Path
) -> None:
    """A long non-streaming request sends no byte for many stall times (two choices of 400
    tokens with 20 logprobs a token take the tiny model a second or more); its replica answers
    its checks (every 0.1 s), so it is slow, not stalled: it runs once, on one replica."""
    endpoints = f"{vllm_server.base_url},{vllm_b.base_url}"
    stall_s = 0.3
    settings = {"LLM_STALL_S": str(stall_s), "LLM_PROBE_INTERVAL_S": "0.1"}
    with microservice("survival-slow", endpoints, str(tiny_model), **settings) as usvc:
        wait_both_healthy(usvc)
        before = served(vllm_server.base_url) + served(vllm_b.base_url)
        url, body = request("chat", "slow", LONG, stream=False)
        body |= {"n": 2, "temperature": 1.0, "logprobs": True, "top_logprobs": 20}
        started = time.monotonic()
        reply = httpx.post(usvc.base_url + url, json=body, timeout=120)
        took_s = time.monotonic() - started
        assert problems_with("slow", "chat", 2 * LONG, reply.status_code, reply.text) == []
        assert took_s > 3 * stall_s, f"{took_s:.1f} s: too quick to show a {stall_s} s stall time"
        text = page(usvc)
    assert metric(text, "llm_usvc_replica_stalls_total") == 0
    assert metric(text, "llm_usvc_replica_requests_total") == 1  # tries included
    # vLLM counts each of the n choices as a request of its own: 2 for this one request.
    assert served(vllm_server.base_url) + served(vllm_b.base_url) == before + 2


async def test_cpu_starvation_takes_no_answering_replica_out(
    vllm_server: Server, vllm_b: SecondVllm, tiny_model: Path
) -> None:
    """Busy loops starve both replicas of CPU, so their probes answer late (0.2 s time-out);
    they still answer requests, so neither ever leaves the rotation, and both keep serving."""
    endpoints = f"{vllm_server.base_url},{vllm_b.base_url}"
    unhealthy: list[str] = []
    problems: list[str] = []
    stop = asyncio.Event()
    with microservice(
        "survival-cpu", endpoints, str(tiny_model), LLM_PROBE_TIMEOUT_S="0.2"
    ) as usvc:  # fmt: skip
        wait_both_healthy(usvc)
        before = served(vllm_server.base_url), served(vllm_b.base_url)

        async def client_loop(client: httpx.AsyncClient, i: int) -> None:
            n = 0
            while not stop.is_set():
                form, n = FORMS[(i + n) % 3], n + 1
                url, body = request(form, f"cpu-{i}-{n}", SHORT, stream=i % 2 == 0)
                answer = Answer(f"{form} #{i}.{n}", form, SHORT)
                await answer.fetch(client, usvc.base_url + url, body)
                problems.extend(answer.problems())

        async def watch_health(client: httpx.AsyncClient) -> None:
            while not stop.is_set():
                health = (await client.get(usvc.base_url + "/v1/health_check")).json()
                unhealthy.extend(
                    f"{time.monotonic() - loaded_at:.1f} s in, {r['address']}: {r['reason']} "
                    f"({r['last_error']}), {r['in_flight']} in flight"
                    for r in health["replicas"]
                    if not r["healthy"]
                )
                await asyncio.sleep(0.25)

        loaded_at = time.monotonic()
        with busy_loops(4):
            async with httpx.AsyncClient(timeout=120) as client:
                tasks = [asyncio.create_task(client_loop(client, i)) for i in range(8)]
                tasks.append(asyncio.create_task(watch_health(client)))
                await asyncio.sleep(15)
                stop.set()
                await asyncio.gather(*tasks)
        grew = served(vllm_server.base_url) - before[0], served(vllm_b.base_url) - before[1]
    assert unhealthy == []
    assert problems == [], "\n".join(problems)
    assert min(grew) > 0, grew


async def test_a_frozen_replica_delays_no_request_past_the_stall_time(
    pair: dict[str, Server], vllm_b: SecondVllm
) -> None:
    """8 streaming and 8 non-streaming clients over both connectors; B is SIGSTOPped for 15 s
    while it holds some of their requests. Every request succeeds whole, and the freeze delays
    none by more than the stall time (5 s by default) and 2 s: what B held goes to A."""
    for usvc in pair.values():
        wait_both_healthy(usvc)
    usvcs = list(pair.items())
    answers: list[tuple[float, Answer]] = []  # with when each began
    frozen_at = 0.0
    stop = asyncio.Event()

    async def client_loop(client: httpx.AsyncClient, i: int, stream: bool) -> None:
        connector, usvc = usvcs[i % 2]
        n = 0
        while not stop.is_set():
            form, n = FORMS[(i + n) % 3], n + 1
            url, body = request(form, f"frozen-{i}-{stream}-{n}", SHORT, stream=stream)
            answer = Answer(f"{connector} {form} stream={stream} #{i}.{n}", form, SHORT)
            began = time.monotonic()
            await answer.fetch(client, usvc.base_url + url, body)
            answers.append((began, answer))

    async with httpx.AsyncClient(timeout=120) as client:
        tasks = [
            asyncio.create_task(client_loop(client, i, stream))
            for i in range(8)
            for stream in (True, False)
        ]
        try:
            await until(
                lambda: on_b(client, list(pair.values()), vllm_b),
                "each microservice with requests on B",
            )
            vllm_b.freeze()
            frozen_at = time.monotonic()
            try:
                await asyncio.sleep(15)
            finally:
                vllm_b.thaw()
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()

    problems = [p for _, answer in answers for p in answer.problems()]
    assert problems == [], "\n".join(problems)
    # Delayed by the freeze: from the freeze (or the request's start, if later) to its end.
    delays = [(began + a.took_s - max(began, frozen_at), began, a) for began, a in answers]
    slow = [
        f"{a.label} began {began - frozen_at:+.1f} s from the freeze, took {a.took_s:.1f} s"
        for delay, began, a in delays
        if delay > STALL_S + 2
    ]
    longest = max(delay for delay, _, _ in delays)
    print(f"frozen: {len(answers)} answers, the longest delayed {longest:.2f} s by the freeze")
    assert slow == [], "\n".join([f"{len(slow)} of {len(answers)} over {STALL_S + 2} s", *slow])
    stalls = {
        name: metric(page(usvc), "llm_usvc_replica_stalls_total", f'replica="{vllm_b.base_url}"')
        for name, usvc in pair.items()
    }
    assert all(stalls.values()), stalls


async def test_streams_survive_the_sigkill_of_their_replica(
    pair: dict[str, Server], vllm_b: SecondVllm, tiny_model: Path
) -> None:
    """12 long streams (each form, twice, through each connector), some of them on B; B is
    SIGKILLed mid-way. Each stream ends whole: [DONE], no error event, one id, one usage
    chunk counting all the tokens asked for. B restarted afterwards: later tests need it."""
    for usvc in pair.values():
        wait_both_healthy(usvc)
    answers: list[Answer] = []
    bodies: list[tuple[str, dict[str, Any]]] = []
    for connector, usvc in pair.items():
        for k in range(6):
            form = FORMS[k % 3]
            url, body = request(form, f"kill-{connector}-{k}", RESUMED, stream=True)
            answers.append(Answer(f"{connector} {form} #{k}", form, RESUMED))
            bodies.append((usvc.base_url + url, body))
    resumed_before = {
        name: metric(page(usvc), "llm_usvc_stream_resumes_total", 'outcome="resumed"')
        for name, usvc in pair.items()
    }

    async def all_under_way_and_some_on_b() -> bool:
        began = all(a.began.is_set() for a in answers)
        return began and await on_b(client, list(pair.values()), vllm_b)

    try:
        async with httpx.AsyncClient(timeout=120) as client:
            tasks = [
                asyncio.create_task(a.fetch(client, url, body))
                for a, (url, body) in zip(answers, bodies, strict=True)
            ]
            try:
                await until(all_under_way_and_some_on_b, "every stream begun, some on B")
                unfinished = [a.label for a, t in zip(answers, tasks, strict=True) if not t.done()]
                at_kill = {
                    a.label: sum(line.startswith("data: ") for line in a.lines) for a in answers
                }
                killed_at = time.monotonic()
                await asyncio.to_thread(vllm_b.kill)
                await asyncio.wait_for(asyncio.gather(*tasks), 120)
            finally:
                for task in tasks:
                    task.cancel()
    finally:
        assert vllm_b.process is not None
        if vllm_b.process.poll() is not None:
            await asyncio.to_thread(vllm_b.start)
            await asyncio.to_thread(warm_up, vllm_b.base_url, str(tiny_model))

    # OPEA-form streams may end early (no ignore_eos); the others must have been under way
    assert unfinished, at_kill  # (the resume counts below say that some were cut on B)
    problems = [p for a in answers for p in a.problems()]
    outcomes = {
        name: {
            outcome: metric(page(usvc), "llm_usvc_stream_resumes_total", f'outcome="{outcome}"')
            for outcome in ("resumed", "not_resumable", "no_replica")
        }
        for name, usvc in pair.items()
    }
    assert problems == [], "\n".join([str(outcomes), f"events at the kill: {at_kill}", *problems])
    assert all(outcomes[name]["resumed"] > resumed_before[name] for name in pair), outcomes
    # A resumed stream pauses at most 2 s: from the kill to its next event, or between two.
    pauses = {
        a.label: max(y - x for x, y in itertools.pairwise([killed_at, *after]))
        for a in answers
        if (after := [t for t in a.times if t > killed_at])
    }
    print(f"killed: the longest pause of a resumed stream {max(pauses.values()):.2f} s")
    assert max(pauses.values()) <= 2.0, pauses
