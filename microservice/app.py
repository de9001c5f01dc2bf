"""``create_app(settings)``: the FastAPI app, its one pooled client to vLLM, its connector, the
served models with their replica pools, and the API-key guard.

Nothing happens at import time; the lifespan builds them once and closes them on shutdown.
The model servers are not required at start: the service answers while vLLM loads, and the
replica probes run in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from microservice.api import error_answers
from microservice.api.direct_routes import DirectRoutes, ServiceApp
from microservice.api.openapi import install_openapi
from microservice.api.request_context import RequestContext
from microservice.api.routes import MODEL_ROUTES, router
from microservice.api.state import ServiceState
from microservice.auth.guard import build_guard
from microservice.models.served_models import ServedModels
from microservice.observability.audit_log import AuditLog
from microservice.observability.logs import get_logger
from microservice.observability.metrics import Metrics
from microservice.observability.tracing import Tracing
from microservice.routing.discovery import Resolver, system_resolver
from microservice.routing.metrics import RoutingMetrics
from microservice.settings import MicroserviceSettings
from microservice.upstream import connectors
from microservice.upstream.client import ModelServerClient
from microservice.upstream.http1.client import Http1Client


def create_app(
    settings: MicroserviceSettings,
    model_server_client: Callable[[MicroserviceSettings], ModelServerClient] = Http1Client,
    resolver: Resolver = system_resolver,
) -> FastAPI:
    """``model_server_client`` and ``resolver`` replace the network to the replicas and the
    DNS (in-process tests only)."""
    metrics = Metrics()
    routing_metrics = RoutingMetrics(metrics.registry)
    tracing = Tracing.build(settings)
    audit_log = AuditLog.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = model_server_client(settings)
        async with contextlib.AsyncExitStack() as closing:
            closing.push_async_callback(client.aclose)
            audit_log.start()
            closing.push_async_callback(asyncio.to_thread, audit_log.stop)  # the last lines
            connector = connectors.build(settings.llm_connector, client)
            models = ServedModels(
                settings.catalog, settings, client, connector, resolver, routing_metrics, tracing
            )
            guard = build_guard(settings, metrics.registry)
            app.state.service = ServiceState(settings, models, guard, metrics)
            await models.start()
            await guard.start()
            get_logger().info(
                "microservice ready",
                extra={
                    "fields": {
                        "connector": settings.llm_connector,
                        "models": {m.name: [r.url for r in m.pool.replicas] for m in models.all},
                        "default_model": models.default.name,
                        "routing": settings.llm_routing,
                        "api_keys": guard.enabled,
                        "tracing": tracing.exporting,
                    }
                },
            )
            try:
                yield
            finally:
                await models.stop()
                await guard.aclose()
                await connector.aclose()
                await asyncio.to_thread(tracing.shutdown)  # flushes the last spans

    app = ServiceApp(
        title="LLM microservice",
        description="OPEA-compatible and OpenAI-compatible front for a vLLM model server.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    error_answers.install(app)
    app.include_router(router)
    install_openapi(app)
    app.add_middleware(RequestContext, metrics=metrics, tracing=tracing, audit_log=audit_log)
    app.direct = RequestContext(
        DirectRoutes(MODEL_ROUTES), metrics=metrics, tracing=tracing, audit_log=audit_log
    )
    return app
