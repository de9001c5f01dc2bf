"""The result folder vLLM for Gaudi reads, file by file, in one place.

Layout of ``<HF_HOME>/inc/<model basename>/``, the names of the vllm-gaudi plugin's
``calibration/calibrate_model.sh`` (v0.26.0)::

    maxabs_quant_g2.json                  QUANT_CONFIG for vLLM; dump_stats_path -> g2/inc_output
    maxabs_measure_g2.json                the measurement config; dump -> hf_names/g2/inc_output
    calibration.json                      manifest, written last: the result is complete
    g2/inc_output_hooks_maxabs_0_1.npz|.json|_mod_list.json   unified measurements, vLLM names
    g2/inc_output_hooks_maxabs_<rank>_<world>.npz|.json|_mod_list.json   per TP rank (world > 1)
    hf_names/maxabs_quant_g2.json         INC config for the Hugging Face model (optimum-habana)
    hf_names/g2/inc_output_hooks_maxabs.npz|.json|_mod_list.json   the raw dump, HF module names

INC names a process's files ``<prefix>_hooks_<observer>_<rank>_<world size>`` whenever
torch.distributed is up, and vLLM brings it up even on one card: a single card reads ``_0_1``,
rank r of N reads ``_<r>_<N>`` (ranks.py writes those). The raw dump is the job's own
single-process run, hence no suffix.
"""

from __future__ import annotations

import json
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
UNIFIED = (0, 1)  # (rank, world): what one card loads, and what per-rank files unify into


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
    stems = [measurement_stem(*UNIFIED)]
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


def listed(node: dict[str, Any]) -> dict[str, Any]:
    """A node in the JSON form INC writes: nested lists instead of arrays."""
    import numpy as np

    out: dict[str, Any] = {
        f: [np.asarray(v).tolist() for v in node[f]] for f in ("inputs", "outputs") if f in node
    }
    if "params" in node:
        out["params"] = {k: np.asarray(v).tolist() for k, v in node["params"].items()}
    return out


def write_set(folder: Path, stem: str, payload: dict[str, Any], mod_list: list[str]) -> list[Path]:
    """One measurement as INC writes it: the .npz it loads, the same in .json, the module list."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    # INC stores the dict as a 0-d object array (``np.savez(path, dict)``); so do we.
    np.savez(folder / f"{stem}.npz", payload)  # type: ignore[arg-type]
    nodes = {name: listed(node) for name, node in payload["Nodes"].items()}
    write_json(folder / f"{stem}.json", {**payload, "Nodes": nodes})
    write_json(folder / f"{stem}_mod_list.json", mod_list)
    return [folder / name for name in stem_files(stem)]


def read_payload(path: Path) -> dict[str, Any]:
    """The dict INC saved in an .npz (GlobalRank, LocalRank, Mode, Nodes)."""
    import numpy as np

    with np.load(path, allow_pickle=True) as npz:
        return dict(npz["arr_0"].item())


def read_set(folder: Path, stem: str) -> tuple[dict[str, Any], list[str]]:
    """The set write_set writes, as INC loads it: the .npz's dict and the module list."""
    mod_list: list[str] = json.loads((folder / f"{stem}_mod_list.json").read_text())
    return read_payload(folder / f"{stem}.npz"), mod_list


def load_nodes(path: Path) -> dict[str, Any]:
    """The per-layer maxima of one measurement file (.npz as INC reads it, or .json)."""
    if path.suffix == ".json":
        nodes: dict[str, Any] = json.loads(path.read_text())["Nodes"]
        return nodes
    return dict(read_payload(path)["Nodes"])


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
