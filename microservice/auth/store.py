"""The API keys in force, reloaded when the keys file changes, without a restart.

The file is looked at every ``LLM_API_KEYS_RELOAD_S``: its identity and content (``os.stat``
follows symlinks, so a Kubernetes Secret volume, which swaps a ``..data`` symlink by rename,
counts as a change). A new file that cannot be used keeps the keys in force and logs why; the
start-up read already refused a bad file with one line (settings validation).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from pathlib import Path

from microservice.auth.keys import KeyTable, read_keys
from microservice.observability.logs import get_logger

Signature = tuple[int, int, int, int]


def _signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class KeyStore:
    def __init__(self, path: Path, reload_s: float) -> None:
        self._path = path
        self._reload_s = reload_s
        self._signature = _signature(path)
        self._digest = self._content_digest()
        self.table: KeyTable = read_keys(path)
        self._task: asyncio.Task[None] | None = None

    def _content_digest(self) -> bytes | None:
        try:
            return hashlib.sha256(self._path.read_bytes()).digest()
        except OSError:
            return None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._reload_s)
            try:
                self.reload_if_changed()
            except Exception:  # the watcher must outlive any one bad look at the file
                get_logger().exception("api keys reload failed; previous keys kept")

    def reload_if_changed(self) -> bool:
        """Read the file again if it changed; True when new keys took effect."""
        signature = _signature(self._path)
        if signature == self._signature:
            return False
        self._signature = signature
        digest = self._content_digest()
        if digest is not None and digest == self._digest:
            return False
        try:
            table = read_keys(self._path)
        except ValueError as error:
            get_logger().warning(
                "api keys file not reloaded; previous keys kept",
                extra={"fields": {"file": str(self._path), "reason": str(error)}},
            )
            return False
        self.table, self._digest = table, digest
        get_logger().info(
            "api keys reloaded",
            extra={"fields": {"file": str(self._path), "keys": [k.name for k in table.keys]}},
        )
        return True
