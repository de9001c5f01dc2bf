"""`./run_vllm.sh --native` starts the microservice after vLLM is healthy, the README's three
curl commands work as printed (only the port differs), and SIGTERM stops both."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers.processes import REPO_ROOT, Server, free_port, wait_until_healthy
from tests.integration.microservice.helpers import opea_stream_text, sse_data
from tests.integration.test_run_vllm_native import SCRIPT, native_env

pytestmark = pytest.mark.integration


def readme_curls() -> list[str]:
    section = (REPO_ROOT / "README.md").read_text().split("## The LLM microservice")[1]
    block = section.split("```bash")[1].split("```")[0]
    commands = [c.replace("\\\n", " ") for c in re.split(r"\n\s*\n", block.strip())]
    assert len(commands) == 3 and all(c.startswith("curl http://localhost:9000") for c in commands)
    return commands


def test_native_stack_serves_readme_curls_and_stops(tiny_model: Path, tmp_path: Path) -> None:
    vllm_port = free_port()
    env = native_env(tiny_model, tmp_path / "hf", vllm_port)
    usvc_port = env["LLM_USVC_PORT"]
    log_path = tmp_path / "native.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [SCRIPT, "--native"], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    usvc = Server(f"http://127.0.0.1:{usvc_port}", process, log_path)
    try:
        wait_until_healthy(usvc, "/v1/health_check", timeout_s=300)
        outputs = []
        for command in readme_curls():
            command = command.replace("localhost:9000", f"localhost:{usvc_port}")
            result = subprocess.run(
                ["bash", "-c", command + " --silent --show-error --fail"],
                capture_output=True, text=True, timeout=120, check=True,
            )  # fmt: skip
            outputs.append(result.stdout)
        assert json.loads(outputs[0])["status"] == "ok"
        answer = json.loads(outputs[1])
        assert answer["prompt"] == "What is Deep Learning?" and answer["text"]
        assert opea_stream_text(sse_data(outputs[2]))

        # The model server itself answers on its own port too (the README's :8008 example).
        completion = httpx.post(
            f"http://127.0.0.1:{vllm_port}/v1/completions",
            json={"model": str(tiny_model), "prompt": "What is deep learning?", "max_tokens": 4},
            timeout=60,
        )
        assert completion.status_code == 200, completion.text
        assert completion.json()["choices"][0]["text"]

        children = psutil.Process(process.pid).children(recursive=True)
        assert any("microservice" in " ".join(c.cmdline()) for c in children)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 143
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], f"still running after SIGTERM: {alive}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
