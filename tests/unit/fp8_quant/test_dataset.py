"""Calibration prompts: every accepted format read, every bad file refused with one line."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from fp8_quant.dataset import ChatSample, load, render
from fp8_quant.errors import JobError


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_text_one_prompt_per_line(tmp_path: Path) -> None:
    data = load(_write(tmp_path / "p.txt", "first prompt\n\n  \nsecond prompt\n"))
    assert data.samples == ["first prompt", "second prompt"]
    assert len(data.sha256) == 64


def test_jsonl_strings_and_objects(tmp_path: Path) -> None:
    rows = [
        '"plain"',
        '{"text": "t"}',
        '{"prompt": "p"}',
        '{"input": "i"}',
        "",
        '{"question": "q"}',
    ]
    data = load(_write(tmp_path / "p.jsonl", "\n".join(rows)))
    assert data.samples == ["plain", "t", "p", "i", ChatSample(system="", question="q")]


def test_upstream_dataframe_pickle(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {"system_prompt": ["be brief", float("nan")], "question": ["why?", "how?"], "id": [1, 2]}
    )
    frame.to_pickle(tmp_path / "open_orca.pkl")
    data = load(tmp_path / "open_orca.pkl")
    assert data.samples == [ChatSample("be brief", "why?"), ChatSample("", "how?")]


def test_prepared_dataframe_uses_input_column(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pd.DataFrame({"question": ["q"], "input": ["<s>rendered"]}).to_pickle(tmp_path / "d.pkl")
    assert load(tmp_path / "d.pkl").samples == ["<s>rendered"]


def test_pickled_list_and_limit(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.pickle", pickle.dumps(["a", "b", "c"]))
    assert load(path, max_samples=2).samples == ["a", "b"]


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "evil.pkl", pickle.dumps([_Evil()]))
    with pytest.raises(JobError, match=r"refusing to load (posix|os)\.system"):
        load(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.csv", "a,b\n", "unsupported file type"),
        ("p.txt", "\n \n", "no calibration prompts"),
        ("p.jsonl", "", "no calibration prompts"),
        ("p.jsonl", '"ok"\n{broken\n', "line 2 is not JSON"),
        ("p.jsonl", '"ok"\n42\n', "row 2 is not text \\(got int\\)"),
        ("p.jsonl", '{"text": ["a"]}\n', "row 1 field 'text' is not text \\(got list\\)"),
        ("p.jsonl", '{"text": "  "}\n', "row 1 field 'text' is empty"),
        ("p.jsonl", '{"answer": "x"}\n', "row 1 has none of the fields"),
        ("p.pkl", pickle.dumps([]), "no calibration prompts"),
        ("p.pkl", pickle.dumps(["ok", None]), "row 2 is not text \\(got NoneType\\)"),
        ("p.pkl", pickle.dumps({"a": 1}), "expected a DataFrame or a list"),
        ("p.pkl", b"not a pickle", "not a readable calibration pickle"),
        ("p.txt", b"\xff\xfe\x00bad", "not UTF-8 text"),
    ],
)
def test_bad_files_are_refused(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    with pytest.raises(JobError, match=message) as caught:
        load(_write(tmp_path / name, content))
    assert "\n" not in str(caught.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="no such file"):
        load(tmp_path / "absent.pkl")
    (tmp_path / "dir.txt").mkdir()
    with pytest.raises(JobError, match="no such file"):
        load(tmp_path / "dir.txt")


class _Tokenizer:
    chat_template = "x"

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool) -> str:
        assert tokenize is False
        return json.dumps(messages)


def test_render_uses_chat_template_and_falls_back() -> None:
    samples = ["raw", ChatSample("sys", "q")]
    rendered = render(samples, _Tokenizer())
    assert rendered[0] == "raw"
    assert json.loads(rendered[1]) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "q"},
    ]
    plain = _Tokenizer()
    plain.chat_template = ""
    assert render(samples, plain) == ["raw", "sys. q"]
