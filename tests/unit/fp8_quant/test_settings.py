"""Settings of the calibration job: defaults, one-line refusals, the path vLLM reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config_errors import ConfigError
from fp8_quant.__main__ import main
from fp8_quant.settings import load_settings
from model_server.settings import ModelServerSettings


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FP8_DATASET_PATH", "/data/prompts.pkl")
    s = load_settings()
    assert s.llm_device == "hpu"
    assert s.fp8_device_for_scales == "GAUDI2"
    assert (s.fp8_batch_size, s.vllm_tp_size, s.fp8_max_samples) == (1, 1, None)


def test_dataset_path_is_required(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="FP8_DATASET_PATH is required"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LLM_DEVICE", "tpu"),
        ("FP8_BATCH_SIZE", "0"),
        ("FP8_MAX_SAMPLES", "-3"),
        ("FP8_MAX_SEQ_LEN", "long"),
        ("FP8_DEVICE_FOR_SCALES", "GAUDI1"),
        ("VLLM_TP_SIZE", "0"),
    ],
)
def test_wrong_value_names_the_variable(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    clean_env.setenv("FP8_DATASET_PATH", "/data/prompts.txt")
    clean_env.setenv(name, value)
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fp8_quant: invalid configuration: ")
    assert f"{name}={value!r}" in err
    assert len(err.splitlines()) == 1


def test_case_is_normalised(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FP8_DATASET_PATH", "x.txt")
    clean_env.setenv("LLM_DEVICE", " CPU ")
    clean_env.setenv("FP8_DEVICE_FOR_SCALES", "gaudi3")
    s = load_settings()
    assert (s.llm_device, s.fp8_device_for_scales) == ("cpu", "GAUDI3")


def test_result_is_where_the_model_server_looks(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FP8_DATASET_PATH", "x.txt")
    clean_env.setenv("HF_HOME", "/cache")
    clean_env.setenv("LLM_VLLM_MODEL_NAME", "meta-llama/Llama-3.1-8B-Instruct/")
    s = load_settings()
    server = ModelServerSettings()
    assert s.quant_config_path == server.resolved_quant_config
    assert s.result_dir == Path("/cache/inc/Llama-3.1-8B-Instruct")


def test_token_is_never_in_the_summary(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FP8_DATASET_PATH", "x.txt")
    clean_env.setenv("HF_TOKEN", "hf_secret_value")
    s = load_settings()
    assert "hf_secret_value" not in str(s.summary())
    assert "hf_secret_value" not in repr(s)
    assert s.summary()["hf_token"] == "***"


def test_env_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.env")
