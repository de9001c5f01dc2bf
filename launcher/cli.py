"""The launcher's flags and help text; the flags are parsed by hand so that every mistake is
the same one line, ``run_vllm.sh: error: ...`` after the usage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from launcher.errors import Refusal, refuse

USAGE = """\
Usage: ./run_vllm.sh [--native [--dry-run] [--verbose]] [--demo] [--help]

Starts the LLM serving stack (vLLM model server + LLM microservice) on Intel Xeon (cpu) or
Intel Gaudi (hpu).

  --native   run the model server, then (once healthy) the LLM microservice, from .venv/
             as local processes (no Docker), in the foreground; Ctrl-C or SIGTERM stops
             everything it started. Creates or updates .venv/ first with
             scripts/bootstrap_venv.sh (a few minutes the first time, instant afterwards).
             Prints the requests to try once the microservice answers. vLLM's own output
             goes to a log file whose path is printed; its errors still show here.
  --verbose  with --native: show all of vLLM's output here too (it still goes to the log)
  --demo     serve the built-in tiny model (random weights, built offline in seconds) on cpu,
             with no model hub: sets LLM_DEVICE=cpu, LLM_VLLM_MODEL_NAME, HF_HUB_OFFLINE=1, and
             VLLM_CPU_KVCACHE_SPACE=1, VLLM_MAX_MODEL_LEN=512 unless exported. With --native the
             model is built once in .demo/tiny-model/. Without --native it is built once by the
             model-server image into the stack's data folder (/data/models/tiny), and the
             launcher waits for the stack to be healthy, then prints the requests to try.
  --dry-run  with --native: print the processes it would start, and the vLLM command each
             model server would run, then exit without starting anything
  --help     show this help

VLLM_REPLICAS=N (docker/<device>/.env, default 1) starts N vLLM replicas on consecutive ports
from LLM_VLLM_PORT, each on its own share of the host (python -m launcher.replicas plans
it): cpu, one NUMA node each where there are several, else an even share of the cores
(VLLM_CPU_OMP_THREADS_BIND, and taskset natively or cpuset in Compose); hpu, its own group of
the HABANA_VISIBLE_DEVICES cards. The microservice waits for all of them and gets them as
LLM_MODEL_SERVER_ENDPOINT, unless that is exported. Compose: the extra replicas are the
services of docker/<device>/replicas.override.yaml, written on each start.

LLM_EMBEDDING_MODEL=M (docker/<device>/.env, default empty) also serves M for /v1/embeddings
on LLM_EMBEDDING_PORT (8009): natively a second model server (VLLM_RUNNER=pooling,
VLLM_CONVERT=embed), in Compose the embedding profile; the microservice gets it as
LLM_EMBEDDING_MODEL_NAME and LLM_EMBEDDING_MODEL_SERVER_ENDPOINT, unless those are exported.

Configuration is validated before anything starts, by the services' own settings and the
launcher's (python -m launcher, which run_vllm.sh runs with .venv/'s Python, else a host
python3 that has pydantic-settings and PyYAML); a wrong value stops it with one line. With no
such Python, run_vllm.sh only runs `docker compose up` for the detected device (the containers
validate at start): --native, --demo and VLLM_REPLICAS>1 need a Python.

Environment:
  LLM_DEVICE            cpu | hpu; auto-detected when unset (hpu if a Gaudi is present)
  IF_FP8_QUANTIZATION   true to serve FP8 with INC measurements (hpu only)
  LLM_DATA_DIR          Docker mode: the stack's data folder (HF cache); default
                        docker/<device>/data
  STOP_GRACE_S          --native: seconds between SIGTERM and SIGKILL when stopping (30)
  Every other variable: docker/<device>/.env (exported variables win over the file).
"""


@dataclass(frozen=True)
class Options:
    """What the command line asked for; ``root``: the repository the stack is started from."""

    root: Path
    native: bool = False
    demo: bool = False
    dry_run: bool = False
    verbose: bool = False
    help: bool = False


class UsageError(Refusal):
    """A command line the launcher does not take: the usage, then one error line (exit 1)."""


def parse(argv: Sequence[str], *, default_root: Path) -> Options:
    """The flags of ``argv``; ``--root=DIR`` (given by run_vllm.sh) names the repository."""
    flags = {"--native": "native", "--demo": "demo", "--dry-run": "dry_run"}
    flags |= {"--verbose": "verbose", "-h": "help", "--help": "help"}
    chosen: dict[str, bool] = {}
    root = default_root
    for arg in argv:
        if arg.startswith("--root="):
            root = Path(arg.removeprefix("--root="))
        elif flags.get(arg) == "help":
            return Options(root=root, help=True)
        elif arg in flags:
            chosen[flags[arg]] = True
        else:
            raise usage_error(f"unknown argument '{arg}'")
    options = Options(root=root, **chosen)
    if options.dry_run and not options.native:
        raise usage_error("--dry-run goes with --native")
    if options.verbose and not options.native:
        raise usage_error("--verbose goes with --native")
    return options


def usage_error(message: str) -> UsageError:
    line = refuse(message).line
    return UsageError(f"{USAGE}{line}", code=1)
