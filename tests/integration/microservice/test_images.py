"""Chat with images through the microservice: OpenAI content parts with ``image_url`` data URLs
reach a real vLLM serving the tiny vision-language model (``harness.tiny_vlm``) unchanged, as
the prompt's token count shows, through both connectors and the openai SDK; a text-only model,
a URL vLLM would fetch, and a body over the limit are refused clearly."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from harness import tiny_vlm
from harness.processes import Server
from tests.integration.microservice.helpers import microservice

pytestmark = pytest.mark.integration

TEXT = {"type": "text", "text": "what is in this image"}


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def noise_png_data_url(side: int) -> str:
    """A random-noise PNG (compresses worst of all): ``side`` 512 makes about a 1 MB URL."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module", params=["generic", "langchain"])
def usvc(
    request: pytest.FixtureRequest,
    vllm_server: Server,
    vllm_vision_server: Server,
    tiny_model: Path,
    tiny_vlm: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """Model `text` (the text-only tiny model) and model `vision`, behind either connector."""
    models = tmp_path_factory.mktemp("images") / "models.yaml"
    models.write_text(
        "models:\n"
        f"  - {{name: text, endpoints: {vllm_server.base_url}, "
        f"served_model_name: '{tiny_model}'}}\n"
        f"  - {{name: vision, endpoints: {vllm_vision_server.base_url}, "
        f"served_model_name: '{tiny_vlm}'}}\n"
    )
    with microservice(
        f"images-{request.param}", vllm_server.base_url, str(tiny_model),
        LLM_MODELS_FILE=str(models), LLM_CONNECTOR=request.param,
    ) as server:  # fmt: skip
        yield server


def chat(usvc: Server, model: str, content: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 4}
    return httpx.post(usvc.base_url + "/v1/chat/completions", json={**body, **extra}, timeout=60)


def prompt_tokens(reply: httpx.Response) -> int:
    assert reply.status_code == 200, reply.text
    return int(reply.json()["usage"]["prompt_tokens"])


def test_an_image_reaches_the_model_whole_and_streamed(usvc: Server) -> None:
    """Its tokens are in the prompt, vLLM says, as many as the model makes of one image; a
    worst-case 512x512 PNG (about 1 MB of base64) fits the default body limit."""
    text_only = prompt_tokens(chat(usvc, "vision", [TEXT]))
    small = prompt_tokens(chat(usvc, "vision", [TEXT, image(tiny_vlm.png_data_url())]))
    large = prompt_tokens(chat(usvc, "vision", [TEXT, image(noise_png_data_url(512))]))
    assert small - text_only == large - text_only == tiny_vlm.PROMPT_TOKENS_PER_IMAGE
    with openai.OpenAI(base_url=usvc.base_url + "/v1", api_key="none", max_retries=0) as sdk:
        chunks = list(
            sdk.chat.completions.create(
                model="vision",
                messages=[{"role": "user", "content": [TEXT, image(tiny_vlm.png_data_url())]}],
                max_tokens=4,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens == small


def test_an_image_for_a_text_only_model_is_a_clear_400(usvc: Server) -> None:
    reply = chat(usvc, "text", [TEXT, image(tiny_vlm.png_data_url())])
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == "media_not_supported" and "`text` takes text only" in error["message"]
    streamed = chat(usvc, "text", [TEXT, image(tiny_vlm.png_data_url())], stream=True)
    assert streamed.status_code == 400 and streamed.json()["error"]["code"] == "media_not_supported"


def test_a_url_vllm_would_fetch_or_a_body_over_the_limit_is_refused(usvc: Server) -> None:
    remote = chat(usvc, "vision", [TEXT, image("http://169.254.169.254/latest/meta-data")])
    assert remote.status_code == 422, remote.text
    assert remote.json()["error"]["code"] == "remote_media_refused"
    assert remote.json()["error"]["param"] == "messages.0.content.1.image_url.url"
    too_large = "data:image/png;base64," + "A" * (9 * 1024 * 1024)  # over the 8 MiB default
    assert chat(usvc, "vision", [TEXT, image(too_large)]).status_code == 413
