"""The launcher's own rules between settings of different services (ports that must differ,
values one service takes from another's), as pure functions of the validated settings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from launcher.errors import refuse
from launcher.replicas import endpoint_host
from launcher.settings import LauncherSettings
from microservice.settings import MicroserviceSettings
from model_server.settings import ModelServerSettings

USVC_CONFIG_MOUNT = "/etc/llm-usvc"  # where the compose files mount LLM_USVC_CONFIG_DIR
MOUNTED_FILES = ("LLM_MODELS_FILE", "LLM_API_KEYS_FILE")
# Compose: what the microservice writes to a path inside its container (the audit file) is
# checked there, at its start; here the check stands in with a value that needs no host path.
IN_CONTAINER = {"LLM_AUDIT_LOG": "stdout"}


def embedding_url(model_server: ModelServerSettings, launcher: LauncherSettings) -> str:
    """Where this host reaches the embedding model's server."""
    return f"http://{endpoint_host(model_server.llm_vllm_host)}:{launcher.llm_embedding_port}"


def check_embedding_port(model_server: ModelServerSettings, launcher: LauncherSettings) -> None:
    """The embedding server's port is none of the chat replicas' ports."""
    if not launcher.llm_embedding_model:
        return
    port, first = launcher.llm_embedding_port, model_server.llm_vllm_port
    last = first + launcher.vllm_replicas - 1
    if first <= port <= last:
        raise refuse(
            f"LLM_EMBEDDING_PORT={port} is among the chat model's vLLM ports ({first}-{last}): "
            "move one"
        )


def check_usvc_port(
    model_server: ModelServerSettings,
    launcher: LauncherSettings,
    microservice: MicroserviceSettings,
) -> None:
    """The microservice's port is neither the embedding server's nor a chat replica's."""
    port = microservice.llm_usvc_port
    if launcher.llm_embedding_model and launcher.llm_embedding_port == port:
        raise refuse(f"LLM_EMBEDDING_PORT and LLM_USVC_PORT are both {port}: move one")
    replicas, first = launcher.vllm_replicas, model_server.llm_vllm_port
    if replicas > 1 and first <= port < first + replicas:
        raise refuse(
            f"VLLM_REPLICAS={replicas} puts vLLM on ports {first}-{first + replicas - 1}, "
            f"LLM_USVC_PORT={port} among them: move one"
        )


def check_kv_events_ports(
    model_server: ModelServerSettings,
    launcher: LauncherSettings,
    microservice: MicroserviceSettings,
) -> None:
    """The replicas' KV-events ports are neither the embedding server's nor the
    microservice's (their distance from the HTTP ports is the replica plan's check)."""
    first = model_server.vllm_kv_events_port
    if first is None:
        return
    last = first + launcher.vllm_replicas - 1
    taken = {"LLM_USVC_PORT": microservice.llm_usvc_port}
    if launcher.llm_embedding_model:
        taken["LLM_EMBEDDING_PORT"] = launcher.llm_embedding_port
    for name, port in taken.items():
        if first <= port <= last:
            raise refuse(
                f"{name}={port} is among vLLM's KV-events ports ({first}-{last}, "
                "VLLM_KV_EVENTS_PORT): move one"
            )


def embedding_defaults(environ: Mapping[str, str], model: str, url: str) -> dict[str, str]:
    """Natively, the microservice serves the embedding model started beside it, unless its
    name or server is exported (Compose derives the same in its files)."""
    return {
        "LLM_EMBEDDING_MODEL_NAME": environ.get("LLM_EMBEDDING_MODEL_NAME") or model,
        "LLM_EMBEDDING_MODEL_SERVER_ENDPOINT": (
            environ.get("LLM_EMBEDDING_MODEL_SERVER_ENDPOINT") or url
        ),
    }


def mounted_files(
    environ: Mapping[str, str],
    env_file: Path | None,
    launcher: LauncherSettings,
    stack_dir: Path,
) -> dict[str, str]:
    """Compose: the microservice's files named by their path inside its container (under the
    config mount), as paths on this host, so that the check here reads the files it will read.
    ``LLM_USVC_CONFIG_DIR`` is relative to the compose file's folder, as Compose takes it."""
    in_file = dotenv_values(env_file) if env_file is not None else {}
    folder = Path(launcher.llm_usvc_config_dir)
    if not folder.is_absolute():
        folder = stack_dir / folder
    host_paths = {}
    for name in MOUNTED_FILES:
        value = environ.get(name) or in_file.get(name) or ""
        if value.startswith(USVC_CONFIG_MOUNT + "/"):
            host_paths[name] = f"{folder}/{value.removeprefix(USVC_CONFIG_MOUNT + '/')}"
    return host_paths
