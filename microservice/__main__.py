"""``python -m microservice``: validate configuration, then serve with uvicorn on LLM_USVC_PORT.

A wrong value stops start-up with exit code 2 and one line naming the variable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import TYPE_CHECKING

from pydantic import SecretStr

from common.config_errors import ConfigError
from common.settings_text import env_help, settings_lines
from microservice.observability import logs
from microservice.settings import MicroserviceSettings, load_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

# The app and uvicorn are imported where they are used: `--check` needs only the settings.


# Several workers are separate processes: the settings validated once here reach them as JSON.
WORKER_SETTINGS = "LLM_USVC_WORKER_SETTINGS_JSON"


def worker_settings_json(settings: MicroserviceSettings) -> str:
    """The settings for the workers, secrets included (pydantic masks them in its JSON)."""
    data = settings.model_dump(mode="json")
    for name, value in settings:
        if isinstance(value, SecretStr):
            data[name] = value.get_secret_value()
    return json.dumps(data)


def worker_app() -> FastAPI:
    """The app of one uvicorn worker (LLM_USVC_WORKERS > 1), from the parent's settings."""
    from microservice.app import create_app

    settings = MicroserviceSettings.model_validate_json(os.environ[WORKER_SETTINGS])
    logs.setup(settings.opea_logger_level)
    return create_app(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m microservice", description="Serve the LLM microservice."
    )
    parser.add_argument("--env-file", help="env file; exported variables win over it")
    parser.add_argument("--help-env", action="store_true", help="list the variables read")
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the configuration and print it as NAME=value lines (secrets left out), "
        "do not serve; exit 0, or 2 with one line",
    )
    args = parser.parse_args(argv)
    if args.help_env:
        print(env_help(MicroserviceSettings))
        return 0
    try:
        settings = load_settings(args.env_file)
    except ConfigError as error:
        print(f"microservice: {error}", file=sys.stderr)
        return 2
    if args.check:
        print("\n".join(settings_lines(settings)))
        return 0
    import uvicorn

    from microservice.app import create_app

    logs.setup(settings.opea_logger_level)
    workers = settings.llm_usvc_workers
    if workers > 1:
        os.environ[WORKER_SETTINGS] = worker_settings_json(settings)
    uvicorn.run(
        create_app(settings) if workers == 1 else "microservice.__main__:worker_app",
        factory=workers > 1,
        workers=workers,
        host=settings.llm_usvc_host,
        port=settings.llm_usvc_port,
        log_config=None,
        access_log=False,
        # uvicorn takes whole seconds: round up, never drain for less than asked
        timeout_graceful_shutdown=math.ceil(settings.llm_drain_timeout_s),
        # Longer than clients' idle keep-alive (httpx: 5 s, equal to uvicorn's default), so
        # the server never closes a connection a client is just reusing.
        timeout_keep_alive=65,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
