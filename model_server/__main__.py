"""``python -m model_server``: validate configuration, find the model, log the command, exec vLLM.

Exec (not a child process) so that the container's or the shell's signals reach vLLM directly.
A wrong value, or a model that is neither on disk nor downloadable, stops start-up with exit
code 2 and one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from common import logs
from common.config_errors import ConfigError
from common.config_loading import load
from common.settings_text import env_help, settings_lines
from model_server import model_source
from model_server.preload import find_preload_libs
from model_server.render import merged_env, render
from model_server.settings import ModelServerSettings


def load_settings(env_file: Path | None) -> ModelServerSettings:
    return load(ModelServerSettings, env_file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_server",
        description="Render the vLLM command for LLM_DEVICE from the environment and exec it.",
    )
    parser.add_argument("--env-file", type=Path, help="env file; exported variables win over it")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the command and environment, do not start (no model lookup, no network)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the configuration and print it as NAME=value lines (HF_TOKEN left out), "
        "do not start; exit 0, or 2 with one line (no model lookup, no network)",
    )
    parser.add_argument("--help-env", action="store_true", help="list the variables read")
    args = parser.parse_args(argv)
    if args.help_env:
        print(env_help(ModelServerSettings))
        return 0

    log = logs.setup("model_server")
    try:
        settings = load_settings(args.env_file)
    except ConfigError as error:
        print(f"model_server: {error}", file=sys.stderr)
        return 2
    if args.check:
        print("\n".join(settings_lines(settings)))
        return 0

    preload = find_preload_libs() if settings.llm_device == "cpu" else []
    plan = render(settings, preload)
    python = sys.executable
    if args.dry_run:
        print(plan.describe(python))
        return 0
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    try:
        model_source.check(settings.llm_vllm_model_name, settings.hf_home, token)
        for module in settings.lora_modules:
            model_source.check_adapter(module.name, module.path)
    except model_source.ModelUnavailable as error:
        print(f"model_server: {error}", file=sys.stderr)
        return 2
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
