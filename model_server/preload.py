"""Find the libraries vLLM's CPU guide recommends preloading: tcmalloc and Intel OpenMP.

Both are optional: each is added to LD_PRELOAD only when it is installed, so a missing one
costs speed, never a failed start.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

TCMALLOC_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
IOMP_NAMES = ("libiomp5.so",)


def _library_dirs() -> list[Path]:
    dirs = [Path(sys.prefix) / "lib", Path(sys.base_prefix) / "lib"]
    dirs += [
        Path(p) for p in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
    ]
    return dirs


def _first(names: Iterable[str], dirs: list[Path]) -> str | None:
    for name in names:
        for folder in dirs:
            candidate = folder / name
            if candidate.is_file():
                return str(candidate)
    return None


def find_preload_libs(dirs: list[Path] | None = None) -> list[str]:
    """tcmalloc first, then Intel OpenMP, each if present."""
    search = dirs if dirs is not None else _library_dirs()
    found = [_first(TCMALLOC_NAMES, search), _first(IOMP_NAMES, search)]
    return [lib for lib in found if lib]
