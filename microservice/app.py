"""``create_app(settings)``: the FastAPI app, its one pooled client and its connector.

Nothing happens at import time; the lifespan builds the client and connector once and closes
them on shutdown. The model servers are not required at start: the service answers while vLLM
loads, and the replica probes run in the background.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from microservice import connectors, errors
from microservice.health import HealthChecker
from microservice.logs import get_logger
from microservice.metrics import Metrics
from microservice.middleware import RequestContext
from microservice.model_info import ModelInfo
from microservice.model_server_client import make_client
from microservice.routes import router
from microservice.routing.discovery import Discovery, Resolver, system_resolver
from microservice.routing.dispatch import Dispatcher
from microservice.routing.pool import ReplicaPool
from microservice.settings import MicroserviceSettings
from microservice.state import ServiceState


def create_app(
    settings: MicroserviceSettings,
    model_server_transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver = system_resolver,
) -> FastAPI:
    """``model_server_transport`` and ``resolver`` replace the network to the replicas and
    the DNS (in-process tests only)."""
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with make_client(settings, model_server_transport) as client:
            info = ModelInfo(settings.llm_model_name)
            discovery = Discovery(settings.model_server_endpoints, resolver)
            pool = ReplicaPool(settings, client, discovery, info, metrics.routing)
            connector = connectors.build(settings, client)
            dispatcher = Dispatcher(pool, connector, settings.llm_retries, metrics.routing)
            health = HealthChecker(pool, info, settings.llm_health_cache_s)
            app.state.service = ServiceState(settings, dispatcher, pool, health, info, metrics)
            await pool.start()
            get_logger().info(
                "microservice ready",
                extra={
                    "fields": {
                        "connector": settings.llm_connector,
                        "model": settings.llm_model_name,
                        "replicas": [r.url for r in pool.replicas],
                        "routing": settings.llm_routing,
                    }
                },
            )
            try:
                yield
            finally:
                await pool.stop()
                await connector.aclose()

    app = FastAPI(
        title="LLM microservice",
        description="OPEA-compatible and OpenAI-compatible front for a vLLM model server.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    app.include_router(router)
    app.add_middleware(RequestContext, metrics=metrics)
    return app
