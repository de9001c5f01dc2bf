"""vllm.kvEventsPort: off by default; set, every vLLM pod publishes its KV-cache events on that
port (VLLM_KV_EVENTS_PORT), which its container, the headless Service and the NetworkPolicy
open to the microservice; the HTTP port is refused for it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helm.chart import Helm, container_env, one

ON = {"vllm.kvEventsPort": "5557", "networkPolicy.enabled": "true"}


def ports(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    """The vLLM container's env and port numbers by name, and the policy's ports."""
    pod = one(objects, "Deployment", "vllm")["spec"]["template"]["spec"]
    server = pod["containers"][0]
    named = {p["name"]: p["containerPort"] for p in server["ports"]}
    policy = one(objects, "NetworkPolicy", "vllm")["spec"]["ingress"][0]["ports"]
    return container_env(server, objects), named, [p["port"] for p in policy]


def test_off_by_default(helm: Helm) -> None:
    objects = helm.render(sets={"networkPolicy.enabled": "true"})
    env, named, policy = ports(objects)
    assert "VLLM_KV_EVENTS_PORT" not in env
    assert list(named) == ["http"] and policy == ["http"]
    assert [p["name"] for p in one(objects, "Service", "vllm")["spec"]["ports"]] == ["http"]


def test_a_port_is_published_by_every_pod_and_open_to_the_microservice(helm: Helm) -> None:
    objects = helm.render(sets=ON)
    env, named, policy = ports(objects)
    assert env["VLLM_KV_EVENTS_PORT"] == "5557"
    assert named == {"http": 8008, "kv-events": 5557}
    assert policy == ["http", "kv-events"]
    service = one(objects, "Service", "vllm")["spec"]["ports"]
    assert {"name": "kv-events", "port": 5557, "targetPort": "kv-events", "protocol": "TCP"} in (
        service
    )


@pytest.mark.parametrize(
    ("port", "message"),
    [("8008", "vllm.kvEventsPort is vllm.port too"), ("-1", "kvEventsPort")],
)
def test_a_wrong_port_is_refused(helm: Helm, port: str, message: str) -> None:
    assert message in helm.refusal({"vllm.kvEventsPort": port})
