"""Build a tiny, random-weight Idefics3 vision-language model that vLLM on CPU serves, offline.

Tests of image requests (OpenAI ``image_url`` content parts) need a model that takes images,
and no model hub is reachable, so one is made on the spot: a SigLIP-like vision tower, a
pixel-shuffle connector and a Llama, all tiny and seeded.

Why Idefics3 and not LLaVA: vLLM 0.32's llava module (and qwen2_vl, llava_next, gemma3_mm,
internvl, mistral3, ...) imports torchvision, which the CPU image uninstalls (its PyPI build is
CUDA's); idefics3 imports without it, its text model is a Llama like the text test model, and
with image splitting off every image, whatever its size, becomes one 64x64 tile of
``IMAGE_TOKENS`` tokens.

Usage: ``python -m harness.tiny_vlm OUT_DIR``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model_server import tiny_model

IMAGE_TOKEN = "<image>"
# Idefics3's processor wraps each image's tokens in these; vLLM tokenizes the same string, so
# each must be one token.
FAKE_IMAGE_TOKEN = "<fake_token_around_image>"
GLOBAL_IMAGE_TOKEN = "<global-img>"
END_OF_UTTERANCE = "<end_of_utterance>"
IMAGE_SIZE = 64
PATCH_SIZE = 8
SCALE_FACTOR = 2  # the connector's pixel shuffle: 2x2 patches become one token
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2 // SCALE_FACTOR**2
# An image adds <fake><global-img><image>*IMAGE_TOKENS<fake> to the prompt.
PROMPT_TOKENS_PER_IMAGE = IMAGE_TOKENS + 3
# vLLM's CPU attention kernels need heads of at least 32; the vision tower keeps that shape too.
VISION_HIDDEN = 64
VISION_HEADS = 2

# Renders a message's content whether a string or OpenAI parts. vLLM sees the loop over parts
# and passes parts, an image as {"type": "image"}, rendered as the `<image>` that vLLM expands.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] in ('image', 'image_url') %}" + IMAGE_TOKEN + "{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_processor(out_dir: Path) -> tuple[int, int]:
    """The text model's tokenizer plus the image tokens, and an image processor that makes
    every image one tile; returns the tokenizer's size and the `<image>` token's id."""
    from transformers import AutoTokenizer, Idefics3ImageProcessor, Idefics3Processor

    tiny_model.build_tokenizer(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    # Added here, in a fixed order, so the ids do not depend on the processor's own additions.
    specials = [FAKE_IMAGE_TOKEN, IMAGE_TOKEN, END_OF_UTTERANCE, GLOBAL_IMAGE_TOKEN]
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.chat_template = CHAT_TEMPLATE
    image_processor = Idefics3ImageProcessor(
        do_image_splitting=False,
        size={"longest_edge": IMAGE_SIZE},
        max_image_size={"longest_edge": IMAGE_SIZE},
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=IMAGE_TOKENS,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(str(out_dir))
    tiny_model.keep_chat_template(out_dir, CHAT_TEMPLATE)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert isinstance(image_token_id, int)
    return len(tokenizer), image_token_id


def build_model(out_dir: Path, vocab_size: int, image_token_id: int) -> None:
    """A seeded random-weight Idefics3ForConditionalGeneration saved as safetensors."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3VisionConfig

    torch.manual_seed(tiny_model.SEED)
    text = tiny_model.llama_config(vocab_size)
    vision = Idefics3VisionConfig(
        hidden_size=VISION_HIDDEN,
        intermediate_size=2 * VISION_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=VISION_HEADS,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
    )
    config = Idefics3Config(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        scale_factor=SCALE_FACTOR,
        pad_token_id=3,
        tie_word_embeddings=False,
    )
    model = Idefics3ForConditionalGeneration(config)  # type: ignore[no-untyped-call]
    model.save_pretrained(str(out_dir), safe_serialization=True)


def png_data_url(
    width: int = 48, height: int = 40, rgb: tuple[int, int, int] = (30, 160, 90)
) -> str:
    """A solid-colour PNG as the ``data:image/png;base64,...`` URL an ``image_url`` part holds;
    any size gives IMAGE_TOKENS tokens."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), rgb).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def build(out_dir: Path) -> Path:
    """Write processor, tokenizer and model into ``out_dir`` and return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_size, image_token_id = build_processor(out_dir)
    build_model(out_dir, vocab_size, image_token_id)
    return out_dir


def ensure(out_dir: Path) -> Path:
    """Build into ``out_dir`` unless a model is already there; never leave half a model
    (built in a sibling folder and renamed into place, as the text model is)."""
    return tiny_model.ensure(out_dir, build)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.tiny_vlm",
        description="Build a tiny offline Idefics3 model (processor, weights, chat template).",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write the model into")
    args = parser.parse_args(argv)
    print(f"tiny VLM written to {ensure(args.out_dir)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
