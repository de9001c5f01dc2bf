"""The waiting room's order: interactive before batch, weighted fair queuing between keys, and
who is refused when it is full. The queue alone first, then the app in front of a held
STAND-IN replica (not vLLM): the real-vLLM version is tests/integration/microservice/
test_tenancy.py."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

import httpx

from microservice.routing.fair_queue import FairQueue, Place
from microservice.upstream.model_call import Tenant
from tests.unit.microservice.standin_model_server import (
    StandinModelServer,
    completion,
    microservice,
)

FLOOD, STEADY = Tenant("flood"), Tenant("steady")
BATCH = Tenant("jobs", priority="batch")


def queued(queue: FairQueue, *tenants: Tenant) -> list[Place]:
    places = []
    for tenant in tenants:
        place = queue.place(tenant)
        queue.join(place)
        places.append(place)
    return places


def served(queue: FairQueue) -> list[str]:
    names = []
    while (place := queue.next_up()) is not None:
        names.append(f"{place.tenant.name}")
    return names


def test_a_flooding_key_waits_behind_itself() -> None:
    queue = FairQueue()
    queued(queue, *[FLOOD] * 10)
    queued(queue, STEADY)
    order = served(queue)
    assert order.index("steady") <= 1, order  # after at most one of the flood's


def test_keys_share_by_weight_while_both_wait() -> None:
    queue, heavy, light = FairQueue(), Tenant("heavy", weight=3), Tenant("light", weight=1)
    queued(queue, *[heavy] * 30, *[light] * 30)
    first = served(queue)[:20]
    assert collections.Counter(first) == {"heavy": 15, "light": 5}


def test_batch_is_served_only_when_no_interactive_request_waits() -> None:
    queue = FairQueue()
    queued(queue, BATCH, BATCH, FLOOD, STEADY, BATCH, FLOOD)
    assert served(queue) == ["flood", "steady", "flood", "jobs", "jobs", "jobs"]


def test_the_last_in_line_is_the_newest_batch_request_then_the_floods_newest() -> None:
    queue = FairQueue()
    flood = queued(queue, *[FLOOD] * 3)
    batch = queued(queue, BATCH, BATCH)
    assert queue.last_in_line() is batch[1]
    for place in batch:
        queue.leave(place)
    assert queue.last_in_line() is flood[2]
    newcomer = queue.place(STEADY)
    assert newcomer.ahead_of(flood[2]) and not queue.place(FLOOD).ahead_of(flood[2])


def test_a_woken_request_that_found_no_slot_goes_back_to_its_place() -> None:
    queue = FairQueue()
    queued(queue, FLOOD, FLOOD, STEADY)
    first = queue.next_up()
    assert first is not None
    queue.join(first)  # back in line: still first
    assert queue.next_up() is first


class Held:
    """A stand-in replica that answers each request only when the test lets one go."""

    def __init__(self) -> None:
        self.go = asyncio.Semaphore(0)
        self.standin = StandinModelServer(chat=self.answer)

    async def answer(self, body: dict[str, Any]) -> httpx.Response:
        await self.go.acquire()
        return httpx.Response(200, json=completion("ok", 1))


def keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(
        "keys:\n"
        "  - {name: flood, key: flood-key-0001}\n"
        "  - {name: steady, key: steady-key-0001}\n"
        "  - {name: jobs, key: jobs-key-0001, priority: batch}\n"
    )
    return path


def as_key(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
ONE_SLOT = {"llm_max_inflight_per_replica": 1, "llm_queue_size": 6, "llm_queue_timeout_s": 30}


async def test_the_app_serves_interactive_first_and_refuses_batch_first(tmp_path: Path) -> None:
    held, done = Held(), []

    async def ask(key: str, **headers: str) -> httpx.Response:
        reply = await client.post("/v1/chat/completions", json=CHAT, headers=as_key(key, **headers))
        done.append(key)
        return reply

    async with microservice(held.standin, llm_api_keys_file=keys(tmp_path), **ONE_SLOT) as client:
        replies = [asyncio.create_task(ask("flood-key-0001"))]  # takes the one slot
        await asyncio.sleep(0.05)
        replies += [asyncio.create_task(ask("jobs-key-0001")) for _ in range(3)]
        replies += [asyncio.create_task(ask("flood-key-0001", **{"X-LLM-Priority": "batch"}))]
        await asyncio.sleep(0.05)
        replies += [asyncio.create_task(ask("flood-key-0001")) for _ in range(2)]
        await asyncio.sleep(0.05)  # the room is full (6): the newest batch request gives way
        replies += [asyncio.create_task(ask("steady-key-0001"))]
        await asyncio.sleep(0.05)
        raised = await client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers=as_key("jobs-key-0001", **{"X-LLM-Priority": "interactive"}),
        )
        for _ in range(8):
            held.go.release()
        answers = await asyncio.gather(*replies)
        metrics = (await client.get("/metrics")).text
    codes = [r.status_code for r in answers]
    assert codes.count(429) == 1 and answers[3].status_code == 429, codes  # the newest batch
    shed = answers[3].json()["error"]
    assert shed["code"] == "queue_full" and "batch" in shed["message"]
    # after the first: the two interactive flood requests and the steady one, then batch
    assert sorted(done[1:4]) == ["flood-key-0001", "flood-key-0001", "steady-key-0001"], done
    assert raised.status_code == 403 and raised.json()["error"]["code"] == "priority_not_allowed"
    assert 'llm_usvc_queue_wait_seconds_count{class="batch",key="jobs"} 2.0' in metrics


async def test_a_priority_header_that_names_no_class_is_refused(tmp_path: Path) -> None:
    async with microservice(Held().standin, llm_api_keys_file=keys(tmp_path)) as client:
        reply = await client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers=as_key("flood-key-0001", **{"X-LLM-Priority": "urgent"}),
        )
    assert reply.status_code == 422 and reply.json()["error"]["param"] == "X-LLM-Priority"


async def test_the_class_goes_to_vllm_only_with_its_priority_scheduler(tmp_path: Path) -> None:
    bodies: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> httpx.Response:
        bodies.append(body)
        return httpx.Response(200, json=completion("ok", 1))

    headers = as_key("jobs-key-0001")
    for on in (False, True):
        async with microservice(
            StandinModelServer(chat=answer), llm_api_keys_file=keys(tmp_path),
            llm_priority_scheduling=on,
        ) as client:  # fmt: skip
            sent = {**CHAT, "priority": -5}  # a client's own priority never jumps the line
            assert (
                await client.post("/v1/chat/completions", json=sent, headers=headers)
            ).is_success
    assert [b["priority"] for b in bodies] == [-5, 1]
