"""A random-weight model on which prefill dominates time to first token on CPU: the tiny model's
tokenizer and chat template, a Llama with larger dimensions (seconds of prefill for about
2,000 tokens on one core). The RAG phase measures TTFT on it, where a cached prefix saves
real time; the tiny model (model_server/tiny_model.py) stays the one for counting.
"""

from __future__ import annotations

from pathlib import Path

HIDDEN_SIZE = 1536
NUM_HEADS = 24  # head size 64: vLLM's CPU attention needs at least 32
NUM_LAYERS = 12
INTERMEDIATE_SIZE = 4096
MAX_POSITIONS = 2048
SEED = 1234


def build(out_dir: Path) -> Path:
    """Tokenizer (the tiny model's) and seeded random weights into ``out_dir``; kept if built."""
    if (out_dir / "config.json").is_file():
        return out_dir
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from model_server.tiny_model import build_tokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out_dir)
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(AutoTokenizer.from_pretrained(str(out_dir))),
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(str(out_dir), safe_serialization=True)  # type: ignore[no-untyped-call]
    return out_dir
