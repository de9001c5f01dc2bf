"""The openai SDK and LangChain's ChatOpenAI, unchanged, with base_url = the microservice."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from langchain_openai import ChatOpenAI

from harness.processes import Server
from tests.integration.microservice.helpers import vllm_chat

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Tell me about cats."}]


@pytest.fixture
def expected(vllm_server: Server, tiny_model: Path) -> str:
    return vllm_chat(vllm_server, str(tiny_model), MESSAGES, max_tokens=10, temperature=0)


def test_openai_sdk(usvc: Server, tiny_model: Path, expected: str) -> None:
    client = openai.OpenAI(base_url=usvc.base_url + "/v1", api_key="unused", max_retries=0)
    with client:
        [model] = [m.id for m in client.models.list()]
        assert model == str(tiny_model)
        answer = client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            max_tokens=10,
            temperature=0,  # type: ignore[arg-type]
        )
        assert answer.choices[0].message.content == expected
        stream = client.chat.completions.create(
            model=model,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=10,
            temperature=0,
            stream=True,
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected


async def test_openai_async_sdk(usvc: Server, tiny_model: Path, expected: str) -> None:
    client = openai.AsyncOpenAI(base_url=usvc.base_url + "/v1", api_key="unused", max_retries=0)
    async with client:
        stream = await client.chat.completions.create(
            model=str(tiny_model),
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=10,
            temperature=0,
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == expected


def test_openai_sdk_reports_errors(usvc: Server) -> None:
    client = openai.OpenAI(base_url=usvc.base_url + "/v1", api_key="unused", max_retries=0)
    with client, pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(model="m", messages=[], max_tokens=1)
    assert "messages" in str(caught.value)


async def test_langchain_chat_openai(usvc: Server, tiny_model: Path, expected: str) -> None:
    chat = ChatOpenAI(
        model=str(tiny_model),
        base_url=usvc.base_url + "/v1",
        api_key="unused",  # type: ignore[arg-type]
        max_tokens=10,  # type: ignore[call-arg]
        temperature=0,
        max_retries=0,
    )
    assert (await chat.ainvoke(MESSAGES)).text == expected
    assert chat.invoke(MESSAGES).text == expected
    assert "".join([c.text async for c in chat.astream(MESSAGES)]) == expected
