"""Read calibration prompts from the file formats operators already have, and refuse bad ones.

Upstream (the Gaudi plugin's ``calibration/``) uses a pickled pandas DataFrame: either the
MLCommons source with ``system_prompt`` and ``question`` columns, or the prepared set with an
``input`` column. JSONL and plain text are accepted for convenience. Every problem is one
``JobError`` line that names the file and the row, raised before any model is loaded.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fp8_quant.errors import JobError

SUFFIXES = (".pkl", ".pickle", ".jsonl", ".txt")
TEXT_KEYS = ("input", "text", "prompt")


@dataclass(frozen=True)
class ChatSample:
    """A row with a system prompt and a question; the model's chat template renders it."""

    system: str
    question: str


Sample = str | ChatSample


@dataclass(frozen=True)
class Dataset:
    path: Path
    samples: list[Sample]
    sha256: str


_BUILTINS = {"list", "dict", "tuple", "set", "frozenset", "str", "int", "float", "bool"}
_BUILTINS |= {"bytes", "bytearray", "complex", "slice", "range"}
_SAFE_GLOBALS = {
    "builtins": _BUILTINS,
    "__builtin__": _BUILTINS,
    "collections": {"OrderedDict"},
    "_codecs": {"encode"},
    "copyreg": {"_reconstructor"},
    "datetime": {"date", "datetime", "timedelta", "timezone"},
}
_NUMPY_MODULES = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.dtypes"}
_NUMPY_MODULES |= {"numpy.core.numeric", "numpy._core.numeric"}
_NUMPY_NAMES = {"ndarray", "dtype", "_reconstruct", "_frombuffer", "scalar"}


def _pandas_global_allowed(module: str, name: str) -> bool:
    """Classes and unpickle helpers of pandas' data structures; no readers, no eval."""
    if module != "pandas" and not module.startswith(
        ("pandas.core.", "pandas._libs.", "pandas.arrays")
    ):
        return False
    if module.startswith("pandas.core.computation"):
        return False
    return name[:1].isupper() or name.startswith(("_unpickle", "_new_", "__pyx_unpickle"))


class _DataUnpickler(pickle.Unpickler):
    """Loads containers, strings, numpy arrays and pandas frames, and nothing that runs code."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = name in _SAFE_GLOBALS.get(module, set())
        allowed |= module in _NUMPY_MODULES and (name in _NUMPY_NAMES or name.endswith("DType"))
        allowed |= _pandas_global_allowed(module, name)
        if not allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _rows_from_pickle(path: Path, data: bytes) -> list[object]:
    import io

    try:
        obj = _DataUnpickler(io.BytesIO(data)).load()
    except ModuleNotFoundError as error:
        raise JobError(f"cannot read {path}: needs the Python module {error.name!r}") from None
    except Exception as error:
        raise JobError(f"{path} is not a readable calibration pickle: {error}") from None
    if hasattr(obj, "columns") and hasattr(obj, "to_dict"):  # a pandas DataFrame
        return list(obj.to_dict("records"))
    if isinstance(obj, list | tuple):
        return list(obj)
    raise JobError(
        f"{path}: expected a DataFrame or a list of prompts in the pickle, got {type(obj).__name__}"
    )


def _rows_from_jsonl(path: Path, text: str) -> list[object]:
    rows: list[object] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise JobError(f"{path}: line {number} is not JSON ({error.msg})") from None
    return rows


def to_sample(row: object, where: str) -> Sample:
    """A text prompt or a (system, question) pair; anything else is refused with its place."""
    if isinstance(row, dict):
        for key in TEXT_KEYS:
            if key in row:
                return _text(row[key], f"{where} field {key!r}")
        if "question" in row:
            question = _text(row["question"], f"{where} field 'question'")
            system = row.get("system_prompt")
            # pandas stores a missing system prompt as NaN; treat it as none.
            return ChatSample(system=system if isinstance(system, str) else "", question=question)
        keys = ", ".join((*TEXT_KEYS, "question"))
        raise JobError(f"{where} has none of the fields {keys}")
    return _text(row, where)


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise JobError(f"{where} is not text (got {type(value).__name__})")
    if not value.strip():
        raise JobError(f"{where} is empty")
    return value


def parse_rows(path: Path, data: bytes) -> list[object]:
    """Rows as the file holds them, chosen by suffix; a suffix not listed is refused."""
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        return _rows_from_pickle(path, data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise JobError(f"{path} is not UTF-8 text") from None
    if suffix == ".jsonl":
        return _rows_from_jsonl(path, text)
    return [line for line in text.splitlines() if line.strip()]


def load(path: Path, max_samples: int | None = None) -> Dataset:
    """Read and check every row (up to ``max_samples``); an empty set is an error."""
    if path.suffix.lower() not in SUFFIXES:
        allowed = ", ".join(SUFFIXES)
        raise JobError(f"FP8_DATASET_PATH={str(path)!r}: unsupported file type (use {allowed})")
    if not path.is_file():
        raise JobError(f"FP8_DATASET_PATH={str(path)!r}: no such file")
    data = path.read_bytes()
    rows = parse_rows(path, data)[:max_samples]
    samples = [to_sample(row, f"{path}: row {i}") for i, row in enumerate(rows, start=1)]
    if not samples:
        raise JobError(f"{path}: no calibration prompts (an empty set measures nothing)")
    return Dataset(path=path, samples=samples, sha256=hashlib.sha256(data).hexdigest())


def render(samples: Iterable[Sample], tokenizer: Any) -> list[str]:
    """Prompt text as the model will see it; chat rows go through the model's chat template."""
    prompts = []
    for sample in samples:
        if isinstance(sample, str):
            prompts.append(sample)
            continue
        messages = [
            {"role": "system", "content": sample.system},
            {"role": "user", "content": sample.question},
        ]
        if getattr(tokenizer, "chat_template", None):
            prompts.append(tokenizer.apply_chat_template(messages, tokenize=False))
        else:  # upstream's fallback for models without a template
            prompts.append(f"{sample.system}. {sample.question}")
    return prompts
