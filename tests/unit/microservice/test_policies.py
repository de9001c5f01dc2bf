"""The routing policies and the load scrape as pure functions: no socket, no clock."""

from __future__ import annotations

import pytest

from microservice.routing import policies
from microservice.routing.policies import PREFIX_CHARS, prompt_prefix
from microservice.routing.replica import Load, Replica, parse_engine


def replicas(n: int) -> list[Replica]:
    return [Replica(f"http://10.0.0.{i}:8000", healthy=True) for i in range(1, n + 1)]


def test_least_loaded_weighs_ours_the_engine_queue_and_the_kv_cache() -> None:
    a, b, c = replicas(3)
    a.in_flight = 3
    b.load = Load(running=0, waiting=2, kv_cache=0.0)  # 4
    c.load = Load(running=9, waiting=0, kv_cache=0.5)  # 2: running alone costs nothing
    assert policies.least_loaded([a, b, c]) is c
    c.in_flight = 2
    assert policies.least_loaded([a, b, c]) is a


def test_least_loaded_spreads_an_idle_deployment() -> None:
    pool = replicas(3)
    assert [policies.least_loaded(pool, start) for start in range(6)] == pool + pool


def test_a_probe_that_saw_one_request_running_does_not_stop_the_spread() -> None:
    """The issue's 70 of 72 on one replica: its last probe saw one request's KV blocks on the
    other (0.0006 of the cache), and that broke every tie."""
    pool = replicas(2)
    pool[0].load = Load(running=1, kv_cache=0.0006)
    assert [policies.least_loaded(pool, start) for start in range(4)] == pool + pool
    pool[0].in_flight = 1  # a real request in flight is not a tie
    assert [policies.least_loaded(pool, start) for start in range(4)] == [pool[1]] * 4


def test_round_robin_turns() -> None:
    pool = replicas(2)
    assert [policies.round_robin(pool, i).url for i in range(4)] == [r.url for r in pool * 2]


def test_a_session_stays_on_its_replica_and_few_move_when_one_joins() -> None:
    four, five = replicas(4), replicas(5)
    keys = [f"session-{i}" for i in range(2000)]
    before = {k: policies.by_key(k, four).url for k in keys}
    assert all(policies.by_key(k, four).url == before[k] for k in keys)  # stable
    after = {k: policies.by_key(k, five).url for k in keys}
    moved = [k for k in keys if after[k] != before[k]]
    assert all(after[k] == five[-1].url for k in moved)  # only to the newcomer
    assert 0.1 < len(moved) / len(keys) < 0.3  # about 1/5
    shares = {r.url: list(before.values()).count(r.url) / len(keys) for r in four}
    assert all(0.18 < share < 0.32 for share in shares.values()), shares


def test_a_replica_that_leaves_and_returns_gets_its_sessions_back() -> None:
    pool = replicas(3)
    keys = [f"user-{i}" for i in range(300)]
    home = {k: policies.by_key(k, pool).url for k in keys}
    without = pool[:1] + pool[2:]
    assert all(policies.by_key(k, without).url == home[k] for k in keys if home[k] != pool[1].url)
    assert all(policies.by_key(k, pool).url == home[k] for k in keys)


def test_a_hot_prefix_spills_over_within_the_load_bound() -> None:
    pool = replicas(3)
    home = policies.by_key_bounded("hot", pool)
    assert home is policies.ranked("hot", pool)[0]
    home.in_flight = 3  # average with this one 4 / 3, bound 4 / 3 + 2: a fourth is over it
    spill = policies.by_key_bounded("hot", pool)
    assert spill is policies.ranked("hot", pool)[1]
    for r in pool:
        r.in_flight = 4
    assert policies.by_key_bounded("hot", pool) is home  # everyone equally busy: home again


VLLM_METRICS = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 1.0
vllm:num_requests_waiting{engine="0",model_name="m"} 2.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 7.0
"""


def test_load_is_read_from_vllms_gauges_summed_over_engines() -> None:
    assert parse_engine(VLLM_METRICS)[0] == Load(running=4.0, waiting=2.0, kv_cache=0.25)


@pytest.mark.parametrize(
    ("page", "load"),
    [
        ('vllm:gpu_cache_usage_perc{model_name="m"} 0.5\n', Load(kv_cache=0.5)),  # older vLLM
        ('vllm:num_requests_waiting{model_name="m"} NaN\n', Load()),
        ("", Load()),
    ],
)
def test_older_names_and_missing_gauges(page: str, load: Load) -> None:
    assert parse_engine(page)[0] == load


def test_prompt_prefix_is_the_leading_text_of_the_conversation() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image"}]},
        ]
    }
    assert prompt_prefix(body) == "system:You are terse.\nuser:Hi\n"
    long = {"messages": [{"role": "user", "content": "x" * 1000}]}
    assert len(prompt_prefix(long)) == PREFIX_CHARS
    assert prompt_prefix({"prompt": "a completion"}) == "a completion"
    assert prompt_prefix({"max_tokens": 1}) == ""
