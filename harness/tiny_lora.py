"""Build a seeded random-weight LoRA adapter for the tiny model (model_server/tiny_model.py),
fully offline, so tests can serve adapters with real vLLM on CPU.

peft writes the adapter (``adapter_config.json`` + ``adapter_model.safetensors``), so its
format is the one vLLM's loader is written against. peft initialises ``lora_B`` to zero, which
makes an adapter that changes nothing; here every weight is random (``init_lora_weights=False``:
both matrices keep nn.Linear's Kaiming init), large enough that greedy answers with the adapter
differ from the base model's. Different seeds give different adapters; one seed gives the same
files every time.

Usage: ``python -m harness.tiny_lora OUT_DIR BASE_MODEL_DIR [--seed N] [--if-missing]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model_server import tiny_model

RANK = 8
# The name the tests' LoRA server lists its first adapter under (VLLM_LORA_MODULES).
LISTED_ADAPTER = "tiny-lora-listed"
ALPHA = 16
SEED = 4321
# Every linear projection of a Llama block: attention and MLP.
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


def build(out_dir: Path, base_model_dir: Path, seed: int = SEED) -> Path:
    """Write a rank-8 adapter for the model in ``base_model_dir`` into ``out_dir``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(base_model_dir), dtype=torch.float32)
    config = LoraConfig(
        r=RANK,
        lora_alpha=ALPHA,
        target_modules=list(TARGET_MODULES),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,  # random B as well as A: a zero B would be a no-op adapter
    )
    with torch.random.fork_rng():  # seed the adapter alone, not the caller's generator
        torch.manual_seed(seed)
        adapter = get_peft_model(base, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    adapter.save_pretrained(str(out_dir))
    return out_dir


def is_built(out_dir: Path) -> bool:
    return (out_dir / CONFIG_FILE).is_file() and (out_dir / WEIGHTS_FILE).is_file()


def ensure(out_dir: Path, base_model_dir: Path, seed: int = SEED) -> Path:
    """Build into ``out_dir`` unless an adapter is already there, never half of one (as the
    tiny model is built). An adapter already there is kept whatever its seed: name the folder
    after the seed when several are wanted."""
    return tiny_model.ensure(out_dir, lambda into: build(into, base_model_dir, seed), is_built)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.tiny_lora",
        description="Build a seeded random-weight LoRA adapter for the tiny model.",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write the adapter into")
    parser.add_argument("base_model_dir", type=Path, help="the tiny model's folder")
    parser.add_argument("--seed", type=int, default=SEED, help="another seed, another adapter")
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="keep an adapter already in OUT_DIR; else build it in a temporary folder and "
        "rename that into place",
    )
    args = parser.parse_args(argv)
    if args.if_missing:
        path = ensure(args.out_dir, args.base_model_dir, args.seed)
    else:
        path = build(args.out_dir, args.base_model_dir, args.seed)
    print(f"tiny LoRA adapter in {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
