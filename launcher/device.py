"""``LLM_DEVICE`` when it is not set: ``hpu`` where this host has a Gaudi, else ``cpu``."""

from __future__ import annotations

import glob
import shutil
import subprocess


def device_from(*, hl_smi: bool, gaudi_nodes: bool, docker_runtimes: str) -> str:
    """A Gaudi shows as ``hl-smi``, a ``/dev/accel/accel*`` or ``/dev/hlN`` node, or a Docker
    engine with the ``habana`` runtime (a Docker host whose cards only containers see)."""
    return "hpu" if hl_smi or gaudi_nodes or "habana" in docker_runtimes else "cpu"


def detect_device(path: str | None) -> str:
    """Look at this host; ``path``: the ``PATH`` that ``hl-smi`` and ``docker`` are found on."""
    nodes = bool(glob.glob("/dev/accel/accel*") or glob.glob("/dev/hl[0-9]*"))
    hl_smi = shutil.which("hl-smi", path=path) is not None
    runtimes = ""
    docker = shutil.which("docker", path=path)
    if not (hl_smi or nodes) and docker is not None:
        try:
            runtimes = subprocess.run(
                [docker, "info", "--format", "{{json .Runtimes}}"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            runtimes = ""
    return device_from(hl_smi=hl_smi, gaudi_nodes=nodes, docker_runtimes=runtimes)
