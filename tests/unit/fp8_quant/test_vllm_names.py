"""HF -> vLLM module names: the table, fused maxima, refusals, and the three files per dump."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fp8_quant import layout, vllm_names


def _node(x: float, w: float, out: float | None = None) -> dict[str, Any]:
    """One INC maxabs node as the .npz holds it: (1, 1) float32 arrays."""
    node: dict[str, Any] = {
        "inputs": [np.array([[x]], dtype=np.float32)],
        "params": {"weight": np.array([[w]], dtype=np.float32)},
    }
    if out is not None:
        node["outputs"] = [np.array([[out]], dtype=np.float32)]
    return node


def _layer(i: int) -> dict[str, dict[str, Any]]:
    p = f"model.layers.{i}."
    return {
        p + "self_attn.q_proj": _node(3.0, 0.5, 7.0),
        p + "self_attn.k_proj": _node(3.0, 0.9, 2.0),
        p + "self_attn.v_proj": _node(3.0, 0.2, 4.0),
        p + "self_attn.o_proj": _node(1.5, 0.3),
        p + "mlp.gate_proj": _node(2.0, 0.1),
        p + "mlp.up_proj": _node(2.0, 0.6),
        p + "mlp.down_proj": _node(9.0, 0.4),
    }


def _value(array: Any) -> float:
    return float(np.asarray(array).reshape(-1)[0])


@pytest.mark.parametrize(
    ("hf", "vllm"),
    [
        ("model.layers.3.self_attn.q_proj", "model.layers.3.self_attn.qkv_proj"),
        ("model.layers.3.self_attn.v_proj", "model.layers.3.self_attn.qkv_proj"),
        ("model.layers.0.mlp.up_proj", "model.layers.0.mlp.gate_up_proj"),
        ("model.layers.0.mlp.down_proj", "model.layers.0.mlp.down_proj"),
        ("model.layers.0.self_attn.o_proj", "model.layers.0.self_attn.o_proj"),
        ("lm_head", "lm_head"),
        ("model.layers.0.self_attn.xq_proj", "model.layers.0.self_attn.xq_proj"),  # not a suffix
    ],
)
def test_vllm_name(hf: str, vllm: str) -> None:
    assert vllm_names.vllm_name(hf) == vllm


def test_fused_nodes_take_the_maximum_over_their_parts() -> None:
    converted = vllm_names.convert_nodes({**_layer(0), **_layer(1)})
    assert list(converted)[:4] == [
        "model.layers.0.self_attn.qkv_proj",
        "model.layers.0.self_attn.o_proj",
        "model.layers.0.mlp.gate_up_proj",
        "model.layers.0.mlp.down_proj",
    ]
    assert len(converted) == 8
    qkv = converted["model.layers.1.self_attn.qkv_proj"]
    assert _value(qkv["inputs"][0]) == 3.0
    assert _value(qkv["params"]["weight"]) == pytest.approx(0.9)  # k_proj's
    assert _value(qkv["outputs"][0]) == 7.0  # q_proj's
    assert np.asarray(qkv["params"]["weight"]).shape == (1, 1)
    gate_up = converted["model.layers.0.mlp.gate_up_proj"]
    assert _value(gate_up["params"]["weight"]) == pytest.approx(0.6)
    assert "outputs" not in gate_up
    down = converted["model.layers.0.mlp.down_proj"]
    assert _value(down["inputs"][0]) == 9.0 and _value(down["params"]["weight"]) == pytest.approx(
        0.4
    )


def test_inputs_differing_between_parts_still_give_a_safe_maximum() -> None:
    nodes = _layer(0)
    nodes["model.layers.0.self_attn.k_proj"] = _node(5.0, 0.9)
    nodes["model.layers.0.self_attn.q_proj"] = _node(3.0, 0.5)
    nodes["model.layers.0.self_attn.v_proj"] = _node(3.0, 0.2)
    qkv = vllm_names.convert_nodes(nodes)["model.layers.0.self_attn.qkv_proj"]
    assert _value(qkv["inputs"][0]) == 5.0


def test_a_missing_part_is_refused() -> None:
    nodes = _layer(0)
    del nodes["model.layers.0.self_attn.v_proj"]
    with pytest.raises(ValueError, match=r"qkv_proj.*missing.*v_proj"):
        vllm_names.convert_nodes(nodes)


def test_parts_that_disagree_are_refused() -> None:
    nodes = _layer(0)
    nodes["model.layers.0.mlp.up_proj"] = {"inputs": [np.array([[1.0]], dtype=np.float32)]}
    with pytest.raises(ValueError, match="gate_up_proj: parts disagree on their params"):
        vllm_names.convert_nodes(nodes)
    nodes = _layer(0)
    nodes["model.layers.0.mlp.up_proj"]["inputs"] = [np.ones((1, 4), dtype=np.float32)]
    with pytest.raises(ValueError, match="different shapes"):
        vllm_names.convert_nodes(nodes)


def test_already_fused_names_pass_through() -> None:
    """A model whose HF names are already vLLM's (e.g. Phi-3's qkv_proj) is left as it is."""
    nodes = {"model.layers.0.self_attn.qkv_proj": _node(1.0, 2.0)}
    converted = vllm_names.convert_nodes(nodes)
    assert list(converted) == ["model.layers.0.self_attn.qkv_proj"]
    assert _value(converted["model.layers.0.self_attn.qkv_proj"]["params"]["weight"]) == 2.0


def test_mod_list_names_each_fused_module_once() -> None:
    assert vllm_names.convert_mod_list(list(_layer(0))) == [
        "model.layers.0.self_attn.qkv_proj",
        "model.layers.0.self_attn.o_proj",
        "model.layers.0.mlp.gate_up_proj",
        "model.layers.0.mlp.down_proj",
    ]


def test_quantized_types_are_inc_module_types() -> None:
    from neural_compressor.torch.algorithms.fp8_quant._core.patching_common import (
        _mod_default_dict,
    )

    for name in vllm_names.VLLM_QUANTIZED_TYPES + vllm_names.HF_QUANTIZED_TYPES:
        assert name in _mod_default_dict
    assert "VLLMKVCache" not in vllm_names.VLLM_QUANTIZED_TYPES


def test_convert_dump_writes_npz_json_and_mod_list(tmp_path: Path) -> None:
    source, target = tmp_path / "hf", tmp_path / "vllm"
    source.mkdir()
    stem = layout.measurement_stem()
    nodes = _layer(0)
    payload = {"GlobalRank": None, "LocalRank": None, "Mode": "DynamicRange", "Nodes": nodes}
    np.savez(source / f"{stem}.npz", payload)  # type: ignore[arg-type]
    layout.write_json(source / f"{stem}_mod_list.json", list(nodes))

    out = layout.measurement_stem(0, 1)
    assert vllm_names.convert_dump(source, target, out) == 4
    from_npz = layout.load_nodes(target / f"{out}.npz")
    from_json = layout.load_nodes(target / f"{out}.json")
    assert (
        list(from_npz)
        == list(from_json)
        == json.loads((target / f"{out}_mod_list.json").read_text())
    )
    qkv = "model.layers.0.self_attn.qkv_proj"
    assert from_json[qkv]["params"]["weight"] == [[pytest.approx(0.9)]]
    assert from_json[qkv]["outputs"] == [[[7.0]]]
    assert _value(from_npz[qkv]["params"]["weight"]) == pytest.approx(0.9)
    written = json.loads((target / f"{out}.json").read_text())
    assert (written["Mode"], written["LocalRank"]) == ("DynamicRange", -1)  # unified onto 1 card
    assert layout.check_measurements(target / f"{out}.npz") == 4
