"""``LLM_AUDIT_LOG``: where the audit lines go, checked at start, so that a file the service
could never write stops it at once instead of losing every line later."""

from __future__ import annotations

import os
from pathlib import Path

STDOUT = "stdout"
OFF = "off"


def audit_target(value: str) -> str:
    """``stdout`` or ``off`` (any case), or a file path whose folder exists and is writable
    (rotation renames files there); ValueError with what is wrong."""
    word = value.strip()
    if word.lower() in (STDOUT, OFF):
        return word.lower()
    path = Path(word)
    if path.is_dir():
        raise ValueError(f"is a folder; give a file path, `{STDOUT}` or `{OFF}`")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"the folder {str(folder)!r} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError("the file is not writable")
    return word
