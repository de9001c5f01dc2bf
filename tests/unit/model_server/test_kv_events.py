"""VLLM_KV_EVENTS_PORT: absent by default; set, vLLM publishes its KV-cache events on that port
with block hashes a reader can recompute; a port shared with the HTTP port is refused."""

from __future__ import annotations

import json

import pytest

from common.config_errors import ConfigError
from model_server.__main__ import load_settings
from model_server.render import merged_env, render

pytestmark = pytest.mark.usefixtures("clean_env")


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_unset_publishes_nothing() -> None:
    plan = render(load_settings(None))
    assert "--kv-events-config" not in plan.vllm_args
    assert "--prefix-caching-hash-algo" not in plan.vllm_args
    assert "PYTHONHASHSEED" not in plan.env


@pytest.mark.parametrize("device", ["cpu", "hpu"])
def test_a_port_binds_a_zmq_publisher_on_every_interface(
    clean_env: pytest.MonkeyPatch, device: str
) -> None:
    clean_env.setenv("LLM_DEVICE", device)
    clean_env.setenv("VLLM_KV_EVENTS_PORT", "5557")
    plan = render(load_settings(None))
    args = plan.vllm_args
    config = json.loads(flag(args, "--kv-events-config") or "")
    assert config == {
        "enable_kv_cache_events": True,
        "publisher": "zmq",
        "endpoint": "tcp://*:5557",  # a `*` makes vLLM bind; a host address, connect
        "topic": "kv",
    }
    assert flag(args, "--prefix-caching-hash-algo") == "sha256_cbor"
    # the first block's parent: sha256_cbor("0") on every vLLM, not a per-process random one
    assert plan.env["PYTHONHASHSEED"] == "0"


def test_the_seed_wins_over_an_inherited_one(clean_env: pytest.MonkeyPatch) -> None:
    """A reader knows the seed only if every replica has the same one."""
    clean_env.setenv("VLLM_KV_EVENTS_PORT", "5557")
    plan = render(load_settings(None))
    assert merged_env({"PYTHONHASHSEED": "42"}, plan)["PYTHONHASHSEED"] == "0"


def test_an_empty_value_is_unset(clean_env: pytest.MonkeyPatch) -> None:
    """Compose passes `${VLLM_KV_EVENTS_PORT:-}`: empty means off."""
    clean_env.setenv("VLLM_KV_EVENTS_PORT", "")
    assert load_settings(None).vllm_kv_events_port is None


@pytest.mark.parametrize(
    ("value", "said"),
    [("0", "VLLM_KV_EVENTS_PORT"), ("65536", "VLLM_KV_EVENTS_PORT"), ("8008", "LLM_VLLM_PORT")],
)
def test_a_wrong_port_is_refused(clean_env: pytest.MonkeyPatch, value: str, said: str) -> None:
    clean_env.setenv("VLLM_KV_EVENTS_PORT", value)
    with pytest.raises(ConfigError, match=said):
        load_settings(None)
