"""Media in a request: OpenAI content parts that carry an image, audio or video by URL (chat's
``image_url``/``audio_url``/``video_url``, the Responses API's ``input_image``). They pass to
vLLM unchanged; this module only finds the URLs vLLM would fetch itself.

A ``data:`` URL carries its bytes in the body. Any other URL vLLM fetches from inside the
deployment's network, with the client choosing the address: that is off unless
``LLM_REMOTE_MEDIA`` allows it (docs/production-api.md#images).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from microservice.errors import RemoteMediaRefused

URL_PARTS = ("image_url", "audio_url", "video_url")  # chat: {"type": X, X: {"url"} or "url"}


def _part_urls(part: Any) -> Iterator[tuple[str, Any]]:
    """(where in the part, URL) for each media URL of one content part."""
    if not isinstance(part, dict):
        return
    kind = part.get("type")
    if kind in URL_PARTS:
        value = part.get(kind)
        if isinstance(value, dict):
            yield f"{kind}.url", value.get("url")
        else:
            yield kind, value
    elif kind == "input_image":  # the Responses API: {"type": "input_image", "image_url": "..."}
        yield "image_url", part.get("image_url")


def media_urls(body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(the field's path, as ``param`` names it, URL) for every media URL of a chat or
    Responses body."""
    for field in ("messages", "input"):
        items = body.get(field)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            content = item.get("content") if isinstance(item, dict) else None
            if not isinstance(content, list):
                continue
            for j, part in enumerate(content):
                for where, url in _part_urls(part):
                    yield f"{field}.{i}.content.{j}.{where}", url


def refuse_remote_media(body: dict[str, Any]) -> None:
    """422 naming the first media part that vLLM would have to fetch."""
    for param, url in media_urls(body):
        if isinstance(url, str) and not url.startswith("data:"):
            raise RemoteMediaRefused(
                f"{param}: only data: URLs are taken (the bytes in the request, base64); "
                "fetching media by URL is off (LLM_REMOTE_MEDIA)",
                param=param,
            )
