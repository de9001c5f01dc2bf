"""The served models: for each model of the catalog, its replica pool, the dispatcher that
sends calls to it, what vLLM told us about it, and its readiness.

Requests name a model (``model``); OPEA-form requests, which have no such field, and OpenAI
requests that leave it out go to the catalog's default model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from microservice import paths
from microservice.config.catalog import Catalog, ModelKind, ModelSpec
from microservice.errors import ModelNotFound, WrongModelKind
from microservice.models.health import HealthChecker
from microservice.observability.tracing import Tracing
from microservice.routing.discovery import Discovery, Resolver
from microservice.routing.dispatch import Dispatcher
from microservice.routing.metrics import RoutingMetrics
from microservice.routing.model_info import ModelInfo
from microservice.routing.pool import ReplicaPool
from microservice.settings import MicroserviceSettings
from microservice.upstream.client import ModelServerClient
from microservice.upstream.connectors import Connector
from microservice.upstream.model_call import Adapter


@dataclass(frozen=True, slots=True)
class ServedModel:
    spec: ModelSpec
    info: ModelInfo
    pool: ReplicaPool
    dispatcher: Dispatcher
    health: HealthChecker
    adapter: Adapter | None = None  # a LoRA adapter: the pool and all else are its base's

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def served_name(self) -> str:
        """The model vLLM serves, sent as ``model`` in every call."""
        return self.spec.served_model_name

    async def learn_context_length(self) -> int | None:
        """The context length, asking the replicas first if none answered yet."""
        if not self.info.known:
            await self.pool.check_now()
        return self.info.max_model_len


# What a model of each kind answers, for the error that names the route to use instead.
ROUTES_OF: dict[str, str] = {
    "chat": f"{paths.CHAT}, {paths.COMPLETIONS} or {paths.RESPONSES}",
    "embedding": paths.EMBEDDINGS,
    "rerank": f"{paths.RERANK} or {paths.SCORE}",
}


def adapter_of(base: ServedModel, spec: ModelSpec) -> ServedModel:
    """A LoRA adapter of ``base``, served by its replicas."""
    return replace(base, spec=spec, adapter=Adapter(spec.served_model_name, spec.path))


def _discovered(base: ServedModel, name: str) -> ServedModel:
    """An adapter ``base``'s replicas hold that the models file does not name: served as if it
    did, without a path to load it elsewhere."""
    return adapter_of(base, ModelSpec(name=name, kind="adapter", base=base.name))


class ServedModels:
    def __init__(
        self,
        catalog: Catalog,
        settings: MicroserviceSettings,
        client: ModelServerClient,
        connector: Connector,
        resolver: Resolver,
        metrics: RoutingMetrics,
        tracing: Tracing,
    ) -> None:
        bases: dict[str, ServedModel] = {}
        for spec in catalog.models:
            if spec.kind == "adapter":
                continue
            info = ModelInfo(spec.served_model_name)
            pool = ReplicaPool(settings, client, Discovery(spec.endpoints, resolver), info, metrics)
            dispatcher = Dispatcher(pool, connector, client, settings, metrics, tracing)
            health = HealthChecker(pool, info, settings.llm_health_cache_s)
            bases[spec.name] = ServedModel(spec, info, pool, dispatcher, health)
        self._bases = list(bases.values())
        self._models: dict[str, ServedModel] = {}
        for spec in catalog.models:
            if spec.kind == "adapter":
                base = bases[spec.base]
                base.info.follows_adapters = True  # its checks follow the adapters held
                self._models[spec.name] = adapter_of(base, spec)
            else:
                self._models[spec.name] = bases[spec.name]
        self.default = self._models[catalog.default]
        # A request that names no model: the default, or the first model of the route's kind.
        self._defaults = {m.spec.kind: m for m in reversed(self._models.values())}
        self._defaults[self.default.spec.kind] = self.default

    @property
    def all(self) -> list[ServedModel]:
        return list(self._models.values())

    def listed(self) -> list[ServedModel]:
        """Every model a request may name: the catalog's, and the adapters the replicas of its
        chat models hold that it does not name."""
        found: dict[str, ServedModel] = {}
        for name, base in self._held_adapters():
            found.setdefault(name, _discovered(base, name))
        return [*self._models.values(), *found.values()]

    def _held_adapters(self) -> Iterator[tuple[str, ServedModel]]:
        """(name, chat model) of each adapter a chat model's replica holds (VLLM_LORA_MODULES)
        that the models file does not name."""
        for base in self._bases:
            if base.spec.kind == "chat":
                for replica in base.pool.replicas:
                    for name in sorted(replica.adapters - self._models.keys()):
                        yield name, base

    def _holder(self, name: str) -> ServedModel | None:
        """The chat model whose replicas hold the adapter ``name`` the file does not name."""
        return next((base for held, base in self._held_adapters() if held == name), None)

    def get(self, name: object, kind: ModelKind) -> ServedModel:
        """The model a request names (the default when it names none), checked for the
        route's kind: 404 ``model_not_found`` or 400 ``model_not_supported``."""
        if name is None or name == "":
            served = self._defaults.get(kind, self.default)
        elif isinstance(name, str) and name in self._models:
            served = self._models[name]
        elif isinstance(name, str) and (base := self._holder(name)) is not None:
            served = _discovered(base, name)
        else:
            raise ModelNotFound(
                f"The model `{name}` does not exist; served: {', '.join(self._models)}",
                param="model",
            )
        if served.spec.serves != kind:
            raise WrongModelKind(
                f"the model `{served.name}` ({served.spec.kind}) does not answer this route: "
                f"use {ROUTES_OF[served.spec.serves]}",
                param="model",
            )
        return served

    def with_fallbacks(self, served: ServedModel) -> list[ServedModel]:
        """The model and, in order, the models its requests fall back on."""
        return [served, *(self._models[name] for name in served.spec.fallbacks)]

    async def start(self) -> None:
        for model in self._bases:
            await model.pool.start()

    async def stop(self) -> None:
        for model in self._bases:
            await model.pool.stop()
