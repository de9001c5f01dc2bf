"""The bodies of the OpenAPI document (``openapi.py``): what each route answers (vLLM's answer
passes through, so only the fields this service guarantees are required), the SSE events of the
streaming routes, the error envelope, and the example requests schemathesis sends first."""

from __future__ import annotations

from typing import Any

from microservice import paths

JSON = "application/json"


def obj(required: list[str], **properties: Any) -> dict[str, Any]:
    """An object with these fields required; others allowed (vLLM's answers carry more)."""
    return {"type": "object", "required": required, "properties": properties}


def list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


STRING: dict[str, Any] = {"type": "string"}
ERROR = obj(
    ["error"],
    error=obj(
        ["message", "type", "param", "code"],
        message=STRING,
        type=STRING,
        param={"type": ["string", "null"]},
        code={"type": ["string", "integer"]},  # OpenAI's code where it has one, else the status
    ),
)
CHAT_COMPLETION = obj(
    ["id", "object", "choices"],
    object={"const": "chat.completion"},
    choices=list_of(obj(["index", "message"], message=obj(["role"]))),
)
OPEA_ANSWER = obj(
    ["id", "text", "prompt", "streaming"],
    text=STRING,
    prompt=STRING,
    streaming={"type": "boolean"},
)
TEXT_COMPLETION = obj(
    ["id", "object", "choices"],
    object={"const": "text_completion"},
    choices=list_of(obj(["index", "text"], text=STRING)),
)
RESPONSE = obj(
    ["id", "object", "output", "status"],
    object={"const": "response"},
    output=list_of({"type": "object"}),
    status=STRING,
)
EMBEDDINGS = obj(
    ["object", "data"],
    object={"const": "list"},
    # base64 encoding_format: a string
    data=list_of(obj(["index", "embedding"], embedding={"type": ["array", "string"]})),
)
RERANKED = obj(
    ["results"],
    results=list_of(obj(["index", "relevance_score"], relevance_score={"type": "number"})),
)
SCORES = obj(
    ["object", "data"],
    object={"const": "list"},
    data=list_of(obj(["index", "score"], score={"type": "number"})),
)
MODEL = obj(
    ["id", "object", "created", "owned_by", "kind", "max_model_len"],
    id=STRING,
    object={"const": "model"},
    kind={"enum": ["chat", "embedding", "rerank", "adapter"]},
    parent=STRING,  # an adapter's base model
    max_model_len={"type": ["integer", "null"]},
)
MODELS = obj(["object", "data"], object={"const": "list"}, data=list_of(MODEL))
HEALTH = obj(
    ["status", "model_server", "model", "max_model_len", "replicas", "models"],
    status={"enum": ["ok", "unavailable"]},
    model_server=obj(["endpoint", "ready", "reason"], ready={"type": "boolean"}),
    replicas=list_of({"type": "object"}),
    models={"type": "object"},
)


def _stream(chunk_object: str, *other_data: dict[str, Any]) -> dict[str, Any]:
    """One SSE event (schemathesis checks each): a JSON chunk, an in-band error, or [DONE]."""
    chunk = obj(["object", "choices"], object={"const": chunk_object}, choices=list_of({}))
    json_data = {"contentMediaType": JSON, "contentSchema": {"anyOf": [chunk, ERROR]}}
    data = {"anyOf": [{"const": "[DONE]"}, *other_data, {"pattern": "^\\{", **json_data}]}
    return obj(["data"], data=data)


CHAT_STREAM = _stream("chat.completion.chunk", {"pattern": "^['\"]"})  # OPEA: repr of a text
COMPLETION_STREAM = _stream("text_completion")
# A Responses API event: its type on an `event:` line and in its JSON data.
RESPONSE_EVENT = obj(["type"], type=STRING)
RESPONSE_STREAM = obj(  # no [DONE]: its last event (response.completed...) ends it
    ["data"],
    event=STRING,
    data={
        "pattern": "^\\{",
        "contentMediaType": JSON,
        "contentSchema": {"anyOf": [RESPONSE_EVENT, ERROR]},
    },
)

QUESTION = "What is deep learning?"
DOCUMENTS = ["Deep learning trains layers of a network.", "A cat runs under the blue sky."]
# Request bodies, shown in the document and sent by schemathesis' examples phase.
EXAMPLES: dict[str, dict[str, Any]] = {
    paths.CHAT: {
        "opea": {"messages": {"system": "Be brief.", "user": QUESTION}, "max_new_tokens": 32},
        "opea_json": {"messages": {"user": QUESTION}, "max_new_tokens": 32, "streaming": False},
        "openai": {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 32},
        "openai_stream": {
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 32,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    },
    paths.COMPLETIONS: {
        "text": {"prompt": "Deep learning is", "max_tokens": 32},
        "stream": {"prompt": "Deep learning is", "max_tokens": 32, "stream": True},
    },
    paths.EMBEDDINGS: {"text": {"input": QUESTION}, "batch": {"input": ["one", "two"]}},
    paths.RESPONSES: {
        "text": {"input": QUESTION, "max_output_tokens": 32},
        "stream": {"input": QUESTION, "max_output_tokens": 32, "stream": True},
    },
    paths.RERANK: {
        "documents": {"query": QUESTION, "documents": DOCUMENTS},
        "top_n": {"query": QUESTION, "documents": DOCUMENTS, "top_n": 1},
    },
    paths.SCORE: {
        "one_to_many": {"text_1": QUESTION, "text_2": DOCUMENTS},
        "pairs": {"text_1": [QUESTION, QUESTION], "text_2": DOCUMENTS},
    },
}
