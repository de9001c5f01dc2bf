"""What the routes depend on, built once per app in the lifespan and reached via ``StateDep``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from microservice.health import HealthChecker
from microservice.metrics import Metrics
from microservice.model_info import ModelInfo
from microservice.routing.dispatch import Dispatcher
from microservice.routing.pool import ReplicaPool
from microservice.settings import MicroserviceSettings


@dataclass(frozen=True, slots=True)
class ServiceState:
    settings: MicroserviceSettings
    dispatcher: Dispatcher
    pool: ReplicaPool
    health: HealthChecker
    model_info: ModelInfo
    metrics: Metrics


async def get_state(request: Request) -> ServiceState:
    """Async on purpose: FastAPI runs a sync dependency in a thread pool, on every request."""
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]
