"""The calibration job, step by step: check inputs, reuse or measure, then publish atomically.

Order matters: everything that can be refused (dataset, lock, model) is checked before any file
is written, and the result folder is only ever replaced by a complete one.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from common.constants import QUANT_CONFIG_FILE
from fp8_quant import dataset as datasets
from fp8_quant import layout, publish, ranks, vllm_names
from fp8_quant.errors import JobError
from fp8_quant.settings import Fp8Settings

# 2: measurements renamed to vLLM's modules, raw dump under hf_names/; 3: the vLLM set is named
# _0_1 (what one card loads, as the Gaudi plugin's calibration writes it), no suffix-less set
MANIFEST_FORMAT = 3


def fingerprint(settings: Fp8Settings, data: datasets.Dataset) -> dict[str, Any]:
    """What makes two results interchangeable; a stored result is reused only on a match."""
    return {
        "format": MANIFEST_FORMAT,
        "model": settings.llm_vllm_model_name,
        "dataset_sha256": data.sha256,
        "samples": len(data.samples),
        "max_seq_len": settings.fp8_max_seq_len,
        "device": settings.llm_device,
        "device_for_scales": settings.fp8_device_for_scales,
        "tp_size": settings.vllm_tp_size,
    }


class Job:
    def __init__(self, settings: Fp8Settings, log: logging.Logger) -> None:
        self.settings = settings
        self.log = log

    def event(self, message: str, fields: dict[str, object] | None = None) -> None:
        self.log.info(message, extra={"fields": fields or {}})

    def run(self, force: bool) -> Path:
        """Return the quant config path vLLM should load, calibrating only when needed."""
        s = self.settings
        target = s.result_dir
        data = datasets.load(s.fp8_dataset_path, s.fp8_max_samples)
        self.event("dataset read", {"path": str(data.path), "samples": len(data.samples)})
        wanted = fingerprint(s, data)
        with publish.locked(target):
            for path in publish.clean_stale(target):
                self.event("removed an interrupted run's folder", {"path": str(path)})
            stored = layout.read_manifest(target)
            if stored is not None and not force and stored.get("fingerprint") == wanted:
                self.event(
                    "reusing the complete result (--force recalibrates)", {"dir": str(target)}
                )
                return target / QUANT_CONFIG_FILE
            if stored is not None and not force:
                self.event("stored result was made for other settings; recalibrating", {})
            self.calibrate(data, target, wanted)
        return target / QUANT_CONFIG_FILE

    def calibrate(self, data: datasets.Dataset, target: Path, wanted: dict[str, Any]) -> None:
        from fp8_quant import calibrate

        s = self.settings
        started = time.monotonic()
        loaded = calibrate.load_model(s)
        prompts = datasets.render(data.samples, loaded.tokenizer)
        temp = publish.new_temp(target)
        self.event("calibrating into a temporary folder", {"dir": str(temp)})
        try:
            self._measure_into(temp, loaded, prompts, data, target, wanted)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        publish.publish(temp, target)
        self.event(
            "calibration published",
            {
                "dir": str(target),
                "samples": len(prompts),
                "seconds": round(time.monotonic() - started, 1),
            },
        )

    def _measure_into(
        self,
        temp: Path,
        loaded: Any,
        prompts: list[str],
        data: datasets.Dataset,
        target: Path,
        wanted: dict[str, Any],
    ) -> None:
        from fp8_quant import calibrate

        s = self.settings
        scales = s.fp8_device_for_scales
        measure_config = temp / layout.measure_config_name(scales)
        raw_dump = layout.dump_stats_path(temp / layout.HF_NAMES_DIR, scales)
        config = layout.render_config(layout.MEASURE_TEMPLATE, raw_dump, s.llm_device, scales)
        layout.write_json(measure_config, config)
        raw_dump.parent.mkdir(parents=True)
        tokens = calibrate.measure(loaded, prompts, measure_config, s, self.event)

        vllm_dir = layout.dump_stats_path(temp, scales).parent
        unified = layout.measurement_stem(*layout.UNIFIED)
        try:
            hf_layers = layout.check_measurements(
                raw_dump.parent / f"{layout.measurement_stem()}.npz"
            )
            layers = vllm_names.convert_dump(raw_dump.parent, vllm_dir, unified)
            layout.check_measurements(vllm_dir / f"{unified}.npz")
        except (OSError, ValueError) as error:
            raise JobError(f"calibration produced no usable measurements: {error}") from None
        ranks.expand(vllm_dir, s.vllm_tp_size)
        self._write_configs(temp, target)
        names = layout.expected_files(scales, s.vllm_tp_size)
        manifest = {
            "format": MANIFEST_FORMAT,
            "fingerprint": wanted,
            "dataset": str(data.path),
            "tokens": tokens,
            "layers": layers,
            "hf_layers": hf_layers,
            "quant_config": QUANT_CONFIG_FILE,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": layout.file_sizes(temp, names),
        }
        layout.write_json(temp / layout.MANIFEST_FILE, manifest)  # last: marks it complete
        self.event("measured", {"layers": layers, "hf_layers": hf_layers, "tokens": tokens})

    def _write_configs(self, temp: Path, target: Path) -> None:
        """The kept configs name the final location: that is where vLLM (or INC) reads them."""
        s = self.settings
        scales = s.fp8_device_for_scales
        raw_dump = layout.dump_stats_path(target / layout.HF_NAMES_DIR, scales)
        configs = {
            layout.measure_config_name(scales): (layout.MEASURE_TEMPLATE, raw_dump, ()),
            QUANT_CONFIG_FILE: (
                layout.QUANT_TEMPLATE,
                layout.dump_stats_path(target, scales),
                vllm_names.VLLM_QUANTIZED_TYPES,
            ),
            f"{layout.HF_NAMES_DIR}/{QUANT_CONFIG_FILE}": (
                layout.QUANT_TEMPLATE,
                raw_dump,
                vllm_names.HF_QUANTIZED_TYPES,
            ),
        }
        for name, (template, dump, types) in configs.items():
            config = layout.render_config(template, dump, s.llm_device, scales, types)
            layout.write_json(temp / name, config)
