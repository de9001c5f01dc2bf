"""``create_app(settings)``: the FastAPI app, its one pooled client and its connector.

Nothing happens at import time; the lifespan builds the client and connector once and closes
them on shutdown. The model server is not required at start: the service answers while vLLM
loads, and a first readiness check runs in the background.
"""

from __future__ import annotations

import asyncio
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
from microservice.settings import MicroserviceSettings
from microservice.state import ServiceState


def create_app(
    settings: MicroserviceSettings, model_server_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """``model_server_transport`` replaces the network to vLLM (in-process tests only)."""
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with make_client(settings, model_server_transport) as client:
            model_info = ModelInfo(client, settings.llm_model_name)
            health = HealthChecker(
                client,
                model_info,
                settings.llm_model_name,
                settings.llm_model_server_endpoint,
                settings.llm_health_cache_s,
            )
            connector = connectors.build(settings, client)
            app.state.service = ServiceState(settings, connector, health, model_info, metrics)
            first_check = asyncio.create_task(health.check())
            get_logger().info(
                "microservice ready",
                extra={
                    "fields": {
                        "connector": settings.llm_connector,
                        "model": settings.llm_model_name,
                        "model_server": settings.llm_model_server_endpoint,
                    }
                },
            )
            try:
                yield
            finally:
                first_check.cancel()
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
