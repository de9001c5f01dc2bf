"""Rename an INC measurement of the Hugging Face model to the module names vLLM for Gaudi uses.

The job measures the ``transformers`` model, but vLLM looks measurements up by its own module
names, and it fuses some layers: q/k/v into ``self_attn.qkv_proj`` (``QKVParallelLinear``) and
gate/up into ``mlp.gate_up_proj`` (``MergedColumnParallelLinear``). A fused layer's tensors are the
concatenation of its parts, so its per-tensor maximum is the maximum over the parts (its input is
shared by the parts, so that maximum is the common value). Layers not in the table (``o_proj``,
``down_proj``, ``lm_head``) have the same name in both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fp8_quant.layout import measurement_stem, read_set, write_set

# HF module (suffix of its dotted name) -> the vLLM module it becomes, for Llama-style decoders
# (Llama, Mistral, Qwen2): vLLM's models/llama.py fuses these at load time.
HF_TO_VLLM: dict[str, str] = {
    "self_attn.q_proj": "self_attn.qkv_proj",
    "self_attn.k_proj": "self_attn.qkv_proj",
    "self_attn.v_proj": "self_attn.qkv_proj",
    "mlp.gate_proj": "mlp.gate_up_proj",
    "mlp.up_proj": "mlp.gate_up_proj",
}

# INC module types (class names) that the converted measurement covers. The vLLM quant config
# allows only these: attention and KV-cache nodes (Matmul, B2BMatmul, VLLMKVCache, Softmax,
# ModuleFusedSDPA) exist only in vLLM's HPU attention, are not measured here, and stay unquantized.
VLLM_QUANTIZED_TYPES = ("QKVParallelLinear", "MergedColumnParallelLinear", "RowParallelLinear")
HF_QUANTIZED_TYPES = ("Linear",)

Node = dict[str, Any]


def vllm_name(hf_name: str) -> str:
    """The vLLM module name of one HF module name; unchanged when the table has no rule for it."""
    for suffix, target in HF_TO_VLLM.items():
        if hf_name == suffix or hf_name.endswith("." + suffix):
            return hf_name[: len(hf_name) - len(suffix)] + target
    return hf_name


def _parts_of(target: str) -> list[str]:
    """Every HF name the table fuses into ``target``, in table order."""
    for fused in dict.fromkeys(HF_TO_VLLM.values()):
        if target == fused or target.endswith("." + fused):
            base = target[: len(target) - len(fused)]
            return [base + source for source, into in HF_TO_VLLM.items() if into == fused]
    return [target]


def _max_of(values: list[Any], where: str) -> np.ndarray:
    arrays = [np.asarray(v, dtype=np.float32) for v in values]
    if any(a.shape != arrays[0].shape for a in arrays):
        shapes = [a.shape for a in arrays]
        raise ValueError(f"{where}: parts have different shapes {shapes} (per-tensor maxima only)")
    result: np.ndarray = np.maximum.reduce(arrays)
    return result


def max_merge(target: str, parts: list[Node]) -> Node:
    """One node from several (fused parts, or ranks): element-wise maximum, field by field."""
    merged: Node = {}
    for field in ("inputs", "outputs"):
        present = [p[field] for p in parts if field in p]
        if not present:
            continue
        if len(present) != len(parts) or len({len(v) for v in present}) != 1:
            raise ValueError(f"{target}: parts disagree on their {field}")
        merged[field] = [
            _max_of(list(v), f"{target} {field}[{i}]")
            for i, v in enumerate(zip(*present, strict=True))
        ]
    params = [p.get("params", {}) for p in parts]
    if len({tuple(sorted(p)) for p in params}) != 1:
        raise ValueError(f"{target}: parts disagree on their params")
    if params[0]:
        merged["params"] = {k: _max_of([p[k] for p in params], f"{target} {k}") for k in params[0]}
    return merged


def convert_nodes(nodes: Mapping[str, Node]) -> dict[str, Node]:
    """HF-named nodes -> vLLM-named nodes, in first-seen order; a fused layer needs all parts."""
    groups: dict[str, list[str]] = {}
    for name in nodes:
        groups.setdefault(vllm_name(name), []).append(name)
    converted: dict[str, Node] = {}
    for target, names in groups.items():
        if names != [target]:  # renamed: every part must be there, or the maximum is too low
            missing = [p for p in _parts_of(target) if p not in nodes]
            if missing or target in nodes:
                raise ValueError(f"{target}: cannot fuse {names}; missing {missing}")
        converted[target] = max_merge(target, [nodes[n] for n in names])
    return converted


def convert_mod_list(names: list[str]) -> list[str]:
    """The measured-module list with vLLM names, each fused module once."""
    return list(dict.fromkeys(vllm_name(n) for n in names))


def convert_dump(source_dir: Path, target_dir: Path, target_stem: str) -> int:
    """Write INC's single-process file set of ``source_dir`` to ``target_dir`` with vLLM names.

    The .npz is what INC loads; the .json and _mod_list.json are rewritten from it so all three
    agree. ``target_stem`` names the set (``_0_1``: what one card loads). Returns the number of
    vLLM modules.
    """
    payload, mod_list = read_set(source_dir, measurement_stem())
    nodes = convert_nodes(payload["Nodes"])
    # LocalRank -1: a set unified onto one card, as the plugin's step-5 script marks it
    converted = {**payload, "LocalRank": -1, "Nodes": nodes}
    write_set(target_dir, target_stem, converted, convert_mod_list(mod_list))
    return len(nodes)
