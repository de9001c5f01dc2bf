"""One typed settings object for the LLM microservice, read once at start, in two parts:
``service`` (models, keys, server, streaming, logs, traces) and ``replicas`` (how requests reach
the replicas: discovery, probes, routing, retries, the waiting room)."""

from microservice.settings.replicas import RoutingPolicy
from microservice.settings.service import ConnectorName, MicroserviceSettings, load_settings

__all__ = ["ConnectorName", "MicroserviceSettings", "RoutingPolicy", "load_settings"]
