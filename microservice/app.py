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
from starlette.types import ASGIApp, Receive, Scope, Send

from microservice import connectors, errors
from microservice.auth.guard import build_guard
from microservice.client_socket import SERVER_SEND
from microservice.direct_routes import DirectRoutes
from microservice.http_client.client import Http1Client
from microservice.logs import get_logger
from microservice.metrics import Metrics
from microservice.middleware import RequestContext
from microservice.model_server_client import ModelServerClient
from microservice.openai_api import install_openapi
from microservice.routes import MODEL_ROUTES, router
from microservice.routing.discovery import Resolver, system_resolver
from microservice.served import ServedModels
from microservice.settings import MicroserviceSettings
from microservice.state import ServiceState
from microservice.tracing import Tracing


class ServiceApp(FastAPI):
    """FastAPI with the model routes served directly (``direct_routes``), and the server's
    own ``send`` kept in the scope: a pushed stream writes its events past the send wrappers
    of the middleware (``client_socket``)."""

    direct: ASGIApp | None = None  # the model routes inside RequestContext, set by create_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SERVER_SEND] = send
        direct = self.direct
        if (
            direct is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in MODEL_ROUTES
        ):
            scope["app"] = self
            await direct(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: MicroserviceSettings,
    model_server_client: Callable[[MicroserviceSettings], ModelServerClient] = Http1Client,
    resolver: Resolver = system_resolver,
) -> FastAPI:
    """``model_server_client`` and ``resolver`` replace the network to the replicas and the
    DNS (in-process tests only)."""
    metrics = Metrics()
    tracing = Tracing.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = model_server_client(settings)
        async with contextlib.AsyncExitStack() as closing:
            closing.push_async_callback(client.aclose)
            connector = connectors.build(settings, client)
            models = ServedModels(
                settings.catalog, settings, client, connector, resolver, metrics.routing, tracing
            )
            guard = build_guard(settings, metrics)
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
    errors.install(app)
    app.include_router(router)
    install_openapi(app)
    app.add_middleware(RequestContext, metrics=metrics, tracing=tracing)
    app.direct = RequestContext(DirectRoutes(MODEL_ROUTES), metrics=metrics, tracing=tracing)
    return app
