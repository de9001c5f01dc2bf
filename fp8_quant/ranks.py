"""Per-rank measurement files: unify N ranks' maxima onto fewer cards, expand one set to many.

vLLM with tensor parallelism N loads, on rank r, ``<dump>_hooks_maxabs_<r>_<N>.npz``. A result
measured for one world size serves another only after conversion, which is what the vllm-gaudi
plugin's ``calibration/step-5-unify_measurements.py`` and ``step-6-expand-measurements.py`` do
(v0.26.0); the same rules, for dense models, here:

- unify N -> M (M divides N): ranks ``g*N/M ... (g+1)*N/M - 1`` become rank g, each maximum the
  largest over the group (a group's shards together see what the merged card sees);
- expand 1 -> M: every rank gets the unified set (a whole tensor's maximum bounds each shard's).

Expert-parallel (MoE) measurements, whose ranks hold different experts, are refused: the
plugin's scripts with ``-u`` handle those.

    python -m fp8_quant.ranks DIR --unify-to 1 [--expand-to 4]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from fp8_quant.layout import UNIFIED, measurement_stem, read_payload, read_set, write_set
from fp8_quant.vllm_names import max_merge


def _rank_file(stem: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(stem)}_(\d+)_(\d+)\.npz$")


def find_ranks(folder: Path) -> int:
    """The world size of the per-rank sets in ``folder``; every rank must be there, once."""
    found: dict[int, set[int]] = {}
    for path in folder.iterdir():
        if match := _rank_file(measurement_stem()).match(path.name):
            rank, world = int(match[1]), int(match[2])
            found.setdefault(world, set()).add(rank)
    worlds = sorted(found.keys() - {UNIFIED[1]}) or sorted(found)
    if len(worlds) != 1:
        raise ValueError(f"{folder}: expected per-rank files of one world size, found {worlds}")
    world = worlds[0]
    missing = sorted(set(range(world)) - found[world])
    if missing:
        raise ValueError(f"{folder}: world size {world} lacks ranks {missing}")
    return world


def _merge_group(folder: Path, stems: list[str]) -> tuple[dict[str, Any], list[str]]:
    first, mod_list = read_set(folder, stems[0])
    payloads = [first, *(read_payload(folder / f"{stem}.npz") for stem in stems[1:])]
    names = list(payloads[0]["Nodes"])
    for stem, payload in zip(stems, payloads, strict=True):
        if list(payload["Nodes"]) != names:
            raise ValueError(
                f"{stem}: other layers than {stems[0]} (expert-parallel measurements are "
                "unified by the plugin's step-5 script with -u)"
            )
    nodes = {n: max_merge(n, [p["Nodes"][n] for p in payloads]) for n in names}
    return {**first, "Nodes": nodes}, mod_list


def unify(folder: Path, ranks: int, out: Path | None = None) -> list[Path]:
    """Write ``ranks`` sets (``_<g>_<ranks>``) from the per-rank sets in ``folder``."""
    world = find_ranks(folder)
    if ranks < 1 or ranks > world or world % ranks:
        raise ValueError(f"cannot unify {world} ranks onto {ranks}: it must divide {world}")
    size = world // ranks
    written: list[Path] = []
    for group in range(ranks):
        stems = [measurement_stem(r, world) for r in range(group * size, (group + 1) * size)]
        try:
            payload, mod_list = _merge_group(folder, stems)
        except ValueError as error:
            raise ValueError(f"cannot unify {stems[0]}..: {error}") from None
        payload["LocalRank"] = group if ranks > 1 else -1  # as the plugin's step-5 marks it
        written += write_set(out or folder, measurement_stem(group, ranks), payload, mod_list)
    return written


def expand(folder: Path, tp_size: int) -> list[Path]:
    """One set per rank of ``tp_size`` from the unified ``_0_1`` set; nothing for one card."""
    if tp_size <= 1:
        return []
    payload, mod_list = read_set(folder, measurement_stem(*UNIFIED))
    written: list[Path] = []
    for rank in range(tp_size):
        ranked = {**payload, "LocalRank": rank}
        written += write_set(folder, measurement_stem(rank, tp_size), ranked, mod_list)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fp8_quant.ranks", description=__doc__)
    parser.add_argument("folder", type=Path, help="the g2/ or g3/ folder of a result")
    parser.add_argument("--unify-to", type=int, help="cards to unify the per-rank sets onto")
    parser.add_argument("--expand-to", type=int, help="TP size to expand the _0_1 set to")
    args = parser.parse_args(argv)
    if args.unify_to is None and args.expand_to is None:
        parser.error("give --unify-to, --expand-to or both")
    try:
        written = unify(args.folder, args.unify_to) if args.unify_to else []
        written += expand(args.folder, args.expand_to) if args.expand_to else []
    except (OSError, ValueError) as error:
        print(f"fp8_quant.ranks: {error}", file=sys.stderr)
        return 1
    print("\n".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
