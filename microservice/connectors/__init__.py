"""Connectors to the model server, chosen by LLM_CONNECTOR."""

from __future__ import annotations

from microservice.connectors.base import Connector
from microservice.model_server_client import ModelServerClient
from microservice.settings import MicroserviceSettings


def build(settings: MicroserviceSettings, client: ModelServerClient) -> Connector:
    """One connector for the app's life; the langchain import only happens when chosen."""
    if settings.llm_connector == "langchain":
        from microservice.connectors.langchain import LangchainConnector

        return LangchainConnector(client)
    from microservice.connectors.generic import GenericConnector

    return GenericConnector(client)


__all__ = ["Connector", "build"]
