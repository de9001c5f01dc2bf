"""Build a tiny, random-weight cross-encoder (a reranker, as BAAI's bge-reranker is one) that
vLLM on CPU serves for ``/rerank`` and ``/score``, fully offline and seeded like the tiny chat
model (``model_server.tiny_model``): a two-layer BERT with one output label and a WordPiece
vocabulary of the chat model's words.

Usage: ``python -m harness.tiny_reranker OUT_DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

from model_server import tiny_model

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Wider than the usual 0.02, so that random weights give documents scores that differ.
INITIALIZER_RANGE = 0.5


def vocabulary() -> list[str]:
    words = sorted(set(tiny_model._WORDS))
    return [*SPECIAL, *words, *".,?!0123456789"]


def build(out_dir: Path) -> Path:
    """Write the tokenizer and the seeded model into ``out_dir``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary()
    tokenizer = BertTokenizer(
        vocab={word: i for i, word in enumerate(vocab)}, do_lower_case=True, model_max_length=512
    )
    tokenizer.save_pretrained(str(out_dir))
    torch.manual_seed(tiny_model.SEED)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,  # vLLM's CPU attention needs heads of 32 or more
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        num_labels=1,  # type: ignore[call-arg]  # one score per pair: a cross-encoder
        initializer_range=INITIALIZER_RANGE,
    )
    model = BertForSequenceClassification(config)  # type: ignore[no-untyped-call]
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return out_dir


def ensure(out_dir: Path) -> Path:
    """Build into ``out_dir`` unless a reranker is already there; never half of one."""
    return tiny_model.ensure(out_dir, build)


if __name__ == "__main__":
    print(f"tiny reranker written to {ensure(Path(sys.argv[1]))}", file=sys.stderr)
