"""The environments the tests and the benchmark start vLLM and the microservice with, kept in
one place so that what is benchmarked is what is tested."""

from __future__ import annotations

from pathlib import Path

# What the test suite's vLLM servers add to vLLM's defaults: eager (no graph compilation) and
# the model run inside the engine's process (no worker process: one import of vLLM fewer per
# boot), so each boots in about 35 s instead of 55 s or minutes. vLLM's defaults, compiled graphs
# and the worker process, are what the e2e Helm pod boots and `make bench` measures.
QUICK_BOOT = {"VLLM_ENFORCE_EAGER": "true", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def vllm_env(model: str, port: int, hf_home: Path, **extra: str) -> dict[str, str]:
    """vLLM CPU on loopback, offline, with a small fixed KV cache (the tiny model needs 1 GiB);
    ``extra`` overrides any variable."""
    return {
        "LLM_DEVICE": "cpu",
        "LLM_VLLM_MODEL_NAME": model,
        "LLM_VLLM_HOST": "127.0.0.1",
        "LLM_VLLM_PORT": str(port),
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_MAX_MODEL_LEN": "512",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(hf_home),
        # a crash of vLLM's engine core prints its Python stack to the server's log
        "PYTHONFAULTHANDLER": "1",
        **extra,
    }


def microservice_env(model: str, endpoint: str, port: int, **extra: str) -> dict[str, str]:
    """The microservice on loopback in front of ``endpoint``; ``extra`` overrides any variable."""
    return {
        "LLM_MODEL_NAME": model,
        "LLM_MODEL_SERVER_ENDPOINT": endpoint,
        "LLM_USVC_HOST": "127.0.0.1",
        "LLM_USVC_PORT": str(port),
        "LLM_CONNECTOR": "generic",
        "LLM_DISABLE_STREAMING": "false",
        "LLM_OUTPUT_GUARD_EXISTS": "false",
        **extra,
    }
