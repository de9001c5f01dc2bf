"""``python -m fp8_quant``: measure the model for FP8 on Gaudi and publish the result for vLLM.

Exit codes: 0 done (or a complete result reused), 1 input that cannot be used (dataset, model,
another run holding the lock, an empty measurement), 2 configuration error. Each failure is one
line on stderr starting with ``fp8_quant:``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import logs
from common.config_errors import ConfigError
from fp8_quant.errors import JobError
from fp8_quant.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fp8_quant",
        description="Measure LLM_VLLM_MODEL_NAME on FP8_DATASET_PATH with Intel Neural "
        "Compressor and write <HF_HOME>/inc/<model basename>/ for vLLM on Gaudi.",
    )
    parser.add_argument("--env-file", type=Path, help="env file; exported variables win over it")
    parser.add_argument(
        "--force", action="store_true", help="recalibrate even when a complete result exists"
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.env_file)
    except ConfigError as error:
        print(f"fp8_quant: {error}", file=sys.stderr)
        return 2

    from fp8_quant.job import Job

    log = logs.setup("fp8_quant")
    log.info("starting", extra={"fields": settings.summary()})
    try:
        quant_config = Job(settings, log).run(force=args.force)
    except JobError as error:
        print(f"fp8_quant: {error}", file=sys.stderr)
        return 1
    log.info("done", extra={"fields": {"quant_config": str(quant_config)}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
