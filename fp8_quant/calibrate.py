"""Run the Intel Neural Compressor FP8 measurement over the calibration prompts.

torch, transformers and INC are imported inside the functions: they take seconds to import, and
configuration or dataset errors must be reported before paying for that.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fp8_quant.errors import JobError
from fp8_quant.settings import Fp8Settings

# INC names files per rank when these are set; this job measures one unsharded model and
# writes the per-rank files itself (ranks.expand), so a launcher's values must not leak in.
RANK_VARIABLES = ("WORLD_SIZE", "LOCAL_RANK", "RANK")


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    sync: Callable[[], None]


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _device_sync(device: str) -> Callable[[], None]:
    """On Gaudi (lazy mode) each step must be flushed to the device; on CPU nothing to do."""
    if device == "cpu":
        return lambda: None
    try:
        import habana_frameworks.torch.core as htcore
    except ImportError:
        raise JobError("LLM_DEVICE=hpu but habana_frameworks is not installed") from None
    return htcore.mark_step  # type: ignore[no-any-return]


def _dtype_kwarg() -> str:
    """transformers renamed ``torch_dtype`` to ``dtype`` in 4.56; Gaudi images may be older."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def load_model(settings: Fp8Settings) -> LoadedModel:
    """Tokenizer and bf16 model through the HF cache; any failure is one line naming the model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = settings.llm_vllm_model_name
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    common: dict[str, Any] = {"token": token, "cache_dir": str(settings.hf_home / "hub")}
    sync = _device_sync(settings.llm_device)
    model: Any  # transformers' own annotations do not type-check under strict mypy
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, padding_side="left", **common)
        model = AutoModelForCausalLM.from_pretrained(
            name, **{_dtype_kwarg(): torch.bfloat16}, **common
        )
    except Exception as error:
        raise JobError(f"cannot load model {name!r}: {_first_line(error)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    if settings.llm_device == "hpu":
        model = model.to("hpu")
    return LoadedModel(model=model, tokenizer=tokenizer, sync=sync)


def measure(
    loaded: LoadedModel,
    prompts: list[str],
    config_path: Path,
    settings: Fp8Settings,
    log: Callable[[str, dict[str, object]], None],
) -> int:
    """Patch the model with the MEASURE config, run every prompt, dump maxima; return tokens."""
    import torch
    from neural_compressor.torch.quantization import (
        FP8Config,
        finalize_calibration,
        prepare,
    )
    from tqdm import tqdm

    for name in RANK_VARIABLES:
        os.environ.pop(name, None)
    model = prepare(loaded.model, FP8Config.from_json_file(str(config_path)))
    device = "hpu" if settings.llm_device == "hpu" else "cpu"
    size = settings.fp8_batch_size
    tokens = 0
    log("calibration started", {"samples": len(prompts), "batch_size": size})
    with (
        torch.no_grad(),
        tqdm(total=len(prompts), unit="sample", desc="calibrating", file=sys.stderr) as bar,
    ):
        for start in range(0, len(prompts), size):
            batch = prompts[start : start + size]
            encoded = loaded.tokenizer(
                batch,
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=settings.fp8_max_seq_len,
            ).to(device)
            model(**encoded)
            loaded.sync()
            tokens += int(encoded["attention_mask"].sum())
            bar.update(len(batch))
    finalize_calibration(model)
    return tokens
