"""What the routes depend on, built once per app in the lifespan and reached with
``service_state`` (or ``StateDep`` in FastAPI routes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from microservice.auth.admission import Admission
from microservice.auth.guard import Guard
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

    def usage_hook(self, admission: Admission) -> Callable[[Usage], None]:
        """What an answered request's usage goes to: the token metric, and the settling of the
        caller's reservation (once; ``admission.settle(None)`` settles a request that ends
        without usage)."""
        tokens, settle = self.metrics.generated_tokens, admission.settle

        def on_usage(usage: Usage) -> None:
            tokens.inc(usage.completion_tokens)
            settle(usage)

        return on_usage


def service_state(request: Request) -> ServiceState:
    """For plain Starlette endpoints (no dependency solving)."""
    state: ServiceState = request.app.state.service
    return state


async def get_state(request: Request) -> ServiceState:
    """Async on purpose: FastAPI runs a sync dependency in a thread pool, on every request."""
    return service_state(request)


StateDep = Annotated[ServiceState, Depends(get_state)]
