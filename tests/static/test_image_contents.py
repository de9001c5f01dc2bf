"""Each image carries its own service and the shared core only: the microservice image holds no
model-server code (no tiny-model builder), the FP8 job no launcher, and none holds tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.processes import REPO_ROOT

BUILD_FILES = {"pyproject.toml", "README.md", "docker/build-inputs/", "docker/healthcheck.py"}
IMAGES = {
    "microservice/Dockerfile": {"common/", "microservice/"},
    "fp8_quant/Dockerfile": {"common/", "fp8_quant/"},
    "model_server/Dockerfile.cpu": {"common/", "model_server/"},
    "model_server/Dockerfile.hpu": {"common/", "model_server/"},
}


def copied_sources(dockerfile: Path) -> set[str]:
    """Sources of every COPY from the build context (COPY --from=stage is not the context)."""
    sources: set[str] = set()
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from=") for w in words):
            continue
        sources.update(w for w in words[1:-1] if not w.startswith("--"))
    return sources


@pytest.mark.parametrize(("dockerfile", "packages"), IMAGES.items())
def test_image_copies_only_its_service_and_common(dockerfile: str, packages: set[str]) -> None:
    assert copied_sources(REPO_ROOT / dockerfile) - BUILD_FILES == packages


def test_check_sees_a_model_server_copied_into_the_microservice(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    original = (REPO_ROOT / "microservice/Dockerfile").read_text()
    broken.write_text(re.sub(r"^(COPY common/ .*)$", r"\1\nCOPY model_server/ /src/x/", original,
                             flags=re.M))  # fmt: skip
    assert "model_server/" in copied_sources(broken)
