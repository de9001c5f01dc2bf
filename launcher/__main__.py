"""``python -m launcher``: what ``run_vllm.sh`` execs. The environment is read here, once, and
passed on; everything else takes it as an argument."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from common import logs
from launcher import cli, compose, native
from launcher.config import load_stack
from launcher.errors import PROG, Refusal, refuse

REPO_ROOT = Path(__file__).resolve().parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    environ = dict(os.environ)
    try:
        options = cli.parse(sys.argv[1:] if argv is None else argv, default_root=REPO_ROOT)
        if options.help:
            print(cli.USAGE, end="")
            return 0
        log = logs.setup("run_vllm")
        stack = load_stack(options, environ)
        if not options.native:
            return compose.run(stack, root=options.root, demo=options.demo, log=log)
        python = sys.executable
        has_taskset = shutil.which("taskset", path=environ.get("PATH")) is not None
        if options.dry_run:
            return native.dry_run(stack, python=python, has_taskset=has_taskset)
        if options.demo:
            model = stack.model_server.llm_vllm_model_name
            build = [python, "-m", "model_server.tiny_model", model, "--if-missing"]
            if subprocess.run(build, env=stack.env, check=False).returncode != 0:
                raise refuse(f"could not build the tiny model in {model}")
        return native.run(
            stack, python=python, verbose=options.verbose, has_taskset=has_taskset, log=log
        )
    except Refusal as refusal:
        print(refusal.line, file=sys.stderr)
        return refusal.code


if __name__ == "__main__":
    sys.argv[0] = PROG
    raise SystemExit(main())
