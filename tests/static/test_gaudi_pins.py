"""The Gaudi images pin one release set, documented in docs/gaudi.md, and nothing builds the fork.

The plugin (vllm-gaudi), vLLM and the Gaudi software release go together; the server image and
the FP8 job's image must use the same Gaudi release and PyTorch, so that the job's INC is the
server's. docs/gaudi.md is the only file allowed to name Habana's former vLLM fork (its
migration note).
"""

from __future__ import annotations

import re
import subprocess

from harness.processes import REPO_ROOT

SERVER = REPO_ROOT / "model_server" / "Dockerfile.hpu"
JOB = REPO_ROOT / "fp8_quant" / "Dockerfile"
GAUDI_DOC = REPO_ROOT / "docs" / "gaudi.md"
# Spelled in pieces so that this file does not match itself.
FORK = re.compile("|".join(["vllm" + "-fork", "VLLM" + "_FORK", "HabanaAI" + "/vllm"]), re.I)


def build_args(path: object) -> dict[str, str]:
    text = (REPO_ROOT / str(path)).read_text()
    return dict(re.findall(r"(?m)^ARG (\w+)=(\S+)$", text))


def test_server_pins_plugin_vllm_and_gaudi_release_by_tag() -> None:
    args = build_args(SERVER)
    for name in ("VLLM_VERSION", "VLLM_GAUDI_VERSION"):
        assert re.fullmatch(r"v\d+\.\d+\.\d+(\.post\d+)?", args[name]), (name, args[name])
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["GAUDI_VERSION"])
    assert "${GAUDI_VERSION}" in args["BASE_IMAGE"] and "${PT_VERSION}" in args["BASE_IMAGE"]
    assert args["VLLM_GAUDI_REPO"] == "https://github.com/vllm-project/vllm-gaudi.git"


def test_job_image_uses_the_servers_gaudi_release() -> None:
    server, job = build_args(SERVER), build_args(JOB)
    for name in ("GAUDI_VERSION", "PT_VERSION", "BASE_IMAGE"):
        assert job[name] == server[name], name


def test_docs_list_the_pinned_release_set_as_the_default() -> None:
    args = build_args(SERVER)
    cells = [args[n] for n in ("VLLM_GAUDI_VERSION", "VLLM_VERSION", "GAUDI_VERSION", "PT_VERSION")]
    rows = [line for line in GAUDI_DOC.read_text().splitlines() if line.startswith("|")]
    pinned = [r for r in rows if all(f"`{c}`" in r for c in cells)]
    assert len(pinned) == 1 and "default" in pinned[0], rows


def _repository_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [name for name in listed.stdout.splitlines() if (REPO_ROOT / name).is_file()]


def test_only_the_migration_note_names_the_fork() -> None:
    naming = []
    for name in _repository_files():
        try:
            text = (REPO_ROOT / name).read_text()
        except UnicodeDecodeError:
            continue
        if FORK.search(text):
            naming.append(name)
    assert naming == ["docs/gaudi.md"]
