"""Per-rank sets: unify N ranks onto fewer cards, expand the unified set to a TP size.

The rank files here are STAND-INS: payloads shaped as INC saves them, with chosen maxima, so that
every group's expected maximum is known. tests/integration/fp8_quant unifies real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fp8_quant import layout, ranks
from tests.unit.fp8_quant.test_layout import fake_measurement

LAYERS = ("model.layers.0.self_attn.qkv_proj", "model.layers.0.mlp.down_proj")


def standin_rank_files(folder: Path, world: int) -> None:
    """Rank r's maxima: input 10*r + layer index, weight r + 0.5 (outputs on the first layer)."""
    for rank in range(world):
        nodes: dict[str, object] = {}
        for index, name in enumerate(LAYERS):
            node: dict[str, object] = {
                "inputs": [np.array([[10.0 * rank + index]], dtype=np.float32)],
                "params": {"weight": np.array([[rank + 0.5]], dtype=np.float32)},
            }
            if index == 0:
                node["outputs"] = [np.array([[100.0 - rank]], dtype=np.float32)]
            nodes[name] = node
        fake_measurement(folder, nodes, layout.measurement_stem(rank, world))


def _value(array: object) -> float:
    return float(np.asarray(array).ravel()[0])


def test_unify_onto_one_card_takes_the_maximum_over_all_ranks(tmp_path: Path) -> None:
    standin_rank_files(tmp_path, 4)
    written = ranks.unify(tmp_path, 1)
    stem = layout.measurement_stem(0, 1)
    assert sorted(p.name for p in written) == sorted(layout.stem_files(stem))
    payload = layout.read_payload(tmp_path / f"{stem}.npz")
    assert payload["LocalRank"] == -1  # as the plugin's step-5 marks a set unified onto one card
    qkv, down = (payload["Nodes"][name] for name in LAYERS)
    assert _value(qkv["inputs"][0]) == 30.0 and _value(down["inputs"][0]) == 31.0
    assert _value(qkv["params"]["weight"]) == 3.5
    assert _value(qkv["outputs"][0]) == 100.0
    from_json = layout.load_nodes(tmp_path / f"{stem}.json")
    assert from_json[LAYERS[1]]["inputs"] == [[[31.0]]]
    assert json.loads((tmp_path / f"{stem}_mod_list.json").read_text()) == list(LAYERS)


def test_unify_groups_consecutive_ranks(tmp_path: Path) -> None:
    standin_rank_files(tmp_path, 4)
    ranks.unify(tmp_path, 2, out=tmp_path / "out")
    for group, top in ((0, 1), (1, 3)):  # ranks 0-1 -> 0, ranks 2-3 -> 1
        payload = layout.read_payload(tmp_path / "out" / f"{layout.measurement_stem(group, 2)}.npz")
        assert payload["LocalRank"] == group
        assert _value(payload["Nodes"][LAYERS[0]]["inputs"][0]) == 10.0 * top
        assert _value(payload["Nodes"][LAYERS[0]]["outputs"][0]) == 100.0 - 2 * group


def test_expand_gives_every_rank_the_unified_set(tmp_path: Path) -> None:
    standin_rank_files(tmp_path, 2)
    ranks.unify(tmp_path, 1)
    written = ranks.expand(tmp_path, 3)
    assert len(written) == 9
    for rank in range(3):
        stem = layout.measurement_stem(rank, 3)
        payload = layout.read_payload(tmp_path / f"{stem}.npz")
        assert payload["LocalRank"] == rank
        assert _value(payload["Nodes"][LAYERS[0]]["inputs"][0]) == 10.0
        assert json.loads((tmp_path / f"{stem}.json").read_text())["LocalRank"] == rank
    assert ranks.expand(tmp_path, 1) == []


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing rank", "world size 4 lacks ranks [2]"),
        ("not a divisor", "cannot unify 4 ranks onto 3"),
        ("two world sizes", "one world size, found [2, 4]"),
        ("other layers", "expert-parallel"),
        ("no rank files", "one world size, found []"),
    ],
)
def test_refusals(tmp_path: Path, case: str, message: str) -> None:
    target = 3 if case == "not a divisor" else 1
    if case != "no rank files":
        standin_rank_files(tmp_path, 4)
    if case == "missing rank":
        for path in tmp_path.glob(f"{layout.measurement_stem(2, 4)}*"):
            path.unlink()
    if case == "two world sizes":
        standin_rank_files(tmp_path, 2)
    if case == "other layers":  # as with experts split over ranks
        fake_measurement(
            tmp_path, {"model.layers.0.mlp.experts.7": {"inputs": [np.ones((1, 1))]}},
            layout.measurement_stem(3, 4),
        )  # fmt: skip
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ranks.unify(tmp_path, target)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    standin_rank_files(tmp_path, 2)
    assert ranks.main([str(tmp_path), "--unify-to", "1", "--expand-to", "4"]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 3 + 12 and printed[0].endswith("_0_1.npz")
    assert ranks.main([str(tmp_path / "absent"), "--unify-to", "1"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fp8_quant.ranks: ")
