"""Build a tiny, random-weight Llama model that vLLM on CPU can serve, fully offline.

Tests and offline smoke runs cannot reach a model hub, so they need a model made on the spot.
Everything is seeded, so two builds give the same files and the same generations.

Usage: ``python -m model_server.tiny_model OUT_DIR [--if-missing]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import LlamaConfig

# vLLM's CPU attention kernels require a head size of at least 32.
VOCAB_SIZE = 512
MAX_POSITIONS = 2048
SEED = 1234


@dataclass(frozen=True, slots=True)
class Dimensions:
    """The Llama's shape; the default is the tiny model the tests and the counts use."""

    hidden_size: int = 64
    num_heads: int = 2
    num_layers: int = 2
    intermediate_size: int = 128


TINY = Dimensions()

BOS, EOS, UNK, PAD = "<s>", "</s>", "<unk>", "<pad>"

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_WORDS = (  # noqa: SIM905 - a sentence reads better than a list of 80 strings
    "the model server answers every request with tokens generated on intel xeon cpus and gaudi "
    "accelerators while the microservice streams them to clients who ask questions about "
    "documents retrieval augmented generation quantization calibration measurements kernels "
    "throughput latency memory cache attention layers weights prompts completions chat system "
    "user assistant hello world what is deep learning tell me a story about a fast cat and a slow "
    "dog running under the blue sky near green trees one two three four five six seven eight nine"
).split()


def _corpus() -> list[str]:
    """Deterministic training text: every word pair, in a fixed order."""
    lines = []
    for i, first in enumerate(_WORDS):
        for j in range(0, len(_WORDS), 7):
            second = _WORDS[(i + j) % len(_WORDS)]
            lines.append(f"{first} {second}, {first.capitalize()}. {second}? {i * j % 97}!")
    return lines


def build_tokenizer(out_dir: Path) -> None:
    """Train a byte-level BPE tokenizer and save it in Hugging Face format."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[UNK, BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        model_max_length=MAX_POSITIONS,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out_dir))
    keep_chat_template(out_dir, CHAT_TEMPLATE)


def keep_chat_template(out_dir: Path, template: str) -> None:
    """Older transformers keep the template only in tokenizer_config.json; make sure it is
    there too."""
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = template
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def llama_config(vocab_size: int, dims: Dimensions = TINY) -> LlamaConfig:
    """The tiny Llama's configuration (also the text model of the tests' vision model)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=dims.hidden_size,
        intermediate_size=dims.intermediate_size,
        num_hidden_layers=dims.num_layers,
        num_attention_heads=dims.num_heads,
        num_key_value_heads=dims.num_heads,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
    )


def build_model(out_dir: Path, vocab_size: int, dims: Dimensions = TINY) -> None:
    """Create a seeded random-weight LlamaForCausalLM and save it as safetensors."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(SEED)
    config = llama_config(vocab_size, dims)
    model = LlamaForCausalLM(config)  # type: ignore[no-untyped-call]
    model.save_pretrained(str(out_dir), safe_serialization=True)


def build(out_dir: Path, dims: Dimensions = TINY) -> Path:
    """Write tokenizer and model into ``out_dir`` and return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out_dir)
    from transformers import AutoTokenizer

    vocab_size = len(AutoTokenizer.from_pretrained(str(out_dir)))
    build_model(out_dir, vocab_size, dims)
    return out_dir


def is_built(out_dir: Path) -> bool:
    return (out_dir / "config.json").is_file()


def ensure(
    out_dir: Path,
    build: Callable[[Path], object] = build,
    is_built: Callable[[Path], bool] = is_built,
) -> Path:
    """Build into ``out_dir`` unless a model is already there; never leave half a model.
    ``build`` and ``is_built`` make another model (the tests' reranker, vision model, LoRA
    adapters) the same way.

    The model is built in a sibling folder and renamed into place, so ``out_dir`` holds a
    config.json only once everything is written; an interrupted build is built again.
    """
    if is_built(out_dir):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        build(partial)
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        try:
            partial.rename(out_dir)
        except OSError:
            if not is_built(out_dir):  # a concurrent build that won the rename is fine
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_server.tiny_model",
        description="Build a tiny offline Llama model (tokenizer, weights, chat template).",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write the model into")
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="keep a model already built in OUT_DIR; else build it in a temporary folder and "
        "rename that into place, so an interrupted build is never reused",
    )
    args = parser.parse_args(argv)
    if args.if_missing and is_built(args.out_dir):
        print(f"tiny model already in {args.out_dir}", file=sys.stderr)
        return 0
    path = ensure(args.out_dir) if args.if_missing else build(args.out_dir)
    print(f"tiny model written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
