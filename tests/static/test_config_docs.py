"""docs/configuration.md is generated from the settings classes and cannot drift from them.

Regenerating gives the committed file; every field of every settings class has a description;
the generator lists every field with its type, default and rule (shown on a throwaway settings
class, including how it fails).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Literal

import pytest
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from common.config_loading import SETTINGS_CONFIG, lowercase, strict_bool
from harness.processes import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "gen_config_docs.py"


def load_generator() -> ModuleType:
    """scripts/ is not a package: load the generator from its file."""
    spec = importlib.util.spec_from_file_location("gen_config_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen = load_generator()


def table_rows(markdown: str) -> dict[str, list[str]]:
    """``| `NAME` | a | b |`` rows → {NAME: [a, b, ...]} (escaped pipes kept inside cells)."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").replace("\\|", "\0").split("|")]
            rows[cells[0].strip("`")] = [c.replace("\0", "\\|") for c in cells[1:]]
    return rows


# --- the committed page ---


def test_committed_docs_are_what_the_generator_writes() -> None:
    committed = (REPO_ROOT / gen.OUTPUT).read_text()
    assert committed == gen.render(), "docs/configuration.md is out of date: run `make docs`"


def test_check_mode_passes_on_the_committed_docs() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr + "\nrun `make docs`"


def test_check_mode_fails_with_a_diff_on_a_stale_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gen, "REPO_ROOT", tmp_path)
    stale = tmp_path / gen.OUTPUT
    stale.parent.mkdir(parents=True)
    stale.write_text(gen.render().replace("| `LLM_USVC_WORKERS` |", "| `LLM_WORKERS` |"))
    assert gen.main(["--check"]) == 1
    out, err = capsys.readouterr()
    assert "--- docs/configuration.md (committed)" in out
    assert "-| `LLM_WORKERS` |" in out and "+| `LLM_USVC_WORKERS` |" in out
    assert "run `make docs`" in err
    # Writing brings it up to date.
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0


def test_docs_hold_no_machine_paths_and_no_secret_values() -> None:
    text = (REPO_ROOT / gen.OUTPUT).read_text()
    assert str(Path.home()) + "/" not in text
    assert str(REPO_ROOT) not in text
    assert "`~/.cache/huggingface`" in text  # hf_home's default, as the expression


def test_docs_example_error_is_what_the_model_server_prints(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("VLLM_TP_SIZE", "0")
    result = subprocess.run(
        [sys.executable, "-m", "model_server", "--dry-run"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line == gen.example_error()
    assert f"  {line}\n" in (REPO_ROOT / gen.OUTPUT).read_text()


# --- every field, described and listed ---


@pytest.mark.parametrize("service", gen.SERVICES, ids=lambda s: s.settings.__name__)
def test_every_field_has_a_description(service: object) -> None:
    settings = service.settings  # type: ignore[attr-defined]
    missing = [n for n, f in settings.model_fields.items() if not (f.description or "").strip()]
    assert missing == [], f"{settings.__name__}: fields without a description"


@pytest.mark.parametrize("service", gen.SERVICES, ids=lambda s: s.settings.__name__)
def test_the_docs_list_every_field_of_every_service(service: object) -> None:
    settings = service.settings  # type: ignore[attr-defined]
    section = gen.section(service)
    assert section in (REPO_ROOT / gen.OUTPUT).read_text()
    rows = table_rows(section)
    assert list(rows) == [name.upper() for name in settings.model_fields]
    for name, field in settings.model_fields.items():
        assert rows[name.upper()][-1] == " ".join(field.description.split())


class Throwaway(BaseSettings):
    """A settings class with one field of each kind the generator has to render."""

    model_config = SETTINGS_CONFIG

    tw_mode: Literal["fast", "slow"] = Field("fast", description="A choice.")
    tw_level: Literal["LOW", "HIGH"] = Field("LOW", description="A choice in exact case.")
    tw_count: int | None = Field(None, ge=2, le=9, description="A bounded count.")
    tw_ratio: float = Field(0.5, gt=0, lt=1, description="A ratio.")
    tw_size: int = Field(4096, ge=1024, description="A size in bytes.")
    tw_url: str = Field("http://x", pattern=r"^https?://", description="A URL.")
    tw_name: str = Field("n", min_length=1, description="A name | with a pipe.")
    tw_flag: bool = Field(False, description="A strict flag.")
    tw_lax: bool = Field(True, description="A flag read by pydantic alone.")
    tw_cache: Path = Field(Path.home() / "tw-cache", description="Under <HOME>, `<kept>`.")
    tw_secret: SecretStr | None = Field(SecretStr("hunter2"), description="A token.")
    tw_required: Path = Field(description="Must be given.")

    _lowercase = field_validator("tw_mode", mode="before")(lowercase)
    _booleans = field_validator("tw_flag", mode="before")(strict_bool)


THROWAWAY_ROWS = {
    "TW_MODE": ["one of fast\\|slow", "`fast`", "one of these, any case", "A choice."],
    "TW_LEVEL": [
        "one of LOW\\|HIGH",
        "`LOW`",
        "one of these, exactly",
        "A choice in exact case.",
    ],
    "TW_COUNT": ["int, optional", "*unset*", "2 to 9", "A bounded count."],
    "TW_RATIO": ["float", "`0.5`", "> 0; < 1", "A ratio."],
    "TW_SIZE": ["int", "`4096`", "≥ 1024", "A size in bytes."],
    "TW_URL": ["str", "`http://x`", "matches `^https?://`", "A URL."],
    "TW_NAME": ["str", "`n`", "not empty", "A name \\| with a pipe."],
    "TW_FLAG": [
        "bool",
        "`false`",
        "true/false, 1/0, yes/no, on/off, any case",
        "A strict flag.",
    ],
    "TW_LAX": ["bool", "`true`", "a pydantic boolean", "A flag read by pydantic alone."],
    "TW_CACHE": ["path", "`~/tw-cache`", "any", "Under &lt;HOME>, `<kept>`."],
    "TW_SECRET": ["str (secret), optional", "set (secret, not shown)", "any", "A token."],
    "TW_REQUIRED": ["path", "required", "any", "Must be given."],
}


def test_the_generator_renders_each_kind_of_field() -> None:
    section = gen.section(gen.Service("Throwaway", Throwaway, "Read by nobody."))
    assert section.startswith("## Throwaway\n\nRead by nobody.\n\n| Variable |")
    assert table_rows(section) == THROWAWAY_ROWS
    assert "hunter2" not in section


def test_a_field_missing_from_the_docs_fails_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gen, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(gen, "SERVICES", (gen.Service("Throwaway", Throwaway, "Intro."),))
    assert gen.main([]) == 0  # the committed page, before the new field

    class Extended(Throwaway):
        tw_new: int = Field(3, ge=0, description="Added after the docs were written.")

    monkeypatch.setattr(gen, "SERVICES", (gen.Service("Throwaway", Extended, "Intro."),))
    assert gen.main(["--check"]) == 1
    out, _ = capsys.readouterr()
    assert "+| `TW_NEW` | int | `3` | ≥ 0 | Added after the docs were written. |" in out


def test_a_field_without_description_stops_the_generator() -> None:
    class Undescribed(BaseSettings):
        tw_bare: int = 1

    with pytest.raises(ValueError, match=r"Undescribed\.tw_bare has no description"):
        gen.section(gen.Service("Undescribed", Undescribed, "Intro."))


def test_a_constraint_without_words_stops_the_generator() -> None:
    class Unknown(BaseSettings):
        tw_even: int = Field(2, multiple_of=2, description="An even number.")

    with pytest.raises(ValueError, match="no words for the constraint"):
        gen.section(gen.Service("Unknown", Unknown, "Intro."))
