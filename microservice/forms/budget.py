"""The token budget a request asks for, checked against the model's context length."""

from __future__ import annotations

from microservice.errors import OverContext


def refuse_over_context(asked: dict[str, int | None], max_model_len: int | None) -> None:
    """422 naming the first budget field over the model's context length."""
    if max_model_len is None:
        return
    for field, value in asked.items():
        if value is not None and value > max_model_len:
            raise OverContext(
                f"{field}: {value} is over the model's context length of {max_model_len} tokens",
                param=field,
            )
