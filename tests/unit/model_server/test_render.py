"""Rendering: every variable on every device reaches the right flag or environment entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_server.preload import find_preload_libs
from model_server.render import merged_env, render
from model_server.settings import ModelServerSettings


def settings(**values: object) -> ModelServerSettings:
    return ModelServerSettings.model_validate(values)


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


@pytest.mark.usefixtures("clean_env")
class TestRender:
    def test_minimal_cpu_emits_only_set_flags(self) -> None:
        plan = render(settings(llm_vllm_model_name="m"))
        assert plan.vllm_args == [
            "--model", "m", "--host", "0.0.0.0", "--port", "8008", "--dtype", "bfloat16",
        ]  # fmt: skip
        assert plan.env["VLLM_CPU_OMP_THREADS_BIND"] == "auto"
        assert "VLLM_CPU_KVCACHE_SPACE" not in plan.env
        assert "LD_PRELOAD" not in plan.env

    def test_every_common_variable(self) -> None:
        plan = render(
            settings(
                llm_vllm_model_name="org/model",
                llm_vllm_host="127.0.0.1",
                llm_vllm_port=9001,
                vllm_dtype="float32",
                vllm_max_num_seqs=64,
                vllm_tp_size=2,
                vllm_pp_size=3,
                vllm_max_model_len=4096,
                omp_num_threads=8,
                hf_token="hf_x",
                hf_home="/cache",
            )
        )
        args = plan.vllm_args
        assert flag(args, "--model") == "org/model"
        assert flag(args, "--host") == "127.0.0.1"
        assert flag(args, "--port") == "9001"
        assert flag(args, "--dtype") == "float32"
        assert flag(args, "--max-num-seqs") == "64"
        assert flag(args, "--tensor-parallel-size") == "2"
        assert flag(args, "--pipeline-parallel-size") == "3"
        assert flag(args, "--max-model-len") == "4096"
        assert plan.env["OMP_NUM_THREADS"] == "8"
        assert plan.env["HF_TOKEN"] == "hf_x"
        assert plan.env["HF_HOME"] == "/cache"

    def test_cpu_variables(self) -> None:
        plan = render(
            settings(vllm_cpu_kvcache_space=40, vllm_cpu_omp_threads_bind="0-31"),
            preload_libs=["/lib/libtcmalloc_minimal.so.4", "/venv/lib/libiomp5.so"],
        )
        assert plan.env["VLLM_CPU_KVCACHE_SPACE"] == "40"
        assert plan.env["VLLM_CPU_OMP_THREADS_BIND"] == "0-31"
        assert plan.env["LD_PRELOAD"] == "/lib/libtcmalloc_minimal.so.4:/venv/lib/libiomp5.so"
        assert not any(k.startswith(("HABANA", "PT_HPU")) for k in plan.env)

    def test_cpu_preload_can_be_turned_off(self) -> None:
        plan = render(settings(vllm_cpu_preload=False), preload_libs=["/lib/libiomp5.so"])
        assert "LD_PRELOAD" not in plan.env

    def test_hpu_variables(self) -> None:
        plan = render(
            settings(
                llm_device="hpu",
                habana_visible_devices="0,1",
                pt_hpu_enable_lazy_collectives=False,
                pt_hpu_lazy_acc_par_mode=0,
                ompi_mca_btl_vader_single_copy_mechanism="cma",
                vllm_skip_warmup=True,
                vllm_cpu_kvcache_space=4,
            ),
            preload_libs=["/lib/libiomp5.so"],
        )
        assert plan.env["HABANA_VISIBLE_DEVICES"] == "0,1"
        assert plan.env["PT_HPU_ENABLE_LAZY_COLLECTIVES"] == "false"
        assert plan.env["PT_HPU_LAZY_ACC_PAR_MODE"] == "0"
        assert plan.env["OMPI_MCA_btl_vader_single_copy_mechanism"] == "cma"
        assert plan.env["VLLM_SKIP_WARMUP"] == "true"
        assert "VLLM_CPU_KVCACHE_SPACE" not in plan.env
        assert "LD_PRELOAD" not in plan.env
        assert "--quantization" not in plan.vllm_args
        assert "QUANT_CONFIG" not in plan.env

    def test_hpu_defaults(self) -> None:
        plan = render(settings(llm_device="hpu"))
        assert plan.env["HABANA_VISIBLE_DEVICES"] == "all"
        assert plan.env["PT_HPU_ENABLE_LAZY_COLLECTIVES"] == "true"
        assert "VLLM_SKIP_WARMUP" not in plan.env
        assert "PT_HPU_LAZY_ACC_PAR_MODE" not in plan.env

    def test_hpu_fp8(self) -> None:
        plan = render(
            settings(
                llm_device="hpu",
                if_fp8_quantization=True,
                llm_vllm_model_name="meta-llama/Llama-3.1-8B",
                hf_home="/data",
            )
        )
        assert flag(plan.vllm_args, "--quantization") == "inc"
        assert flag(plan.vllm_args, "--kv-cache-dtype") is None  # the job measures no KV cache
        assert plan.env["QUANT_CONFIG"] == "/data/inc/Llama-3.1-8B/maxabs_quant_g2.json"

    def test_hpu_fp8_explicit_quant_config(self) -> None:
        plan = render(
            settings(llm_device="hpu", if_fp8_quantization=True, quant_config="/q/c.json")
        )
        assert plan.env["QUANT_CONFIG"] == "/q/c.json"

    def test_describe_masks_token(self) -> None:
        plan = render(settings(hf_token="hf_secret"))
        text = plan.describe("/usr/bin/python3")
        assert "hf_secret" not in text
        assert "HF_TOKEN=***" in text
        assert "vllm.entrypoints.openai.api_server" in text


@pytest.mark.usefixtures("clean_env")
def test_merged_env_keeps_operator_preload() -> None:
    plan = render(ModelServerSettings.model_validate({}), preload_libs=["/lib/libiomp5.so"])
    env = merged_env({"LD_PRELOAD": "/mine.so", "PATH": "/bin"}, plan)
    assert env["LD_PRELOAD"] == "/mine.so:/lib/libiomp5.so"
    assert env["PATH"] == "/bin"


@pytest.mark.usefixtures("clean_env")
def test_merged_env_leaves_an_empty_omp_num_threads_out() -> None:
    """Compose passes OMP_NUM_THREADS="" when unset; libgomp and Intel OpenMP warn on it."""
    plan = render(ModelServerSettings.model_validate({}))
    env = merged_env({"OMP_NUM_THREADS": "", "EMPTY_OTHER": ""}, plan)
    assert "OMP_NUM_THREADS" not in env
    assert env["EMPTY_OTHER"] == ""
    plan = render(settings(omp_num_threads=3))
    assert merged_env({"OMP_NUM_THREADS": ""}, plan)["OMP_NUM_THREADS"] == "3"


def test_find_preload_libs_prefers_tcmalloc_then_iomp(tmp_path: Path) -> None:
    assert find_preload_libs([tmp_path]) == []
    (tmp_path / "libiomp5.so").write_bytes(b"")
    (tmp_path / "libtcmalloc_minimal.so.4").write_bytes(b"")
    assert find_preload_libs([tmp_path]) == [
        str(tmp_path / "libtcmalloc_minimal.so.4"),
        str(tmp_path / "libiomp5.so"),
    ]
