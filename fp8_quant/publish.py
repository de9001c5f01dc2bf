"""Put a finished result in place so that vLLM never sees half of one.

A run writes into a temporary folder beside the target (same file system), and only a complete
folder replaces the target, with one atomic ``renameat2(RENAME_EXCHANGE)``. A run killed at any
point leaves either the old result or the new one in place, and at worst a stale temporary
folder, which the next run removes. One lock file per model keeps two runs apart.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fp8_quant.errors import JobError

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _sibling(target: Path, kind: str) -> str:
    return f".{target.name}.{kind}-"


@contextlib.contextmanager
def locked(target: Path) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside the target; the kernel drops it if the process dies."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobError(f"another calibration of {target} is running ({lock_path})") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clean_stale(target: Path) -> list[Path]:
    """Remove temporary folders of killed runs; bring back a result a crash left aside."""
    removed = []
    parent = target.parent
    for kind in ("tmp", "old"):
        for path in sorted(parent.glob(_sibling(target, kind) + "*")):
            if kind == "old" and not target.exists():
                path.rename(target)  # killed between the two renames of the fallback swap
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def new_temp(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=_sibling(target, "tmp"), dir=target.parent))


def _exchange(first: Path, second: Path) -> bool:
    """Atomically swap two paths; False where the kernel or file system cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(first))


def publish(temp: Path, target: Path) -> None:
    """Make ``temp`` the target folder; the previous result is deleted only afterwards."""
    if not target.exists():
        temp.rename(target)
        return
    if _exchange(temp, target):
        shutil.rmtree(temp, ignore_errors=True)  # temp now holds the previous result
        return
    aside = Path(tempfile.mkdtemp(prefix=_sibling(target, "old"), dir=target.parent))
    aside.rmdir()
    target.rename(aside)
    temp.rename(target)
    shutil.rmtree(aside, ignore_errors=True)
