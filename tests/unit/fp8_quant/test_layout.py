"""Result layout: INC's file names (per TP rank too), configs, rank expansion, completeness."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fp8_quant import layout


def test_measurement_names_follow_inc() -> None:
    assert layout.measurement_stem() == "inc_output_hooks_maxabs"
    assert layout.measurement_stem(1, 2) == "inc_output_hooks_maxabs_1_2"
    assert layout.stem_files("s") == ["s.npz", "s.json", "s_mod_list.json"]


def test_expected_files_per_rank() -> None:
    single = layout.expected_files("GAUDI2", 1)
    assert single[:2] == ["maxabs_quant_g2.json", "maxabs_measure_g2.json"]
    # vLLM brings torch.distributed up on one card too: INC there reads the _0_1 set
    assert "g2/inc_output_hooks_maxabs_0_1.npz" in single
    assert "g2/inc_output_hooks_maxabs.npz" not in single
    assert "hf_names/g2/inc_output_hooks_maxabs.npz" in single  # the raw single-process dump
    tp4 = layout.expected_files("GAUDI3", 4)
    for rank in range(4):
        assert f"g3/inc_output_hooks_maxabs_{rank}_4.npz" in tp4
        assert f"g3/inc_output_hooks_maxabs_{rank}_4_mod_list.json" in tp4
    assert "g3/inc_output_hooks_maxabs_0_1.json" in tp4
    assert "hf_names/g3/inc_output_hooks_maxabs.npz" in tp4
    assert "hf_names/maxabs_quant_g2.json" in tp4  # INC's config name, whatever the generation
    assert not any(name.startswith("hf_names/") and "_4" in name for name in tp4)
    assert len(tp4) == 2 + 3 * 5 + 1 + 3


@pytest.mark.parametrize(("device", "qdq"), [("cpu", True), ("hpu", None)])
def test_render_config(device: str, qdq: bool | None) -> None:
    dump = Path("/cache/inc/m/g2/inc_output")
    quant = layout.render_config(layout.QUANT_TEMPLATE, dump, device, "GAUDI2")
    assert quant["mode"] == "QUANTIZE"
    assert quant["scale_method"] == "maxabs_hw"
    assert quant["dump_stats_path"] == str(dump)
    assert quant["device_for_scales"] == "GAUDI2"
    assert quant.get("use_qdq") is qdq
    assert quant["allowlist"]["types"] == []
    measure = layout.render_config(layout.MEASURE_TEMPLATE, dump, device, "GAUDI2")
    assert measure["mode"] == "MEASURE"
    assert measure["blocklist"]["names"] == quant["blocklist"]["names"] == ["lm_head"]
    allowed = layout.render_config(layout.QUANT_TEMPLATE, dump, device, "GAUDI2", ("A", "B"))
    assert allowed["allowlist"]["types"] == ["A", "B"]


def fake_measurement(folder: Path, nodes: dict[str, object], stem: str | None = None) -> None:
    """A STAND-IN for an INC dump: the payload INC saves, written with the job's own writer."""
    body = {"GlobalRank": None, "LocalRank": None, "Mode": "DynamicRange", "Nodes": nodes}
    layout.write_set(folder, stem or layout.measurement_stem(), body, list(nodes))


def test_check_measurements(tmp_path: Path) -> None:
    stem = layout.measurement_stem()
    fake_measurement(tmp_path / "ok", {"a": {"inputs": [np.array([[1.0]])]}})
    assert layout.check_measurements(tmp_path / "ok" / f"{stem}.npz") == 1
    fake_measurement(tmp_path / "empty", {})
    with pytest.raises(ValueError, match="no measured layers"):
        layout.check_measurements(tmp_path / "empty" / f"{stem}.npz")
    fake_measurement(tmp_path / "nan", {"a": {"inputs": [np.array([[float("nan")]])]}})
    with pytest.raises(ValueError, match="layer a has missing or non-finite"):
        layout.check_measurements(tmp_path / "nan" / f"{stem}.json")


def test_manifest_marks_complete_only_with_every_file(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    assert layout.read_manifest(tmp_path) is None
    manifest = {"files": layout.file_sizes(tmp_path, ["a.json"])}
    layout.write_json(tmp_path / layout.MANIFEST_FILE, manifest)
    assert layout.read_manifest(tmp_path) == manifest
    (tmp_path / "a.json").write_text("{ }")  # truncated or rewritten: not the recorded file
    assert layout.read_manifest(tmp_path) is None
    (tmp_path / "a.json").unlink()
    assert layout.read_manifest(tmp_path) is None
    (tmp_path / layout.MANIFEST_FILE).write_text("{not json")
    assert layout.read_manifest(tmp_path) is None
    shutil.rmtree(tmp_path)
    assert layout.read_manifest(tmp_path) is None
