"""The API keys file and the lookup of a presented key.

```yaml
keys:
  - name: team-a            # shown in logs and metrics; the key itself never is
    key_sha256: 3f1c...     # hex SHA-256 of the key (or `key: <plain>`)
    rpm: 600                # requests per minute (optional)
    tpm: 200000             # prompt + completion tokens per minute (optional)
    models: [my-model]      # allowed models (optional; default all)
```

Only SHA-256 digests are kept in memory, plain keys are hashed as they are read. A presented
key is hashed once and compared with every digest in constant time, so neither the time taken
nor an early exit tells how much of a key was right.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from microservice.config_files import read_yaml

HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
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


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as the service uses it: its name and limits, never the key."""

    name: str
    rpm: int | None = None
    tpm: int | None = None
    models: frozenset[str] | None = None

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


class KeyTable:
    """Digest → key, and the constant-time lookup."""

    def __init__(self, entries: list[KeyEntry]) -> None:
        self._entries = [
            (
                e.sha256,
                ApiKey(e.name, e.rpm, e.tpm, None if e.models is None else frozenset(e.models)),
            )
            for e in entries
        ]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def keys(self) -> list[ApiKey]:
        return [key for _, key in self._entries]

    def find(self, presented: str) -> ApiKey | None:
        wanted = digest(presented)
        found = None
        for sha, key in self._entries:  # no early exit: every digest is compared
            if hmac.compare_digest(sha, wanted):
                found = key
        return found


def read_keys(path: Path) -> KeyTable:
    """The keys file; ValueError with one line saying what is wrong (never a key's value: the
    YAML parser's message, which quotes the line, is left out)."""
    keys = read_yaml(path, KeysFile, "a mapping with a `keys` list", quote_parse_errors=False)
    return KeyTable(keys.keys)
