"""Replica discovery against a resolver STAND-IN whose answer changes on demand (no DNS)."""

from __future__ import annotations

import pytest

from microservice.routing.discovery import Discovery


class ResolverStandin:
    """Answers from ``answers``; a name missing from it fails as an unknown name does."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"cannot resolve {host}")
        return self.answers[host]


async def test_one_address_keeps_the_url_several_become_one_replica_each() -> None:
    resolver = ResolverStandin({"vllm": ["10.0.0.2", "10.0.0.1"], "single": ["10.0.0.9"]})
    discovery = Discovery(["http://vllm:8000/base", "http://single:8001"], resolver)
    assert await discovery.replicas() == [
        "http://10.0.0.1:8000/base",
        "http://10.0.0.2:8000/base",
        "http://single:8001",
    ]


async def test_replicas_come_and_go_with_the_answer() -> None:
    resolver = ResolverStandin({"vllm-headless": ["10.0.0.1", "10.0.0.2"]})
    discovery = Discovery(["http://vllm-headless:8000"], resolver)
    assert len(await discovery.replicas()) == 2
    resolver.answers["vllm-headless"] = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert await discovery.replicas() == [f"http://10.0.0.{i}:8000" for i in (1, 2, 3)]
    resolver.answers["vllm-headless"] = ["10.0.0.3", "10.0.0.4"]
    assert await discovery.replicas() == ["http://10.0.0.3:8000", "http://10.0.0.4:8000"]


async def test_a_failed_lookup_keeps_the_last_answer() -> None:
    resolver = ResolverStandin({"vllm": ["10.0.0.1", "10.0.0.2"]})
    discovery = Discovery(["http://vllm:8000"], resolver)
    first = await discovery.replicas()
    del resolver.answers["vllm"]
    assert await discovery.replicas() == first


async def test_before_any_answer_a_name_stands_for_itself() -> None:
    discovery = Discovery(["http://not-yet:8000"], ResolverStandin({}))
    assert await discovery.replicas() == ["http://not-yet:8000"]


@pytest.mark.parametrize(
    ("endpoint", "addresses", "expected"),
    [
        ("http://127.0.0.1:8008", [], ["http://127.0.0.1:8008"]),  # an address: never looked up
        (
            "http://v6:8000",
            ["fd00::2", "fd00::1"],
            ["http://[fd00::1]:8000", "http://[fd00::2]:8000"],
        ),
        ("https://vllm", ["10.0.0.1", "10.0.0.2"], ["https://10.0.0.1", "https://10.0.0.2"]),
    ],
)
async def test_addresses_ports_and_schemes(
    endpoint: str, addresses: list[str], expected: list[str]
) -> None:
    resolver = ResolverStandin({"v6": addresses, "vllm": addresses})
    assert await Discovery([endpoint], resolver).replicas() == expected
    if endpoint.startswith("http://127"):
        assert resolver.asked == []
