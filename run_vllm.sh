#!/usr/bin/env bash
# Operator entry point: start the model server and the LLM microservice.
#   ./run_vllm.sh                  Docker Compose stack for LLM_DEVICE (cpu|hpu, auto-detected)
#   ./run_vllm.sh --native         local processes from .venv/, in the foreground; Ctrl-C stops all
#   ./run_vllm.sh --native --demo  the same on the built-in tiny model, no model hub needed
#   ./run_vllm.sh --help           every flag and variable
# The launcher is Python (launcher/, `python -m launcher`): this script finds a Python for it,
# creates .venv/ for --native, and execs it. With no Python that can import the settings, it
# only runs `docker compose up` for the device (the containers validate the configuration).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV_PYTHON="${ROOT}/.venv/bin/python"

die() { printf 'run_vllm.sh: error: %s\n' "$*" >&2; exit 1; }
info() { printf '{"ts": "%s", "level": "info", "logger": "run_vllm", "msg": "%s"}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%S)" "$*" >&2; }

# --native needs .venv/: create it on a fresh clone, refresh it when pyproject.toml changed
# (the bootstrap returns at once when it is up to date). Not for --help or a mistyped flag.
native=false
for arg in "$@"; do
    case "${arg}" in
        --native) native=true ;;
        --demo|--dry-run|--verbose) ;;
        *) native=false; break ;;
    esac
done
if [[ "${native}" == true ]]; then
    [[ -x "${VENV_PYTHON}" ]] \
        || info "no .venv/ yet: creating it with scripts/bootstrap_venv.sh (a few minutes the first time)"
    bash "${ROOT}/scripts/bootstrap_venv.sh" || die "scripts/bootstrap_venv.sh failed (see above)"
fi

python=""
if [[ -x "${VENV_PYTHON}" ]]; then
    python="${VENV_PYTHON}"
elif command -v python3 >/dev/null 2>&1 && (cd "${ROOT}" \
    && python3 -c 'import launcher.config') >/dev/null 2>&1; then
    python=python3
fi
if [[ -n "${python}" ]]; then
    export PYTHONPATH="${ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
    exec "${python}" -m launcher "--root=${ROOT}" "$@"
fi

# No Python: `docker compose up` as the stack's README section prints it, nothing more.
(($# == 0)) || die "$* needs .venv/ (make venv) or a host python3 with pydantic-settings and PyYAML"
info "no .venv/ and no host python3 with pydantic-settings: the containers validate the configuration at start"
device="${LLM_DEVICE:-}"
if [[ -z "${device}" ]]; then
    device=cpu
    if command -v hl-smi >/dev/null 2>&1 || compgen -G "/dev/accel/accel*" >/dev/null \
        || { command -v docker >/dev/null 2>&1 && docker info 2>/dev/null | grep -q habana; }; then
        device=hpu
    fi
fi
stack="${ROOT}/docker/${device,,}"
[[ -f "${stack}/.env" ]] || die "LLM_DEVICE='${device}' is not supported (allowed: cpu, hpu)"
# The value Compose will see: exported, else the env file's last line for it.
setting() {
    local value
    value="$(sed -nE "s/^[[:space:]]*(export[[:space:]]+)?$1=[\"']?([^\"' ]*).*/\\2/p" "${stack}/.env" | tail -n 1)"
    printf '%s' "${!1:-${value}}"
}
[[ "$(setting VLLM_REPLICAS)" =~ ^0*1?$ ]] \
    || die "VLLM_REPLICAS=$(setting VLLM_REPLICAS) needs .venv/ or a host python3 with pydantic-settings (python -m launcher.replicas plans the replicas)"
command -v docker >/dev/null 2>&1 || die "docker is not installed (or use --native)"
profiles=()
fp8="$(setting IF_FP8_QUANTIZATION)"
[[ "${fp8,,}" =~ ^(true|1|yes|on)$ ]] && profiles+=(--profile fp8) && export IF_FP8_QUANTIZATION=true
[[ -z "$(setting LLM_EMBEDDING_MODEL)" ]] || profiles+=(--profile embedding)
data="${LLM_DATA_DIR:-data}"
[[ "${data}" == /* ]] || data="${stack}/${data}"
mkdir -p "${data}" || die "cannot create the data folder ${data}"
export UID
cd "${stack}"
info "starting the ${device,,} stack: docker compose ${profiles[*]} up --build -d"
exec docker compose "${profiles[@]}" --env-file=.env -f docker-compose.yaml up --build -d
