"""The result folder vLLM for Gaudi reads, file by file, in one place.

Layout of ``<HF_HOME>/inc/<model basename>/`` (upstream ``calibrate_model.sh`` naming)::

    maxabs_quant_g2.json                  QUANT_CONFIG for vLLM; dump_stats_path -> g2/inc_output
    maxabs_measure_g2.json                the measurement config; dump -> hf_names/g2/inc_output
    calibration.json                      manifest, written last: the result is complete
    g2/inc_output_hooks_maxabs.npz|.json  measurements with vLLM module names (vllm_names.py)
    g2/inc_output_hooks_maxabs_mod_list.json
    g2/inc_output_hooks_maxabs_<rank>_<world>.npz|.json|_mod_list.json   per TP rank (world > 1)
    hf_names/maxabs_quant_g2.json         INC config for the Hugging Face model (optimum-habana)
    hf_names/g2/inc_output_hooks_maxabs.npz|.json|_mod_list.json   the raw dump, HF module names

INC names per-rank files ``<prefix>_hooks_<observer>_<local rank>_<world size>``; vLLM with
tensor parallelism loads the one matching each worker.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from common.constants import QUANT_CONFIG_FILE

SUBFOLDERS = {"GAUDI2": "g2", "GAUDI3": "g3"}
DUMP_PREFIX = "inc_output"
OBSERVER = "maxabs"
MANIFEST_FILE = "calibration.json"
MEASURE_TEMPLATE = "maxabs_measure.json"
QUANT_TEMPLATE = "maxabs_quant.json"
HF_NAMES_DIR = "hf_names"


def measure_config_name(device_for_scales: str) -> str:
    return f"maxabs_measure_{SUBFOLDERS[device_for_scales]}.json"


def dump_stats_path(result_dir: Path, device_for_scales: str) -> Path:
    """The prefix INC writes and reads measurement files under."""
    return result_dir / SUBFOLDERS[device_for_scales] / DUMP_PREFIX


def measurement_stem(rank: int | None = None, world_size: int | None = None) -> str:
    """INC's file stem: no suffix for a single process, ``_<rank>_<world>`` per TP rank."""
    stem = f"{DUMP_PREFIX}_hooks_{OBSERVER}"
    return stem if rank is None else f"{stem}_{rank}_{world_size}"


def stem_files(stem: str) -> list[str]:
    return [f"{stem}.npz", f"{stem}.json", f"{stem}_mod_list.json"]


def expected_files(device_for_scales: str, tp_size: int) -> list[str]:
    """Every file a complete result holds, relative to the result folder."""
    sub = SUBFOLDERS[device_for_scales]
    stems = [measurement_stem()]
    if tp_size > 1:
        stems += [measurement_stem(rank, tp_size) for rank in range(tp_size)]
    files = [f"{sub}/{name}" for stem in stems for name in stem_files(stem)]
    raw = [f"{HF_NAMES_DIR}/{sub}/{name}" for name in stem_files(measurement_stem())]
    return [
        QUANT_CONFIG_FILE,
        measure_config_name(device_for_scales),
        *files,
        f"{HF_NAMES_DIR}/{QUANT_CONFIG_FILE}",
        *raw,
    ]


def render_config(
    template: str,
    dump_path: Path,
    device: str,
    device_for_scales: str,
    allow_types: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A shipped INC config with this run's dump path; CPU needs QDQ and explicit Gaudi scales.

    ``allow_types`` limits quantization to the module types the measurement covers: INC refuses
    to run a quantizable module it has no measurement for.
    """
    config: dict[str, Any] = json.loads(resources.files("fp8_quant").joinpath(template).read_text())
    config["dump_stats_path"] = str(dump_path)
    if allow_types:
        config["allowlist"]["types"] = list(allow_types)
    config["device_for_scales"] = device_for_scales
    if device == "cpu":
        config["use_qdq"] = True
    return config


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, sort_keys=False) + "\n")


def expand_ranks(measure_dir: Path, tp_size: int) -> list[Path]:
    """Copy the single-process measurements to one file set per TP rank (LocalRank set).

    The maxima of a whole tensor bound those of each of its shards, so every rank gets scales
    that are safe for its shard (upstream ``step-6-expand-measurements.py`` does the same).
    """
    import numpy as np

    if tp_size <= 1:
        return []
    source = measurement_stem()
    measurements = json.loads((measure_dir / f"{source}.json").read_text())
    with np.load(measure_dir / f"{source}.npz", allow_pickle=True) as npz:
        arrays = npz["arr_0"].item()
    written = []
    for rank in range(tp_size):
        stem = measurement_stem(rank, tp_size)
        write_json(measure_dir / f"{stem}.json", {**measurements, "LocalRank": rank})
        # INC stores the dict as a 0-d object array (``np.savez(path, dict)``); so do we.
        np.savez(measure_dir / f"{stem}.npz", {**arrays, "LocalRank": rank})  # type: ignore[arg-type]
        shutil.copyfile(
            measure_dir / f"{source}_mod_list.json", measure_dir / f"{stem}_mod_list.json"
        )
        written += [measure_dir / name for name in stem_files(stem)]
    return written


def load_nodes(path: Path) -> dict[str, Any]:
    """The per-layer maxima of one measurement file (.npz as INC reads it, or .json)."""
    if path.suffix == ".json":
        nodes: dict[str, Any] = json.loads(path.read_text())["Nodes"]
        return nodes
    import numpy as np

    with np.load(path, allow_pickle=True) as npz:
        return dict(npz["arr_0"].item()["Nodes"])


def file_sizes(result_dir: Path, names: list[str]) -> dict[str, int]:
    return {name: (result_dir / name).stat().st_size for name in names}


def read_manifest(result_dir: Path) -> dict[str, Any] | None:
    """The manifest of a complete result, or None when absent, unreadable or files are missing."""
    try:
        manifest: dict[str, Any] = json.loads((result_dir / MANIFEST_FILE).read_text())
        sizes = manifest["files"]
        if all((result_dir / name).stat().st_size == size for name, size in sizes.items()):
            return manifest
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def check_measurements(path: Path) -> int:
    """Refuse a dump INC wrote without layers or with non-finite maxima; return layer count."""
    import numpy as np

    nodes = load_nodes(path)
    if not nodes:
        raise ValueError(f"{path.name} holds no measured layers")
    for name, node in nodes.items():
        values = [*node.get("inputs", []), *node.get("params", {}).values()]
        if not values or not all(np.all(np.isfinite(np.asarray(v, dtype=float))) for v in values):
            raise ValueError(f"{path.name}: layer {name} has missing or non-finite maxima")
    return len(nodes)
