"""A random-weight model on which prefill dominates time to first token on CPU: the tiny model's
tokenizer and chat template, a Llama with larger dimensions (seconds of prefill for about
2,000 tokens on one core). The RAG phase measures TTFT on it, where a cached prefix saves
real time; the tiny model (model_server/tiny_model.py) stays the one for counting.
"""

from __future__ import annotations

from pathlib import Path

from model_server.tiny_model import Dimensions

# Head size 64: vLLM's CPU attention needs at least 32.
PREFILL_HEAVY = Dimensions(hidden_size=1536, num_heads=24, num_layers=12, intermediate_size=4096)


def build(out_dir: Path) -> Path:
    """Tokenizer (the tiny model's) and seeded random weights into ``out_dir``; kept if built."""
    from model_server import tiny_model

    if tiny_model.is_built(out_dir):
        return out_dir
    return tiny_model.build(out_dir, PREFILL_HEAVY)
