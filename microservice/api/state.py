"""What the routes depend on, built once per app in the lifespan and reached with
``service_state`` (or ``StateDep`` in FastAPI routes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from microservice.auth.guard import Caller, Guard
from microservice.models.served_models import ServedModels
from microservice.observability.metrics import Metrics
from microservice.relay.usage import Usage
from microservice.settings import MicroserviceSettings


@dataclass(frozen=True, slots=True)
class ServiceState:
    settings: MicroserviceSettings
    models: ServedModels
    guard: Guard
    metrics: Metrics

    def usage_hook(self, caller: Caller) -> Callable[[Usage], None]:
        """What an answered request's usage goes to: the token metric and the caller's key."""
        tokens, record = self.metrics.generated_tokens, self.guard.record

        def on_usage(usage: Usage) -> None:
            tokens.inc(usage.completion_tokens)
            record(caller, usage)

        return on_usage


def service_state(request: Request) -> ServiceState:
    """For plain Starlette endpoints (no dependency solving)."""
    state: ServiceState = request.app.state.service
    return state


async def get_state(request: Request) -> ServiceState:
    """Async on purpose: FastAPI runs a sync dependency in a thread pool, on every request."""
    return service_state(request)


StateDep = Annotated[ServiceState, Depends(get_state)]
