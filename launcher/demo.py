"""``--demo``: the variables that serve the built-in tiny model, and the requests to try that
the launcher prints once the stack answers (the README's, for the microservice's port; tests
hold the two equal)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

DEMO_MODEL_NATIVE = Path(".demo") / "tiny-model"  # under the repository: built once, reused
DEMO_MODEL_IN_STACK = "/data/models/tiny"  # Compose: in the stack's data folder

READY_LINE = "The stack is ready. Requests to try:"

_BODY = (
    '{"messages": {"system": "You are a helpful assistant.", "user": "What is Deep Learning?"}, '
    '"max_new_tokens": 32, "top_k": 10, "top_p": 0.95, "typical_p": 0.95, "temperature": 0.01, '
    '"repetition_penalty": 1.03, "streaming": '
)


def demo_env(environ: Mapping[str, str], model: str) -> dict[str, str]:
    """What the tiny model needs is set; what an operator may tune (KV-cache size, context
    length, eager mode) keeps an exported value. Eager by default: the tiny model gains nothing
    from compiled graphs, and compiling them doubles the boot time."""
    tunable = {"VLLM_ENFORCE_EAGER": "true", "VLLM_CPU_KVCACHE_SPACE": "1"}
    tunable["VLLM_MAX_MODEL_LEN"] = "512"
    return {
        "LLM_DEVICE": "cpu",
        "LLM_VLLM_MODEL_NAME": model,
        "LLM_MODEL_NAME": model,
        "HF_HUB_OFFLINE": "1",
        "IF_FP8_QUANTIZATION": "false",
        **{name: environ.get(name) or default for name, default in tunable.items()},
    }


def requests_text(port: int) -> str:
    """The requests to try against the microservice on ``port`` of this host, as printed."""
    url = f"http://localhost:{port}"
    post = f"curl {url}/v1/chat/completions -X POST -H 'Content-Type: application/json' \\"
    return "\n".join(
        [
            "",
            READY_LINE,
            "",
            f"curl {url}/v1/health_check -X GET -H 'Content-Type: application/json'",
            "",
            post,
            f"  -d '{_BODY}false}}'",
            "",
            post,
            f"  -d '{_BODY}true}}'",
            "",
            f'OpenAI SDK and LangChain: base_url="{url}/v1", api_key="unused", messages as a list '
            "of {role, content}.",
            "",
            "",
        ]
    )
