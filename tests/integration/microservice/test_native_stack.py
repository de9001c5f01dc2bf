"""`./run_vllm.sh --native --demo`, the README's run command, end to end in one vLLM boot: it
builds (or reuses) the tiny model, starts vLLM, then the microservice once vLLM is healthy,
prints the README's three curl commands (only the port differs), which work as printed and stay
on screen (vLLM's output goes to its log file), and SIGTERM stops everything it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from harness.processes import REPO_ROOT, free_port
from tests.markdown import READY_LINE, printed_requests, readme_curls_on
from tests.run_vllm_script import RUN_VLLM, native_env
from tests.sse import opea_stream_text, sse_data

pytestmark = pytest.mark.integration

DEMO_MODEL = REPO_ROOT / ".demo" / "tiny-model"


def wait_for_output(
    process: subprocess.Popen[bytes], log_path: Path, text: str, timeout_s: float
) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        output = log_path.read_text(errors="replace")
        if text in output:
            return output
        if process.poll() is not None:
            raise RuntimeError(f"run_vllm.sh exited with {process.returncode}:\n{output[-4000:]}")
        time.sleep(0.5)
    raise TimeoutError(
        f"no {text!r} in {timeout_s}s:\n{log_path.read_text(errors='replace')[-4000:]}"
    )


def test_demo_serves_the_printed_readme_curls_and_stops(tmp_path: Path) -> None:
    vllm_port = free_port()
    env = native_env(tmp_path / "hf", vllm_port)
    del env["LLM_MODEL_SERVER_ENDPOINT"], env["HF_HUB_OFFLINE"]  # the demo sets both itself
    usvc_port = env["LLM_USVC_PORT"]
    env["TMPDIR"] = str(tmp_path)  # where the launcher puts vLLM's log
    log_path = tmp_path / "native.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(RUN_VLLM), "--native", "--demo"], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        output = wait_for_output(process, log_path, READY_LINE, timeout_s=300)
        # Wait for the whole block (printed in one write, but read while it may be landing).
        output = wait_for_output(process, log_path, "OpenAI SDK", timeout_s=10)
        commands = printed_requests(output)
        assert commands == readme_curls_on(usvc_port)
        outputs = []
        for command in commands:
            result = subprocess.run(
                ["bash", "-c", command + " --silent --show-error --fail"],
                capture_output=True, text=True, timeout=120, check=True,
            )  # fmt: skip
            outputs.append(result.stdout)
        assert json.loads(outputs[0])["status"] == "ok"
        answer = json.loads(outputs[1])
        assert answer["prompt"] == "What is Deep Learning?" and answer["text"]
        assert opea_stream_text(sse_data(outputs[2]))

        # The model server itself answers on its own port too, serving the demo's tiny model.
        assert (DEMO_MODEL / "config.json").is_file()
        completion = httpx.post(
            f"http://127.0.0.1:{vllm_port}/v1/completions",
            json={"model": str(DEMO_MODEL), "prompt": "What is deep learning?", "max_tokens": 4},
            timeout=60,
        )
        assert completion.status_code == 200, completion.text
        assert completion.json()["choices"][0]["text"]

        # The console keeps the requests to try: vLLM's access lines (the microservice probes
        # /health and /metrics every second) and its routes go to its log file only.
        output = log_path.read_text(errors="replace")
        assert "GET /health" not in output and "Route: " not in output
        logs = Path(re.search(r"vLLM's output goes to (\S+)/ ", output).group(1))  # type: ignore[union-attr]
        assert logs.parent == tmp_path
        assert "GET /health" in (logs / "model-server-1.log").read_text(errors="replace")

        children = psutil.Process(process.pid).children(recursive=True)
        assert any("microservice" in " ".join(c.cmdline()) for c in children)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 143
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], f"still running after SIGTERM: {alive}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
