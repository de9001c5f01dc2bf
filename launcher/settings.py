"""The launcher's own settings: what decides which processes or Compose services start, read by
no service. Sources as for the services: exported variables, then ``docker/<device>/.env``,
then the defaults below."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from common.config_loading import SETTINGS_CONFIG


class LauncherSettings(BaseSettings):
    """Everything ``run_vllm.sh`` (``python -m launcher``) reads besides the services' settings."""

    model_config = SETTINGS_CONFIG

    vllm_replicas: int = Field(
        1,
        ge=1,
        le=64,
        description="vLLM replicas that `run_vllm.sh` starts on this host (native and Compose), "
        "on consecutive ports from `LLM_VLLM_PORT`, each on its own share of the host: CPU, one "
        "NUMA node each where there are several, else an even share of the cores, pinned with "
        "`VLLM_CPU_OMP_THREADS_BIND` and the process's CPU affinity; HPU, its own group of the "
        "`HABANA_VISIBLE_DEVICES` cards. The microservice routes over all of them. One "
        "`python -m model_server` (one container) is one replica.",
    )
    llm_embedding_model: str | None = Field(
        None,
        min_length=1,
        description="An embedding model to serve beside the chat model: a Hugging Face model "
        "id or a local folder. `run_vllm.sh` then starts a second model server with "
        "`VLLM_RUNNER=pooling` and `VLLM_CONVERT=embed` (natively, or as the Compose "
        "`embedding` profile's `vllm-embedding` service, which gets it as its "
        "`LLM_VLLM_MODEL_NAME`); unset: no embedding model.",
    )
    llm_embedding_port: int = Field(
        8009,
        ge=1,
        le=65535,
        description="TCP port of the embedding model's server, when `LLM_EMBEDDING_MODEL` is "
        "set (that server's `LLM_VLLM_PORT`); the microservice's "
        "`LLM_EMBEDDING_MODEL_SERVER_ENDPOINT` points at it.",
    )
    llm_embedding_habana_visible_devices: str | None = Field(
        None,
        min_length=1,
        description="HPU only: the Gaudi cards of the embedding model's server (its "
        "`HABANA_VISIBLE_DEVICES`), none of the chat model's; unset: the chat model's "
        "`HABANA_VISIBLE_DEVICES`.",
    )
    llm_data_dir: str = Field(
        "data",
        min_length=1,
        description="Compose only: the stack's data folder (the Hugging Face cache, mounted as "
        "`/data`), created when missing; relative to `docker/<device>/`.",
    )
    llm_usvc_config_dir: str = Field(
        "../usvc-config",
        min_length=1,
        description="Compose only: the host folder mounted as `/etc/llm-usvc` in the "
        "microservice's container (relative to `docker/<device>/`); `run_vllm.sh` checks "
        "`LLM_MODELS_FILE` and `LLM_API_KEYS_FILE` there before Compose starts.",
    )
    stop_grace_s: int = Field(
        30,
        ge=0,
        description="`--native` only: seconds between SIGTERM and SIGKILL when the launcher "
        "stops the processes it started.",
    )
