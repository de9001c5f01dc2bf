"""The real calibration on CPU with the tiny model: files, maxima, quantize pass, bad input, kill.

Every run is ``python -m fp8_quant`` in a child process, as Compose runs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fp8_quant import layout, ranks, vllm_names
from harness.processes import REPO_ROOT
from model_server.render import render
from model_server.settings import ModelServerSettings
from tests.config_env import without_config

pytestmark = pytest.mark.integration

PROMPTS = [
    f"what is deep learning, question {i}? tell me a story about a fast cat" for i in range(24)
]
TP_SIZE = 2
# FP8 E4M3 keeps 3 mantissa bits (relative step 1/16); two quantized layers on random weights
# stay well inside 10% of the largest logit. Measured on this model: about 5%.
MAX_ABS_ERROR_FRACTION = 0.10
MIN_COSINE = 0.99

Runner = Callable[..., subprocess.CompletedProcess[str]]


def _env(model: Path, hf_home: Path, dataset: Path, **extra: str) -> dict[str, str]:
    env = without_config(os.environ)
    env.update(
        LLM_DEVICE="cpu",
        LLM_VLLM_MODEL_NAME=str(model),
        HF_HOME=str(hf_home),
        HF_HUB_OFFLINE="1",
        FP8_DATASET_PATH=str(dataset),
        VLLM_TP_SIZE=str(TP_SIZE),
    )
    env.update(extra)
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fp8_quant", *args]


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("fp8_quant:")]


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fp8-hf-home")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fp8-data") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"text": p}) + "\n" for p in PROMPTS))
    return path


@pytest.fixture(scope="module")
def run(tiny_model: Path, hf_home: Path, dataset: Path) -> Runner:
    def run_job(*args: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _command(*args),
            env=_env(tiny_model, hf_home, dataset, **extra),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run_job


@pytest.fixture(scope="module")
def result(run: Runner, hf_home: Path, tiny_model: Path) -> Path:
    done = run()
    assert done.returncode == 0, done.stderr[-3000:]
    assert "calibrating" in done.stderr and "sample" in done.stderr  # the progress bar
    return hf_home / "inc" / tiny_model.name


def _linear_layers(model_path: Path) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_path))
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def test_files_have_the_names_vllm_expects(result: Path) -> None:
    present = {str(p.relative_to(result)) for p in result.rglob("*") if p.is_file()}
    expected = set(layout.expected_files("GAUDI2", TP_SIZE)) | {layout.MANIFEST_FILE}
    assert present == expected
    assert "g2/inc_output_hooks_maxabs_1_2.npz" in present
    assert layout.read_manifest(result) is not None
    assert not [p for p in result.parent.iterdir() if ".tmp-" in p.name]


def _positive_finite(value: object) -> list[float]:
    flat = [float(x) for x in np.ravel(np.asarray(value, dtype=float))]
    assert flat and all(0 < x < float("inf") for x in flat), value
    return flat


def test_every_linear_layer_has_finite_positive_maxima(result: Path, tiny_model: Path) -> None:
    blocked = layout.render_config(layout.QUANT_TEMPLATE, Path("x"), "cpu", "GAUDI2")
    blocklist = blocked["blocklist"]["names"]
    wanted = [n for n in _linear_layers(tiny_model) if not any(b in n for b in blocklist)]
    assert len(wanted) == 14  # 2 layers x (q, k, v, o, gate, up, down)
    raw = result / layout.HF_NAMES_DIR / "g2" / layout.measurement_stem()
    for suffix in (".npz", ".json"):
        nodes = layout.load_nodes(Path(f"{raw}{suffix}"))
        assert sorted(nodes) == sorted(wanted)
        for name in wanted:
            for value in [*nodes[name]["inputs"], nodes[name]["params"]["weight"]]:
                _positive_finite(value)
    assert json.loads(Path(f"{raw}_mod_list.json").read_text()) == list(nodes)


def _max_over(nodes: dict[str, Any], names: list[str], pick: Callable[[Any], Any]) -> float:
    return max(float(np.max(pick(nodes[n]))) for n in names)


def test_published_measurements_have_vllm_names(result: Path) -> None:
    """vLLM looks layers up by its own names; fused layers hold the maximum over the HF parts."""
    hf = layout.load_nodes(result / layout.HF_NAMES_DIR / "g2" / f"{layout.measurement_stem()}.npz")
    fused = {
        "self_attn.qkv_proj": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
        "self_attn.o_proj": ["self_attn.o_proj"],
        "mlp.gate_up_proj": ["mlp.gate_proj", "mlp.up_proj"],
        "mlp.down_proj": ["mlp.down_proj"],
    }
    expected = [f"model.layers.{i}.{leaf}" for i in range(2) for leaf in fused]
    unified = layout.measurement_stem(*layout.UNIFIED)
    stems = [unified] + [layout.measurement_stem(r, TP_SIZE) for r in range(2)]
    for stem in stems:
        listed = json.loads((result / "g2" / f"{stem}_mod_list.json").read_text())
        assert listed == expected, stem
        for suffix in (".npz", ".json"):
            nodes = layout.load_nodes(result / "g2" / f"{stem}{suffix}")
            assert list(nodes) == expected, (stem, suffix)
            for name in expected:
                index, leaf = name.split(".", 3)[2:]
                parts = [f"model.layers.{index}.{part}" for part in fused[leaf]]
                (got_input,) = _positive_finite(nodes[name]["inputs"][0])
                (got_weight,) = _positive_finite(nodes[name]["params"]["weight"])
                assert got_input == _max_over(hf, parts, lambda n: n["inputs"][0]), name
                assert got_weight == _max_over(hf, parts, lambda n: n["params"]["weight"]), name
    for rank in range(TP_SIZE):
        ranked = json.loads(
            (result / "g2" / f"{layout.measurement_stem(rank, 2)}.json").read_text()
        )
        assert ranked["LocalRank"] == rank


def test_quant_config_points_at_the_measurements(result: Path) -> None:
    quant = json.loads((result / "maxabs_quant_g2.json").read_text())
    assert quant["mode"] == "QUANTIZE"
    assert quant["use_qdq"] is True  # calibrated with LLM_DEVICE=cpu
    assert quant["dump_stats_path"] == str(result / "g2" / "inc_output")
    assert Path(quant["dump_stats_path"] + "_hooks_maxabs_0_1.npz").is_file()  # one card
    # Only the layer types measured here; vLLM's HPU attention and KV-cache nodes are not.
    assert quant["allowlist"]["types"] == list(vllm_names.VLLM_QUANTIZED_TYPES)
    hf_quant = json.loads((result / layout.HF_NAMES_DIR / "maxabs_quant_g2.json").read_text())
    assert hf_quant["allowlist"]["types"] == ["Linear"]
    assert hf_quant["dump_stats_path"] == str(result / layout.HF_NAMES_DIR / "g2" / "inc_output")
    measure = json.loads((result / "maxabs_measure_g2.json").read_text())
    assert measure["dump_stats_path"] == hf_quant["dump_stats_path"]


def test_model_server_loads_exactly_what_the_job_published(
    result: Path, tiny_model: Path, hf_home: Path
) -> None:
    """The model server's default QUANT_CONFIG is the job's; each TP rank finds its own set."""
    server = ModelServerSettings.model_validate(
        {
            "llm_device": "hpu",
            "if_fp8_quantization": True,
            "llm_vllm_model_name": str(tiny_model),
            "hf_home": hf_home,
            "vllm_tp_size": TP_SIZE,
        }
    )
    plan = render(server)
    assert plan.env["QUANT_CONFIG"] == str(result / "maxabs_quant_g2.json")
    dump = json.loads(Path(plan.env["QUANT_CONFIG"]).read_text())["dump_stats_path"]
    for rank in range(TP_SIZE):  # INC's name on rank r of a TP_SIZE world
        assert Path(f"{dump}_hooks_maxabs_{rank}_{TP_SIZE}.npz").is_file()
    manifest = layout.read_manifest(result)
    assert manifest is not None and manifest["quant_config"] == "maxabs_quant_g2.json"


def test_unifying_per_rank_runs_gives_the_whole_runs_maxima(
    tiny_model: Path, dataset: Path, result: Path, tmp_path: Path
) -> None:
    """The job run once per rank, each on its half of the prompts, as two ranks' measurements;
    unified onto one card they hold exactly the maxima of the run over all prompts."""
    merged = tmp_path / "merged"
    merged.mkdir()
    unified = layout.measurement_stem(*layout.UNIFIED)
    for rank in range(2):
        home, half = tmp_path / f"rank{rank}", tmp_path / f"half{rank}.txt"
        half.write_text("\n".join(PROMPTS[rank::2]) + "\n")
        env = _env(tiny_model, home, half, VLLM_TP_SIZE="1")
        done = subprocess.run(
            _command(), env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
        for name in layout.stem_files(unified):
            ranked = name.replace(unified, layout.measurement_stem(rank, 2))
            (merged / ranked).write_bytes(
                (home / "inc" / tiny_model.name / "g2" / name).read_bytes()
            )
    ranks.unify(merged, 1)
    got = layout.load_nodes(merged / f"{unified}.npz")
    whole = layout.load_nodes(result / "g2" / f"{unified}.npz")
    assert list(got) == list(whole)
    halves = [layout.load_nodes(merged / f"{layout.measurement_stem(r, 2)}.npz") for r in (0, 1)]
    differ = []  # layers whose halves saw different maxima: the unification had work to do
    for name in whole:
        expected = float(np.max(whole[name]["inputs"][0]))
        assert float(np.max(got[name]["inputs"][0])) == expected, name
        per_half = {float(np.max(h[name]["inputs"][0])) for h in halves}
        differ += [name] if len(per_half) == 2 else []
        got_w, whole_w = got[name]["params"]["weight"], whole[name]["params"]["weight"]
        assert np.array_equal(np.asarray(got_w), np.asarray(whole_w)), name
    assert differ


def test_quantize_pass_stays_close_to_unquantized(result: Path, tiny_model: Path) -> None:
    """The HF model is quantized with the HF-named config the job publishes beside vLLM's."""
    import torch
    from neural_compressor.torch.quantization import FP8Config, convert
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    load = AutoModelForCausalLM.from_pretrained
    reference = load(str(tiny_model), dtype=torch.bfloat16).eval()
    model = load(str(tiny_model), dtype=torch.bfloat16).eval()
    config = result / layout.HF_NAMES_DIR / "maxabs_quant_g2.json"
    model = convert(model, FP8Config.from_json_file(str(config)))
    patched = [n for n, m in model.named_modules() if type(m).__name__ == "PatchedLinear"]
    assert len(patched) == 14 and not any("lm_head" in n for n in patched)
    encoded = tokenizer(PROMPTS[:4], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = reference(**encoded).logits.float()
        actual = model(**encoded).logits.float()
    error = (actual - expected).abs().max().item()
    cosine = torch.nn.functional.cosine_similarity(actual.flatten(), expected.flatten(), dim=0)
    assert 0 < error <= MAX_ABS_ERROR_FRACTION * expected.abs().max().item()
    assert cosine.item() >= MIN_COSINE


def test_rerun_reuses_the_complete_result(run: Runner, result: Path) -> None:
    before = _snapshot(result)
    started = time.monotonic()
    done = run()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "reusing the complete result" in done.stderr
    assert time.monotonic() - started < 30  # no model load, no measurement
    assert _snapshot(result) == before


def _write(folder: Path, name: str, content: str) -> str:
    path = folder / name
    path.write_text(content)
    return str(path)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such file"),
        ("wrong_type", "unsupported file type"),
        ("empty", "no calibration prompts"),
        ("not_text", "row 2 is not text"),
        ("bad_model", "cannot load model"),
    ],
)
def test_bad_input_fails_with_one_line_and_keeps_the_result(
    run: Runner, result: Path, tmp_path: Path, case: str, message: str
) -> None:
    before = _snapshot(result)
    extra = {
        "missing": {"FP8_DATASET_PATH": str(tmp_path / "absent.jsonl")},
        "wrong_type": {"FP8_DATASET_PATH": _write(tmp_path, "prompts.csv", "a,b\n")},
        "empty": {"FP8_DATASET_PATH": _write(tmp_path, "empty.txt", "\n")},
        "not_text": {"FP8_DATASET_PATH": _write(tmp_path, "rows.jsonl", '"ok"\n7\n')},
        "bad_model": {"LLM_VLLM_MODEL_NAME": str(tmp_path / "no-model")},
    }[case]
    if case == "bad_model":  # same basename as the stored result, so it is the one at risk
        (tmp_path / "no-model").mkdir()
        extra["LLM_VLLM_MODEL_NAME"] = str(tmp_path / "no-model" / result.name)
    done = run("--force", **extra)
    assert done.returncode == 1, done.stderr[-2000:]
    errors = _error_lines(done.stderr)
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]
    assert done.stderr.rstrip().splitlines()[-1] == errors[0]
    assert _snapshot(result) == before


def test_kill_mid_calibration_keeps_the_previous_result(
    tiny_model: Path, hf_home: Path, result: Path, tmp_path: Path, run: Runner
) -> None:
    before = _snapshot(result)
    big = tmp_path / "big.txt"
    big.write_text("\n".join(PROMPTS * 250))  # 6000 prompts: far more than a few seconds
    log_path = tmp_path / "killed.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            _command("--force"),
            env=_env(tiny_model, hf_home, big),
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while "calibration started" not in log_path.read_text():
                assert process.poll() is None, log_path.read_text()[-2000:]
                assert time.monotonic() < deadline, "calibration never started"
                time.sleep(0.2)
            time.sleep(1.0)
            assert process.poll() is None, "finished before it could be killed"
            temps = [p for p in result.parent.iterdir() if ".tmp-" in p.name]
            assert temps, "no temporary folder while calibrating"
            os.killpg(process.pid, signal.SIGKILL)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert "calibration published" not in log_path.read_text()
    assert _snapshot(result) == before
    assert layout.read_manifest(result) is not None

    done = run()  # the next run removes the killed run's folder and reuses the result
    assert done.returncode == 0, done.stderr[-2000:]
    assert "removed an interrupted run's folder" in done.stderr
    assert not [p for p in result.parent.iterdir() if ".tmp-" in p.name]
