"""A presented API key looked up in the keys in force.

Only SHA-256 digests are kept in memory, plain keys are hashed as they are read. A presented
key is hashed once and compared with every digest in constant time, so neither the time taken
nor an early exit tells how much of a key was right.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from microservice.config.keys_file import KeyEntry, PriorityClass, digest, read_keys_file


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as the service uses it: its name and limits, never the key."""

    name: str
    rpm: int | None = None
    tpm: int | None = None
    models: frozenset[str] | None = None
    weight: float = 1.0
    priority: PriorityClass = "interactive"
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


class KeyTable:
    """Digest → key, and the constant-time lookup."""

    def __init__(self, entries: list[KeyEntry]) -> None:
        self._entries = [(e.sha256, _api_key(e)) for e in entries]

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


def _api_key(entry: KeyEntry) -> ApiKey:
    return ApiKey(
        entry.name,
        entry.rpm,
        entry.tpm,
        None if entry.models is None else frozenset(entry.models),
        entry.weight,
        entry.priority,
        entry.tokens_per_day,
        entry.tokens_per_month,
    )


def read_keys(path: Path) -> KeyTable:
    """The keys file as a table; ValueError with one line, as ``read_keys_file``."""
    return KeyTable(read_keys_file(path).keys)
