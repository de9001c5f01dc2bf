"""Natively, the embedding model's server (``LLM_EMBEDDING_MODEL``): a second
``python -m model_server`` with the chat server's configuration, less what is the chat
model's own; Compose's ``embedding`` profile blanks the same variables."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

# The chat model server's model, port and runner, its sizing (vLLM's defaults fit the
# embedding model), structured outputs, its KV-events port (the embedding server would bind it
# too), the FP8 measurements and the replica count: neither
# these lines of the env file nor these exported variables reach the embedding server.
DROPPED = (
    "LLM_VLLM_MODEL_NAME",
    "LLM_VLLM_PORT",
    "VLLM_RUNNER",
    "VLLM_CONVERT",
    "VLLM_MAX_NUM_SEQS",
    "VLLM_TP_SIZE",
    "VLLM_PP_SIZE",
    "VLLM_MAX_MODEL_LEN",
    "VLLM_JSON_COMPACT",
    "VLLM_KV_EVENTS_PORT",
    "VLLM_LORA_MODULES",
    "VLLM_MAX_LORAS",
    "VLLM_MAX_LORA_RANK",
    "VLLM_ALLOW_RUNTIME_LORA",
    "IF_FP8_QUANTIZATION",
    "QUANT_CONFIG",
    "VLLM_REPLICAS",
)
_DROPPED_LINE = re.compile(rf"^\s*(export\s+)?({'|'.join(DROPPED)})=")


def env_file_text(chat_env_file: str) -> str:
    """The chat server's env file less the lines that set a ``DROPPED`` variable."""
    lines = chat_env_file.splitlines(keepends=True)
    return "".join(line for line in lines if not _DROPPED_LINE.match(line))


def command(
    environ: Mapping[str, str],
    *,
    model: str,
    port: int,
    cards: str | None,
    python: str,
    env_file: Path,
) -> list[str]:
    """The embedding server's command: exported ``DROPPED`` variables unset, its own model,
    port and runner set; ``cards``: its Gaudi cards (HPU), None for the chat server's."""
    unset = [word for name in DROPPED if name in environ for word in ("-u", name)]
    assignments = [f"LLM_VLLM_MODEL_NAME={model}", f"LLM_VLLM_PORT={port}"]
    assignments += ["VLLM_RUNNER=pooling", "VLLM_CONVERT=embed"]
    if cards is not None:
        assignments.append(f"HABANA_VISIBLE_DEVICES={cards}")
    return ["env", *unset, *assignments, python, "-m", "model_server", "--env-file", str(env_file)]
