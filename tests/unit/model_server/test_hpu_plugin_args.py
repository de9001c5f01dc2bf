"""The HPU launch follows the Gaudi plugin's documentation, setting by setting.

Each row sets variables, runs `python -m model_server --dry-run` (in process) and holds the
printed command line and environment against what the vllm-gaudi docs say for that setting.
The comment on each row names the page, at the release the image pins (v0.26.0, see
model_server/Dockerfile.hpu): https://github.com/vllm-project/vllm-gaudi/blob/v0.26.0/<path>.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

import pytest

from model_server.__main__ import main
from model_server.render import VLLM_ENTRYPOINT

PLUGIN = "https://github.com/vllm-project/vllm-gaudi/blob/v0.26.0/"
ENV_DOC = PLUGIN + "docs/configuration/env_variables.md"
INC_DOC = PLUGIN + "docs/configuration/quantization/inc.md"


@dataclass(frozen=True)
class Row:
    """Variables in; argv pairs and environment entries expected out, and what must be absent."""

    variables: dict[str, str]
    args: list[tuple[str, ...]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()


ROWS = {
    # docs/features/warmup.md: "To skip this step, ... set VLLM_SKIP_WARMUP=true"
    "skip warm-up": Row({"VLLM_SKIP_WARMUP": "true"}, env={"VLLM_SKIP_WARMUP": "true"}),
    # ENV_DOC, Performance Tuning Parameters: VLLM_BUCKETING_STRATEGY exp | lin | pad
    "bucketing strategy": Row(
        {"VLLM_BUCKETING_STRATEGY": "PAD"}, env={"VLLM_BUCKETING_STRATEGY": "pad"}
    ),
    # ENV_DOC, Additional Performance Tuning Parameters for Bucketing Strategies (the
    # VLLM_{phase}_{dim}_BUCKET_{param} table); docs/configuration/warm-up/managing_warm-up.md
    "bucket bounds": Row(
        {
            "VLLM_PROMPT_BS_BUCKET_MAX": "4",
            "VLLM_PROMPT_QUERY_BUCKET_MAX": "1024",
            "VLLM_DECODE_BS_BUCKET_MAX": "128",
            "VLLM_DECODE_BLOCK_BUCKET_MAX": "1024",
        },
        env={
            "VLLM_PROMPT_BS_BUCKET_MAX": "4",
            "VLLM_PROMPT_QUERY_BUCKET_MAX": "1024",
            "VLLM_DECODE_BS_BUCKET_MAX": "128",
            "VLLM_DECODE_BLOCK_BUCKET_MAX": "1024",
        },
    ),
    # ENV_DOC: the bucket variables are unset unless asked for; the plugin sizes them itself
    "bucket defaults": Row(
        {},
        absent=("VLLM_BUCKETING_STRATEGY", "VLLM_PROMPT_BS_BUCKET_MAX", "VLLM_SKIP_WARMUP"),
    ),
    # INC_DOC, Running Online Inference: QUANT_CONFIG=<calibration output>/maxabs_quant_g?.json
    # and `--quantization inc`
    "fp8 through INC": Row(
        {"IF_FP8_QUANTIZATION": "true"},
        args=[("--quantization", "inc"), ("--dtype", "bfloat16")],
        env={"QUANT_CONFIG": "/data/inc/Llama-3.1-8B/maxabs_quant_g2.json"},
        absent=("--kv-cache-dtype",),
    ),
    # INC_DOC, Running Online Inference: `--kv-cache-dtype fp8_inc`; vllm_gaudi/platform.py
    # is_kv_cache_dtype_supported accepts only fp8_inc
    "fp8 KV cache": Row(
        {"IF_FP8_QUANTIZATION": "true", "VLLM_KV_CACHE_DTYPE": "fp8_inc"},
        args=[("--quantization", "inc"), ("--kv-cache-dtype", "fp8_inc")],
    ),
    "auto KV cache": Row({"VLLM_KV_CACHE_DTYPE": "auto"}, absent=("--kv-cache-dtype",)),
    # INC_DOC, Model Weight Loading Process: weights go to CPU first, then quantized to the HPU;
    # vllm_gaudi/platform.py sets load_config.device = "cpu" itself for `--quantization inc`.
    # Upstream vLLM has no `--weights-load-device` flag (the fork had one): never rendered.
    "fp8 loads weights to CPU first": Row(
        {"IF_FP8_QUANTIZATION": "true", "VLLM_TP_SIZE": "8"},
        args=[("--quantization", "inc")],
        absent=("--weights-load-device", "--load-device"),
    ),
    # ENV_DOC, HPU PyTorch bridge variables: PT_HPU_ENABLE_LAZY_COLLECTIVES "must be set to true
    # for tensor parallel inference with HPU Graphs"; README.md: `mp` backend chosen by vLLM
    "tensor parallelism": Row(
        {"VLLM_TP_SIZE": "2"},
        args=[("--tensor-parallel-size", "2")],
        env={"PT_HPU_ENABLE_LAZY_COLLECTIVES": "true"},
        absent=("--distributed-executor-backend",),
    ),
    # docs/getting_started/installation.md: `docker run --runtime=habana -e
    # HABANA_VISIBLE_DEVICES=all -e OMPI_MCA_btl_vader_single_copy_mechanism=none`
    "container runtime": Row(
        {},
        env={"HABANA_VISIBLE_DEVICES": "all", "OMPI_MCA_btl_vader_single_copy_mechanism": "none"},
    ),
}


def dry_run(capsys: pytest.CaptureFixture[str]) -> Row:
    """The printed launch, split back into its argv pairs and its environment."""
    assert main(["--dry-run"]) == 0
    words = shlex.split(capsys.readouterr().out)
    start = words.index(VLLM_ENTRYPOINT[1]) + 1
    env = dict(w.split("=", 1) for w in words[: start - 3])
    argv = words[start:]
    return Row({}, args=[tuple(argv[i : i + 2]) for i in range(len(argv) - 1)], env=env)


@pytest.mark.parametrize("name", list(ROWS))
def test_documented_setting_reaches_vllm(
    name: str, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    row = ROWS[name]
    base = {
        "LLM_DEVICE": "hpu",
        "LLM_VLLM_MODEL_NAME": "meta-llama/Llama-3.1-8B",
        "HF_HOME": "/data",
    }
    for key, value in {**base, **row.variables}.items():
        clean_env.setenv(key, value)
    got = dry_run(capsys)
    for pair in row.args:
        assert pair in got.args, (name, pair)
    for key, value in row.env.items():
        assert got.env.get(key) == value, (name, key)
    flags = {word for pair in got.args for word in pair}
    for word in row.absent:
        assert word not in flags and word not in got.env, (name, word)


@pytest.mark.parametrize(
    ("variables", "fragment"),
    [
        ({"VLLM_BUCKETING_STRATEGY": "fast"}, "VLLM_BUCKETING_STRATEGY='fast'"),
        ({"VLLM_DECODE_BS_BUCKET_MAX": "0"}, "VLLM_DECODE_BS_BUCKET_MAX='0'"),
        ({"VLLM_PROMPT_QUERY_BUCKET_MAX": "big"}, "VLLM_PROMPT_QUERY_BUCKET_MAX='big'"),
        ({"VLLM_KV_CACHE_DTYPE": "fp8"}, "VLLM_KV_CACHE_DTYPE='fp8'"),
        ({"VLLM_KV_CACHE_DTYPE": "fp8_inc", "LLM_DEVICE": "cpu"}, "VLLM_KV_CACHE_DTYPE=fp8_inc"),
    ],
)
def test_wrong_value_stops_start_with_one_line(
    variables: dict[str, str],
    fragment: str,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in {"LLM_DEVICE": "hpu", **variables}.items():
        clean_env.setenv(key, value)
    assert main(["--dry-run"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], lines
