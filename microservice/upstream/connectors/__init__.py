"""Connectors to the model server, chosen by LLM_CONNECTOR: ``generic`` sends the route's
body as built; ``langchain`` has LangChain's ``ChatOpenAI`` build chat bodies. Both send over
the app's one pooled client and pass vLLM's bytes on."""

from __future__ import annotations

from microservice.settings import ConnectorName
from microservice.upstream.client import ModelServerClient
from microservice.upstream.connectors.protocol import Connector


def build(connector: ConnectorName, client: ModelServerClient) -> Connector:
    """One connector for the app's life; the langchain import only happens when chosen."""
    if connector == "langchain":
        from microservice.upstream.connectors.langchain import LangchainConnector

        return LangchainConnector(client)
    from microservice.upstream.connectors.generic import GenericConnector

    return GenericConnector(client)


__all__ = ["Connector", "build"]
