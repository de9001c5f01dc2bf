#!/usr/bin/env python3
"""Container health probe, standard library only (the images carry no curl).

    healthcheck vllm     GET http://127.0.0.1:$LLM_VLLM_PORT/health (200 once the model is loaded)
    healthcheck usvc     GET http://127.0.0.1:$LLM_USVC_PORT/v1/health_check
    healthcheck URL      GET URL

Exit 0 on HTTP 200, 1 otherwise, with one line saying why (Docker keeps it in the health log).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TARGETS = {
    "vllm": ("LLM_VLLM_PORT", "8008", "/health"),
    "usvc": ("LLM_USVC_PORT", "9000", "/v1/health_check"),
}


def url_for(target: str) -> str:
    if target in TARGETS:
        variable, default, path = TARGETS[target]
        return f"http://127.0.0.1:{os.environ.get(variable) or default}{path}"
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: healthcheck vllm|usvc|URL", file=sys.stderr)
        return 2
    url = url_for(argv[0])
    try:
        with urllib.request.urlopen(url, timeout=8) as response:
            status = int(response.status)
    except (urllib.error.URLError, OSError) as error:
        print(f"unhealthy: {url}: {error}")
        return 1
    print(f"{'healthy' if status == 200 else 'unhealthy'}: {url}: HTTP {status}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
