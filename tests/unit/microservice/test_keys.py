"""The API keys file: lookup by key, and reloads that replace keys without a restart (a rename
as a Kubernetes Secret volume does it included), keeping the old keys when the new file is bad."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

from microservice.auth.keys import read_keys
from microservice.auth.store import KeyStore

KEY_A = "sk-team-a-0123456789"
KEY_B = "sk-team-b-9876543210"


def keys_yaml(*entries: str) -> str:
    return "keys:\n" + "".join(entries)


def plain(name: str, key: str, extra: str = "") -> str:
    return f"  - name: {name}\n    key: {key}\n{extra}"


def hashed(name: str, key: str) -> str:
    return f"  - name: {name}\n    key_sha256: {hashlib.sha256(key.encode()).hexdigest()}\n"


def test_plain_and_hashed_keys_are_found_by_the_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(
        keys_yaml(plain("a", KEY_A, "    rpm: 5\n    models: [m1]\n"), hashed("b", KEY_B))
    )
    table = read_keys(path)
    a, b = table.find(KEY_A), table.find(KEY_B)
    assert a is not None and a.name == "a" and a.rpm == 5 and a.may_use("m1")
    assert not a.may_use("m2")
    assert b is not None and b.name == "b" and b.may_use("anything")
    assert table.find(KEY_A + "x") is None
    assert table.find("") is None


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("  - name: a\n", "exactly one of"),
        (f"  - name: a\n    key: {KEY_A}\n    key_sha256: '{'0' * 64}'\n", "exactly one of"),
        ("  - name: a\n    key_sha256: xyz\n", "keys.0.key_sha256"),
        ("  - name: a\n    key: short\n", "keys.0.key"),
        (f"  - name: 'bad name'\n    key: {KEY_A}\n", "keys.0.name"),
        (plain("a", KEY_A) + plain("a", KEY_B), "unique"),
        (plain("a", KEY_A) + plain("b", KEY_A), "listed twice"),
    ],
)
def test_bad_entries_are_refused_without_quoting_a_key(
    tmp_path: Path, entry: str, says: str
) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(keys_yaml(entry))
    with pytest.raises(ValueError) as caught:
        read_keys(path)
    assert says in str(caught.value)
    assert KEY_A not in str(caught.value) and KEY_B not in str(caught.value)


def test_reload_on_change_and_bad_file_keeps_previous_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(keys_yaml(plain("a", KEY_A)))
    store = KeyStore(path, reload_s=1)
    assert not store.reload_if_changed()  # nothing changed
    path.write_text(keys_yaml(plain("b", KEY_B)))
    assert store.reload_if_changed()
    assert store.table.find(KEY_A) is None and store.table.find(KEY_B) is not None
    with caplog.at_level(logging.WARNING):
        path.write_text(f"keys: [{{name: c, key: {KEY_A}, rpm: -1}}]")
        assert not store.reload_if_changed()
    assert store.table.find(KEY_B) is not None  # the keys in force stay
    assert "previous keys kept" in caplog.text and KEY_A not in caplog.text


def test_reload_when_a_secret_volume_swaps_its_data_link(tmp_path: Path) -> None:
    """Kubernetes writes a new directory and renames a symlink over ``..data``; the file the
    service reads is a symlink through it, whose own stat never changes."""
    for name, entry in (("v1", plain("a", KEY_A)), ("v2", plain("b", KEY_B))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "keys.yaml").write_text(keys_yaml(entry))
    os.symlink("v1", tmp_path / "..data")
    os.symlink("..data/keys.yaml", tmp_path / "keys.yaml")
    store = KeyStore(tmp_path / "keys.yaml", reload_s=1)
    assert store.table.find(KEY_A) is not None
    os.symlink("v2", tmp_path / "..data_tmp")
    os.rename(tmp_path / "..data_tmp", tmp_path / "..data")
    assert store.reload_if_changed()
    assert store.table.find(KEY_A) is None and store.table.find(KEY_B) is not None
