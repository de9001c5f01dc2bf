"""LoRA adapters on the replicas of their base model: which replicas a request for one may go
to, and loading one on a replica at run time, once.

A replica lists the adapters it holds in its ``/v1/models`` (``parent``: the base model), which
the probes read. A request for an adapter goes to the replicas that hold it; when none does
and the models file gives the adapter a ``path``, the replica the policy picks loads it first
(vLLM's ``/v1/load_lora_adapter``, which needs ``VLLM_ALLOW_RUNTIME_LORA`` there), and every
request that arrives meanwhile waits for that one load.
"""

from __future__ import annotations

import asyncio

import orjson

from microservice import paths
from microservice.errors import AdapterLoadFailed, AdapterUnavailable
from microservice.observability.logs import get_logger
from microservice.routing.metrics import RoutingMetrics
from microservice.routing.replica import Replica
from microservice.upstream.client import ModelServerClient, model_server_message
from microservice.upstream.model_call import Adapter

ALREADY_LOADED = "has already been loaded"  # vLLM's 400 when another load won the race


def serving(replicas: list[Replica], adapter: Adapter | None, retry_after: int) -> list[Replica]:
    """The replicas a request may go to: those holding its adapter; all of them when none
    does and it can be loaded (the one picked loads it)."""
    if adapter is None or not replicas:
        return replicas
    holders = [r for r in replicas if adapter.name in r.adapters]
    if holders or adapter.path:
        return holders or replicas
    raise AdapterUnavailable(
        f"no replica has the adapter `{adapter.name}` loaded, and the models file gives it no "
        "`path` to load it from",
        retry_after,
    )


class AdapterLoads:
    """Loads of adapters on replicas, one at a time per replica and adapter."""

    def __init__(self, client: ModelServerClient, metrics: RoutingMetrics) -> None:
        self._client = client
        self._metrics = metrics
        self._loading: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def ensure(self, replica: Replica, adapter: Adapter) -> None:
        """``adapter`` loaded on ``replica``: at once when it holds it, else after the one load
        every concurrent caller waits for; AdapterLoadFailed when it cannot be."""
        if adapter.name in replica.adapters:
            return
        key = (replica.url, adapter.name)
        load = self._loading.get(key)
        if load is None:
            load = asyncio.create_task(self._load(replica, adapter))
            self._loading[key] = load
            load.add_done_callback(lambda _: self._loading.pop(key, None))
        await asyncio.shield(load)  # one caller gone does not cancel the others' load

    async def _load(self, replica: Replica, adapter: Adapter) -> None:
        body = orjson.dumps({"lora_name": adapter.name, "lora_path": adapter.path})
        headers = {"content-type": "application/json"}
        reply = await self._client.post(replica.url, paths.VLLM_LOAD_LORA, body, headers)
        message = model_server_message(reply.body)
        if reply.status == 200 or (reply.status == 400 and ALREADY_LOADED in message):
            replica.adapters = replica.adapters | {adapter.name}
            self._metrics.adapter_loads.labels(adapter.name, "loaded").inc()
            fields = {"replica": replica.url, "adapter": adapter.name}
            get_logger().info("adapter loaded", extra={"fields": fields})
            return
        self._metrics.adapter_loads.labels(adapter.name, "failed").inc()
        hint = (
            " (run-time loading is off there: start it with VLLM_ALLOW_RUNTIME_LORA=true)"
            if reply.status == 404 and message == "Not Found"
            else ""
        )
        raise AdapterLoadFailed(
            f"model server at {replica.url} could not load the adapter `{adapter.name}` from "
            f"{adapter.path}: {reply.status} {message}{hint}"
        )
