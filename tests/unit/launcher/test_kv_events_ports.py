"""VLLM_KV_EVENTS_PORT with VLLM_REPLICAS>1: each replica publishes its KV-cache events on a port
of its own (the first plus its index, as with LLM_VLLM_PORT), natively and in Compose; ports
that clash are refused with one line; the embedding server never publishes."""

from __future__ import annotations

import pytest

from harness.processes import REPO_ROOT
from launcher import cli, embedding, rules
from launcher.config import load_stack
from launcher.errors import Refusal
from launcher.host_layout import ReplicaPlanError
from launcher.replica_compose import compose_override
from launcher.replica_plan import Plan, Replica
from launcher.replicas import plan_for, with_events_ports
from launcher.settings import LauncherSettings
from microservice.settings import MicroserviceSettings
from model_server.settings import ModelServerSettings

HPU_PAIR = {"LLM_DEVICE": "hpu", "VLLM_REPLICAS": "2", "HABANA_VISIBLE_DEVICES": "0,1"}


def plan(count: int) -> Plan:
    urls = (f"http://127.0.0.1:{8008 + i}" for i in range(count))
    return Plan([Replica(url, {"LLM_VLLM_PORT": url[-4:]}) for url in urls], ["a note"])


def test_each_replica_publishes_on_the_first_port_plus_its_index() -> None:
    planned = with_events_ports(plan(3), 5557, 8008)
    assert [r.env for r in planned.replicas] == [
        {"LLM_VLLM_PORT": str(8008 + i), "VLLM_KV_EVENTS_PORT": str(5557 + i)} for i in range(3)
    ]
    assert planned.notes == ["a note"]


@pytest.mark.parametrize("first", [None, 5557])
def test_one_replica_or_no_events_is_the_plan_as_it_is(first: int | None) -> None:
    assert with_events_ports(plan(1), first, 8008) == plan(1)
    assert with_events_ports(plan(2), None, 8008) == plan(2)


@pytest.mark.parametrize(
    ("first", "message"),
    [
        (8009, "HTTP on ports 8008-8010 and its KV events on 8009-8011: move VLLM_KV_EVENTS_PORT"),
        (8006, "HTTP on ports 8008-8010 and its KV events on 8006-8008: move VLLM_KV_EVENTS_PORT"),
        (65534, "from VLLM_KV_EVENTS_PORT=65534 needs ports up to 65536; the highest is 65535"),
    ],
)
def test_ports_that_cannot_be_are_refused(first: int, message: str) -> None:
    with pytest.raises(ReplicaPlanError, match=message):
        with_events_ports(plan(3), first, 8008)


@pytest.mark.usefixtures("clean_env")
def test_the_stack_plans_the_events_ports_and_compose_passes_them() -> None:
    stack = load_stack(cli.Options(root=REPO_ROOT), {**HPU_PAIR, "VLLM_KV_EVENTS_PORT": "5557"})
    ports = [r.env["VLLM_KV_EVENTS_PORT"] for r in stack.plan.replicas]
    assert ports == ["5557", "5558"]
    override = compose_override(stack.plan, stack.plan.endpoints)
    assert override.count('VLLM_KV_EVENTS_PORT: "5557"') == 1
    assert override.count('VLLM_KV_EVENTS_PORT: "5558"') == 1


def test_plan_for_adds_the_ports_on_either_device() -> None:
    settings = ModelServerSettings(
        llm_device="hpu", habana_visible_devices="0,1", vllm_kv_events_port=6000
    )
    replicas = plan_for(settings, replicas=2, native=False).replicas
    assert [r.env["VLLM_KV_EVENTS_PORT"] for r in replicas] == ["6000", "6001"]


@pytest.mark.parametrize(
    ("usvc_port", "embedding_model", "message"),
    [
        (5558, None, "LLM_USVC_PORT=5558 is among vLLM's KV-events ports (5557-5558"),
        (9000, "E", "LLM_EMBEDDING_PORT=5557 is among vLLM's KV-events ports (5557-5558"),
    ],
)
def test_the_events_ports_clash_with_no_other(
    usvc_port: int, embedding_model: str | None, message: str
) -> None:
    settings = (
        ModelServerSettings(vllm_kv_events_port=5557),
        LauncherSettings(
            vllm_replicas=2, llm_embedding_model=embedding_model, llm_embedding_port=5557
        ),
        MicroserviceSettings(llm_usvc_port=usvc_port),
    )
    with pytest.raises(Refusal) as caught:
        rules.check_kv_events_ports(*settings)
    assert caught.value.line == f"run_vllm.sh: error: {message}, VLLM_KV_EVENTS_PORT): move one"


def test_no_events_port_clashes_with_nothing() -> None:
    settings = (ModelServerSettings(), LauncherSettings(), MicroserviceSettings(llm_usvc_port=5557))
    rules.check_kv_events_ports(*settings)


def test_the_embedding_server_never_publishes() -> None:
    """It would bind the chat server's port; a pooling model has no prefix blocks to report."""
    assert embedding.env_file_text("VLLM_KV_EVENTS_PORT=5557\nA=1\n") == "A=1\n"
    command = embedding.command(
        {"VLLM_KV_EVENTS_PORT": "5557"},
        model="E",
        port=8100,
        cards=None,
        python="python",
        env_file=REPO_ROOT / "x.env",
    )
    assert command[:3] == ["env", "-u", "VLLM_KV_EVENTS_PORT"]
