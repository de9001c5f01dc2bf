"""docs/kubernetes.md's install commands render: each `helm install` and `helm upgrade` it
prints is run as `helm template` with the same flags (no cluster here), and must succeed."""

from __future__ import annotations

import shlex

import pytest

from harness.processes import REPO_ROOT
from tests.helm.chart import CHART, Helm
from tests.markdown import code_blocks, shell_commands

DOC = REPO_ROOT / "docs" / "kubernetes.md"


def documented_helm_commands() -> list[list[str]]:
    commands = []
    for block in code_blocks(DOC.read_text(), "bash"):
        for command in shell_commands(block):
            for line in command.splitlines():
                words = shlex.split(line, comments=True)
                if words[:2] in (["helm", "install"], ["helm", "upgrade"]):
                    commands.append(words)
    return commands


def test_the_doc_prints_install_commands_for_cpu_gaudi_and_fp8() -> None:
    lines = [" ".join(c) for c in documented_helm_commands()]
    assert any("values-gaudi.yaml" not in line for line in lines)
    assert any("values-gaudi.yaml" in line and "fp8.enabled=true" not in line for line in lines)
    assert any("fp8.enabled=true" in line for line in lines)


@pytest.mark.parametrize("words", documented_helm_commands(), ids=lambda w: " ".join(w[:4]))
def test_documented_command_renders(helm: Helm, words: list[str]) -> None:
    release, chart, *flags = words[2:]
    assert (REPO_ROOT / chart).resolve() == CHART
    flags = [flag for flag in flags if flag != "--reuse-values"]
    flags = [str(REPO_ROOT / f) if f.startswith("deploy/") else f for f in flags]
    result = helm.run("template", release, str(CHART), *flags)
    assert result.returncode == 0, result.stderr
