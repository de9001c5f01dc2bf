"""Facts about the served model that only vLLM knows (its context length), learned from vLLM's
``/v1/models`` on the first successful contact with a replica and kept for the app's life.

The replica probes learn it whenever a replica (re)joins the rotation; a request that arrives
before any probe succeeded asks for a check first (``ReplicaPool.check_now``), so the OPEA
default of 1024 new tokens is never sent to a model whose context is smaller just because no
probe had succeeded yet.
"""

from __future__ import annotations

from typing import Any


class ModelInfo:
    def __init__(self, model: str) -> None:
        self.model = model
        self._max_model_len: int | None = None
        self.known = False
        self.follows_adapters = False  # the catalog names adapters of it: probes list them

    @property
    def max_model_len(self) -> int | None:
        """The context length last learned (None until a replica listed the model once)."""
        return self._max_model_len

    def learn(self, entry: dict[str, Any]) -> None:
        """Keep what vLLM's ``/v1/models`` says about our model."""
        max_len = entry.get("max_model_len")
        self._max_model_len = int(max_len) if max_len else None
        self.known = True


def find_model(models: Any, name: str) -> dict[str, Any] | None:
    """Our model's entry in a ``/v1/models`` answer; ValueError when the answer is not one."""
    try:
        entries = {m["id"]: m for m in models["data"]}
    except (KeyError, TypeError) as error:
        raise ValueError("not a /v1/models answer") from error
    entry = entries.get(name)
    return entry if isinstance(entry, dict) else None
