"""The request bodies each target is sent, and how its stream shows the first generated text.

Every target generates the same number of tokens per request: the OpenAI form sets
``ignore_eos``; the OPEA form cannot carry it, so it asks for greedy decoding (temperature 0)
of a prompt whose greedy continuation has no end-of-sequence within the lengths used here
(``bench`` checks this on vLLM's own token counter, per segment).
"""

from __future__ import annotations

import re
from typing import Literal

import orjson

Form = Literal["openai", "opea"]

PROMPT = "tell me a story about a fast cat and a slow dog running under the blue sky"

# The first event that carries text: OPEA events are ``data: <repr of a non-empty chunk>``;
# OpenAI chunks carry ``"content":"<at least one character>"`` (the role chunk has "").
FIRST_TEXT: dict[Form, re.Pattern[bytes]] = {
    "opea": re.compile(rb"data: (?!\[DONE\])\S"),
    "openai": re.compile(rb'"content":"[^"]'),
}


def body(form: Form, model: str, max_tokens: int, stream: bool) -> bytes:
    """One request body, serialised once per segment (the load generator sends these bytes)."""
    if form == "opea":
        opea = {
            "messages": {"system": "", "user": PROMPT},
            "max_new_tokens": max_tokens,
            "temperature": 0,
            "streaming": stream,
        }
        return orjson.dumps(opea)
    openai = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": stream,
    }
    return orjson.dumps(openai)
