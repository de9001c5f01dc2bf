"""The API keys file (``LLM_API_KEYS_FILE``), read and checked; ``auth`` turns it into the
table a presented key is looked up in.

```yaml
keys:
  - name: team-a            # shown in logs and metrics; the key itself never is
    key_sha256: 3f1c...     # hex SHA-256 of the key (or `key: <plain>`)
    rpm: 600                # requests per minute (optional)
    tpm: 200000             # prompt + completion tokens per minute (optional)
    models: [my-model]      # allowed models (optional; default all)
    weight: 2               # share of the replicas' slots against other keys (default 1)
    priority: interactive   # interactive (default) or batch: served only when no
                            # interactive request waits, and refused first under overload
    tokens_per_day: 5000000     # budget per UTC day (optional)
    tokens_per_month: 90000000  # budget per UTC calendar month (optional)
```
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from microservice.config.files import read_yaml

HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
PriorityClass = Literal["interactive", "batch"]
PRIORITY_CLASSES: tuple[PriorityClass, ...] = ("interactive", "batch")  # first served first
NAME = re.compile(r"^[A-Za-z0-9._:@/-]{1,64}$")  # a metrics label and a log field


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME.pattern)
    key_sha256: str | None = Field(None, pattern=HEX_DIGEST.pattern)
    key: str | None = Field(None, min_length=8, repr=False)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    models: list[str] | None = None
    weight: float = Field(1.0, gt=0, le=1000)
    priority: PriorityClass = "interactive"
    tokens_per_day: int | None = Field(None, ge=1)
    tokens_per_month: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_key(self) -> KeyEntry:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of `key_sha256` and `key`")
        return self

    @property
    def sha256(self) -> bytes:
        return bytes.fromhex(self.key_sha256) if self.key_sha256 else digest(self.key or "")


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[KeyEntry]

    @model_validator(mode="after")
    def _unique(self) -> KeysFile:
        names = [k.name for k in self.keys]
        if len(set(names)) != len(names):
            raise ValueError("key names must be unique")
        digests = [k.sha256 for k in self.keys]
        if len(set(digests)) != len(digests):
            raise ValueError("the same key is listed twice")
        return self


def read_keys_file(path: Path) -> KeysFile:
    """The keys file; ValueError with one line saying what is wrong (never a key's value: the
    YAML parser's message, which quotes the line, is left out)."""
    return read_yaml(path, KeysFile, shape="a mapping with a `keys` list", quote_parse_errors=False)
