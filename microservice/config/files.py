"""The YAML files settings name (models, API keys): read once, checked by a pydantic model,
and every problem said in one line for the start-up error or the reload log."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from common.config_errors import first_problem

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_yaml(path: Path, model: type[ModelT], *, shape: str, quote_parse_errors: bool) -> ModelT:
    """``path`` as ``model``; ValueError with one line saying what is wrong and where.

    ``shape`` says what the top level must be; ``quote_parse_errors=False`` keeps the YAML
    parser's message out (it quotes the offending line, which may hold a secret)."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot read it: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        detail = f": {' '.join(str(error).split())}" if quote_parse_errors else ""
        raise ValueError(f"not YAML{detail}") from None
    if not isinstance(data, dict):
        raise ValueError(f"must be {shape}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        where, message = first_problem(error.errors())
        raise ValueError(f"{where}: {message}" if where else message) from None
