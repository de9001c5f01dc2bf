"""Media parts by URL: data URLs pass, a URL vLLM would fetch is named by its field's path."""

from __future__ import annotations

from typing import Any

import pytest

from microservice.errors import RemoteMediaRefused
from microservice.forms.media import media_urls, refuse_remote_media

DATA = "data:image/png;base64,iVBORw0KGgo="


def chat(*parts: dict[str, Any]) -> dict[str, Any]:
    user = {"role": "user", "content": [{"type": "text", "text": "t"}, *parts]}
    return {"messages": [{"role": "system", "content": "s"}, user]}


def test_every_media_part_of_chat_and_responses_is_found() -> None:
    body = chat(
        {"type": "image_url", "image_url": {"url": DATA}},
        {"type": "audio_url", "audio_url": {"url": "https://a/x.wav"}},
        {"type": "video_url", "video_url": "https://v/x.mp4"},
    )
    assert list(media_urls(body)) == [
        ("messages.1.content.1.image_url.url", DATA),
        ("messages.1.content.2.audio_url.url", "https://a/x.wav"),
        ("messages.1.content.3.video_url", "https://v/x.mp4"),
    ]
    responses = {
        "input": [{"role": "user", "content": [{"type": "input_image", "image_url": DATA}]}]
    }
    assert list(media_urls(responses)) == [("input.0.content.0.image_url", DATA)]
    assert list(media_urls({"messages": "not a list", "input": "text"})) == []


def test_data_urls_pass_and_the_first_fetched_url_is_named() -> None:
    refuse_remote_media(chat({"type": "image_url", "image_url": {"url": DATA}}))
    with pytest.raises(RemoteMediaRefused) as caught:
        refuse_remote_media(
            chat(
                {"type": "image_url", "image_url": {"url": DATA}},
                {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}},
            )
        )
    assert caught.value.param == "messages.1.content.2.image_url.url"
    assert caught.value.status == 422 and "LLM_REMOTE_MEDIA" in caught.value.message
