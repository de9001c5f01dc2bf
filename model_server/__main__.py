"""``python -m model_server``: validate configuration, log the command, exec vLLM.

Exec (not a child process) so that the container's or the shell's signals reach vLLM directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from model_server import logs
from model_server.config_errors import ConfigError
from model_server.config_loading import load
from model_server.preload import find_preload_libs
from model_server.render import merged_env, render
from model_server.settings import ModelServerSettings


def load_settings(env_file: Path | None) -> ModelServerSettings:
    return load(ModelServerSettings, env_file)


def env_help() -> str:
    lines = []
    for name, info in ModelServerSettings.model_fields.items():
        default = "" if info.default is None else f" (default: {info.default})"
        lines.append(f"{name.upper():45} {info.description}{default}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_server",
        description="Render the vLLM command for LLM_DEVICE from the environment and exec it.",
    )
    parser.add_argument("--env-file", type=Path, help="env file; exported variables win over it")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the command and environment, do not start"
    )
    parser.add_argument("--help-env", action="store_true", help="list the variables read")
    args = parser.parse_args(argv)
    if args.help_env:
        print(env_help())
        return 0

    log = logs.setup()
    try:
        settings = load_settings(args.env_file)
    except ConfigError as error:
        print(f"model_server: {error}", file=sys.stderr)
        return 2

    preload = find_preload_libs() if settings.llm_device == "cpu" else []
    plan = render(settings, preload)
    python = sys.executable
    if args.dry_run:
        print(plan.describe(python))
        return 0
    log.info(
        "starting vLLM",
        extra={"fields": {"device": settings.llm_device, "command": plan.describe(python)}},
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(python, plan.command(python), merged_env(os.environ, plan))
    return 0  # pragma: no cover - execve does not return


if __name__ == "__main__":
    raise SystemExit(main())
