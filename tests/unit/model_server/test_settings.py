"""Settings: every variable parsed, every wrong value refused with one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common.config_errors import ConfigError
from common.constants import DEFAULT_MODEL
from model_server.__main__ import load_settings
from model_server.settings import ModelServerSettings


def test_defaults_match_design(clean_env: pytest.MonkeyPatch) -> None:
    s = load_settings(None)
    assert s.llm_device == "cpu"
    assert s.llm_vllm_model_name == DEFAULT_MODEL
    assert s.llm_vllm_port == 8008
    assert s.vllm_dtype == "bfloat16"
    assert s.if_fp8_quantization is False
    assert s.vllm_tp_size is None


@pytest.mark.parametrize(
    ("name", "value", "expected_fragment"),
    [
        ("VLLM_TP_SIZE", "0", "VLLM_TP_SIZE='0'"),
        ("VLLM_PP_SIZE", "-1", "VLLM_PP_SIZE='-1'"),
        ("VLLM_DTYPE", "float7", "VLLM_DTYPE='float7'"),
        ("LLM_VLLM_PORT", "70000", "LLM_VLLM_PORT='70000'"),
        ("LLM_VLLM_PORT", "http", "LLM_VLLM_PORT='http'"),
        ("LLM_DEVICE", "tpu", "LLM_DEVICE='tpu'"),
        ("VLLM_MAX_NUM_SEQS", "0", "VLLM_MAX_NUM_SEQS='0'"),
        ("VLLM_MAX_MODEL_LEN", "lots", "VLLM_MAX_MODEL_LEN='lots'"),
        ("VLLM_CPU_KVCACHE_SPACE", "0", "VLLM_CPU_KVCACHE_SPACE='0'"),
        ("OMP_NUM_THREADS", "0", "OMP_NUM_THREADS='0'"),
        ("VLLM_SKIP_WARMUP", "maybe", "VLLM_SKIP_WARMUP='maybe'"),
        ("IF_FP8_QUANTIZATION", "ture", "IF_FP8_QUANTIZATION='ture'"),
        ("PT_HPU_LAZY_ACC_PAR_MODE", "2", "PT_HPU_LAZY_ACC_PAR_MODE='2'"),
    ],
)
def test_wrong_value_names_variable_value_and_rule(
    clean_env: pytest.MonkeyPatch, name: str, value: str, expected_fragment: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    message = str(caught.value)
    assert expected_fragment in message
    assert "\n" not in message
    assert message.startswith("invalid configuration: ")


def test_allowed_values_are_listed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("VLLM_DTYPE", "float7")
    with pytest.raises(ConfigError, match="bfloat16"):
        load_settings(None)


def test_fp8_requires_hpu(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("IF_FP8_QUANTIZATION", "true")
    with pytest.raises(ConfigError, match="LLM_DEVICE=hpu"):
        load_settings(None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("TRUE", True), ("yes", True), ("1", True), ("False", False), ("no", False), ("0", False)],
)
def test_boolean_spellings(clean_env: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    clean_env.setenv("VLLM_SKIP_WARMUP", raw)
    assert load_settings(None).vllm_skip_warmup is expected


def test_case_insensitive_choices(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LLM_DEVICE", "HPU")
    clean_env.setenv("VLLM_DTYPE", "BFloat16")
    clean_env.setenv("VLLM_BUCKETING_STRATEGY", "LIN")
    s = load_settings(None)
    assert (s.llm_device, s.vllm_dtype, s.vllm_bucketing_strategy) == ("hpu", "bfloat16", "lin")


def test_every_part_keeps_its_validators(clean_env: pytest.MonkeyPatch) -> None:
    """The parts (model_server/hpu.py, lora.py) name their validators apart: one of the same
    name in another part would replace it, and its field would take any spelling."""
    clean_env.setenv("VLLM_CPU_PRELOAD", "No")
    clean_env.setenv("PT_HPU_ENABLE_LAZY_COLLECTIVES", "OFF")
    clean_env.setenv("VLLM_ALLOW_RUNTIME_LORA", "Yes")
    s = load_settings(None)
    assert (s.vllm_cpu_preload, s.pt_hpu_enable_lazy_collectives) == (False, False)
    assert s.vllm_allow_runtime_lora is True
    for name in ("VLLM_CPU_PRELOAD", "PT_HPU_ENABLE_LAZY_COLLECTIVES", "VLLM_ALLOW_RUNTIME_LORA"):
        clean_env.setenv(name, "t")  # pydantic alone would take it
        with pytest.raises(ConfigError, match=f"{name}='t'"):
            load_settings(None)
        clean_env.delenv(name)


def test_env_file_is_read_and_exported_variables_win(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("LLM_VLLM_PORT=9100\nVLLM_DTYPE=float32\nVLLM_MAX_NUM_SEQS=\n")
    clean_env.setenv("VLLM_DTYPE", "float16")
    s = load_settings(env_file)
    assert s.llm_vllm_port == 9100
    assert s.vllm_dtype == "float16"
    assert s.vllm_max_num_seqs is None  # empty in the file means unset


def test_missing_env_file_is_one_line(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.env")


def test_quant_config_default_follows_hf_home_and_model(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HF_HOME", "/data")
    clean_env.setenv("LLM_VLLM_MODEL_NAME", "meta-llama/Llama-3.1-8B-Instruct")
    s = ModelServerSettings()
    assert s.resolved_quant_config == Path("/data/inc/Llama-3.1-8B-Instruct/maxabs_quant_g2.json")
    clean_env.setenv("QUANT_CONFIG", "/q/custom.json")
    assert ModelServerSettings().resolved_quant_config == Path("/q/custom.json")


def test_bad_value_exits_non_zero_with_one_line(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("VLLM_TP_SIZE", "0")
    result = subprocess.run(
        [sys.executable, "-m", "model_server", "--dry-run"], capture_output=True, text=True
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "VLLM_TP_SIZE='0'" in lines[0]


def test_token_never_printed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HF_TOKEN", "hf_supersecretvalue")
    result = subprocess.run(
        [sys.executable, "-m", "model_server", "--dry-run"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "hf_supersecretvalue" not in result.stdout + result.stderr
    assert "HF_TOKEN=***" in result.stdout
