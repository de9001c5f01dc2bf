"""POST /v1/responses through the microservice to the real tiny vLLM, called the way new OpenAI
SDK code calls it (``client.responses.create``), whole and streamed; the tokens vLLM reports
reach the per-key metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from harness.processes import Server
from tests.integration.microservice.helpers import metric, microservice

pytestmark = pytest.mark.integration

KEY = "sk-responses-test-key"


@pytest.fixture(scope="module")
def usvc(
    vllm_server: Server, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    keys = tmp_path_factory.mktemp("responses") / "keys.yaml"
    keys.write_text(f"keys:\n  - name: sdk\n    key: {KEY}\n")
    with microservice(
        "responses", vllm_server.base_url, str(tiny_model), LLM_API_KEYS_FILE=str(keys)
    ) as server:
        yield server


def test_the_sdk_gets_a_response_and_its_stream(usvc: Server, tiny_model: Path) -> None:
    with openai.OpenAI(base_url=usvc.base_url + "/v1", api_key=KEY, max_retries=0) as sdk:
        whole = sdk.responses.create(model=str(tiny_model), input="Say hi.", max_output_tokens=8)
        events = list(
            sdk.responses.create(
                model=str(tiny_model), input="Say hi.", max_output_tokens=8, stream=True
            )
        )
    assert whole.object == "response" and whole.usage is not None
    assert 0 < whole.usage.output_tokens <= 8 and whole.output_text
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] in (
        "response.completed",
        "response.incomplete",
    )
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas and final.usage is not None and final.usage.output_tokens <= 8
    counted = metric(
        httpx.get(usvc.base_url + "/metrics").text,
        "llm_usvc_key_completion_tokens_total",
        'key="sdk"',
    )
    assert counted == whole.usage.output_tokens + final.usage.output_tokens
