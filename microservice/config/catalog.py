"""The models this service serves, by the name clients send as ``model``, and their replicas.

From ``LLM_MODELS_FILE`` (YAML) when set; otherwise the one chat model of ``LLM_MODEL_NAME`` on
``LLM_MODEL_SERVER_ENDPOINT`` (plus an embedding model when ``LLM_EMBEDDING_MODEL_NAME`` is
set). Read once at start: a file that cannot be used stops the
process with one line naming the file and the entry.

```yaml
default: chat-small          # optional: the model of OPEA-form requests (else the first chat one)
models:
  - name: chat-small         # what clients send as `model`
    kind: chat               # chat (default), embedding, or rerank (a cross-encoder:
                             # /v1/rerank and /v1/score)
    endpoints: http://vllm-0:8008,http://vllm-1:8008   # or a YAML list; a DNS name counts once
                                                     # per address it resolves to
    served_model_name: meta-llama/Llama-3.1-8B-Instruct  # the model vLLM serves (default: name)
    fallbacks: [chat-xeon]   # optional: models of the same kind that serve its requests, in
                             # order, when its replicas are all down or its waiting room refuses,
                             # or when a prompt is over its context length
  - name: sql-team           # a LoRA adapter of a chat model: served by that model's replicas
    kind: adapter
    base: chat-small
    served_model_name: sql-lora   # the adapter's name in vLLM (default: name)
    path: /models/adapters/sql    # optional: where a replica loads it from at run time
```
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from microservice.config.files import read_yaml

ModelKind = Literal["chat", "embedding", "rerank", "adapter"]
URL_PATTERN = re.compile(r"^https?://[^\s/,]+(/[^\s,]*)?$")


def endpoint_list(value: object) -> list[str]:
    """A comma-separated string or a list of base URLs, each checked, trailing ``/`` dropped,
    each once in the order given."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError("give one base URL, a comma-separated list, or a YAML list of them")
    urls = [str(item).strip().rstrip("/") for item in items]
    for url in urls:
        if not URL_PATTERN.match(url):
            raise ValueError(
                f"{url!r} is not a base URL: give http(s)://host:port (without /v1), or a "
                "comma-separated list of them"
            )
    return list(dict.fromkeys(urls))


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    kind: ModelKind = "chat"
    endpoints: list[str] = []
    served_model_name: str = ""
    fallbacks: list[str] = []
    base: str = ""  # an adapter's chat model
    path: str = ""  # where an adapter is loaded from at run time (on the replica)

    @field_validator("endpoints", mode="before")
    @classmethod
    def _endpoints(cls, value: object) -> list[str]:
        return [] if value == [] else endpoint_list(value)

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if not self.served_model_name:
            object.__setattr__(self, "served_model_name", self.name)
        if self.kind == "adapter":
            if not self.base or self.endpoints:
                raise ValueError(
                    f"adapter {self.name!r}: name its chat model as `base`, and no `endpoints` "
                    "(it is served by its base model's replicas)"
                )
        elif self.base or self.path:
            raise ValueError(f"model {self.name!r}: `base` and `path` are for adapters only")
        elif not self.endpoints:
            raise ValueError(f"model {self.name!r}: `endpoints` is required")
        return self

    @property
    def serves(self) -> ModelKind:
        """The kind of requests it answers: an adapter answers chat's."""
        return "chat" if self.kind == "adapter" else self.kind


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: list[ModelSpec] = Field(min_length=1)
    default: str = ""

    @model_validator(mode="after")
    def _check(self) -> Catalog:
        names = [m.name for m in self.models]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"model names must be unique; given more than once: {twice}")
        kinds = {m.name: m.serves for m in self.models}
        chat = [m.name for m in self.models if m.kind == "chat"]
        for model in self.models:
            if model.kind == "adapter" and model.base not in chat:
                raise ValueError(
                    f"adapter {model.name!r}: base {model.base!r} is not a chat model of the file"
                )
            for fallback in model.fallbacks:
                if fallback not in kinds or fallback == model.name:
                    raise ValueError(
                        f"model {model.name!r}: fallback {fallback!r} is not another of the "
                        f"models {names}"
                    )
                if kinds[fallback] != model.serves:
                    raise ValueError(
                        f"model {model.name!r}: fallback {fallback!r} serves {kinds[fallback]}, "
                        f"not {model.serves}"
                    )
            if len(set(model.fallbacks)) != len(model.fallbacks):
                raise ValueError(f"model {model.name!r}: a fallback is listed twice")
        if not self.default:
            object.__setattr__(self, "default", chat[0] if chat else names[0])
        elif self.default not in names:
            raise ValueError(f"default {self.default!r} is not one of the models {names}")
        return self


def read_catalog(path: Path) -> Catalog:
    """The models file; ValueError with one line saying what is wrong and where."""
    return read_yaml(path, Catalog, shape="a mapping with a `models` list", quote_parse_errors=True)
