"""Publishing: a complete folder replaces the old one atomically; crashes leave it intact."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from fp8_quant import publish
from fp8_quant.errors import JobError


def _folder(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "file").write_text(text)
    return path


def test_first_publish_renames(tmp_path: Path) -> None:
    target = tmp_path / "inc" / "model"
    temp = publish.new_temp(target)
    assert temp.parent == target.parent and temp.name.startswith(".model.tmp-")
    (temp / "file").write_text("new")
    publish.publish(temp, target)
    assert (target / "file").read_text() == "new"
    assert not temp.exists()


@pytest.mark.parametrize("exchange", [True, False])
def test_replace_existing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool) -> None:
    target = _folder(tmp_path / "model", "old")
    temp = publish.new_temp(target)
    (temp / "file").write_text("new")
    if not exchange:  # a file system without RENAME_EXCHANGE: the two-rename fallback
        monkeypatch.setattr(publish, "_exchange", lambda a, b: False)
    publish.publish(temp, target)
    assert (target / "file").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_exchange_swaps_contents(tmp_path: Path) -> None:
    first, second = _folder(tmp_path / "a", "A"), _folder(tmp_path / "b", "B")
    if not publish._exchange(first, second):
        pytest.skip("this file system has no RENAME_EXCHANGE")
    assert ((first / "file").read_text(), (second / "file").read_text()) == ("B", "A")


def test_clean_stale_removes_temps_and_restores_aside(tmp_path: Path) -> None:
    target = tmp_path / "model"
    _folder(tmp_path / ".model.tmp-abc", "partial")
    _folder(tmp_path / ".model.old-xyz", "previous")  # killed between the fallback's renames
    _folder(tmp_path / ".other.tmp-1", "not ours")
    removed = publish.clean_stale(target)
    assert [p.name for p in removed] == [".model.tmp-abc"]
    assert (target / "file").read_text() == "previous"
    assert (tmp_path / ".other.tmp-1").exists()
    _folder(tmp_path / ".model.old-2", "stale")  # target exists: the swap had finished
    assert [p.name for p in publish.clean_stale(target)] == [".model.old-2"]


def _hold_lock(
    target: Path, ready: multiprocessing.synchronize.Event, done: multiprocessing.synchronize.Event
) -> None:
    with publish.locked(target):
        ready.set()
        done.wait(10)


def test_lock_refuses_a_second_run(tmp_path: Path) -> None:
    target = tmp_path / "model"
    ctx = multiprocessing.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(target, ready, done))
    holder.start()
    try:
        assert ready.wait(10)
        with (
            pytest.raises(JobError, match=r"another calibration .* is running"),
            publish.locked(target),
        ):
            pass
    finally:
        done.set()
        holder.join(10)
    with publish.locked(target):  # released when the holder ends
        pass
