# shellcheck shell=bash
# Sourced by run_vllm.sh, which defines ROOT, ENV_FILE, DEVICE, NATIVE, CONFIG, CMD, die, info
# and local_address: the optional parts of the stack, kept apart from its main flow.
#  - An embedding model beside the chat model (LLM_EMBEDDING_MODEL, on LLM_EMBEDDING_PORT):
#    natively a second `python -m model_server` with VLLM_RUNNER=pooling, VLLM_CONVERT=embed;
#    in Compose the `embedding` profile's vllm-embedding service.
#  - The microservice's files (LLM_MODELS_FILE, LLM_API_KEYS_FILE): in Compose, paths inside
#    its container under the mounted config folder, which the check on this host reads instead.

USVC_CONFIG_MOUNT=/etc/llm-usvc  # where the compose files mount LLM_USVC_CONFIG_DIR

# What the chat model server's configuration says that is not the embedding server's: its
# model, port and runner, its sizing (vLLM's defaults fit the embedding model), structured
# outputs, the FP8 measurements and the replica count. The embedding server gets neither these lines of the env
# file nor these exported variables (the compose files blank the same ones).
EMBEDDING_DROPPED=(LLM_VLLM_MODEL_NAME LLM_VLLM_PORT VLLM_RUNNER VLLM_CONVERT VLLM_MAX_NUM_SEQS
    VLLM_TP_SIZE VLLM_PP_SIZE VLLM_MAX_MODEL_LEN VLLM_JSON_COMPACT IF_FP8_QUANTIZATION QUANT_CONFIG
    VLLM_REPLICAS)
EMBEDDING_ENV_FILE=""  # natively: the env file less those lines, removed when the stack stops

# The value of $1 as a service will read it, for the few the script needs before or without a
# settings check: exported, else the env file's last line for it (first word, quotes dropped).
env_or_file() {
    local name="$1" line value=""
    if [[ -n "${!name:-}" ]]; then
        printf '%s' "${!name}"
        return 0
    fi
    [[ -f "${ENV_FILE}" ]] || return 0
    while IFS= read -r line || [[ -n "${line}" ]]; do
        if [[ "${line}" =~ ^[[:space:]]*(export[[:space:]]+)?${name}=[\"\']?([^\"\']*) ]]; then
            value="${BASH_REMATCH[2]}"
        fi
    done < "${ENV_FILE}"
    printf '%s' "${value%%[[:space:]]*}"
}

# Docker mode: NAME=value words that point the microservice's check at the host side of the
# config mount (LLM_USVC_CONFIG_DIR, relative to the compose file's folder as Compose takes it).
usvc_check_env() {
    local name value dir="${LLM_USVC_CONFIG_DIR:-../usvc-config}"
    [[ "${NATIVE}" != true ]] || return 0
    [[ "${dir}" == /* ]] || dir="${ROOT}/docker/${DEVICE}/${dir}"
    for name in LLM_MODELS_FILE LLM_API_KEYS_FILE; do
        value="$(env_or_file "${name}")"
        if [[ "${value}" == "${USVC_CONFIG_MOUNT}"/* ]]; then
            printf '%s\n' "${name}=${dir}/${value#"${USVC_CONFIG_MOUNT}"/}"
        fi
    done
}

embedding_enabled() { [[ -n "${CONFIG[LLM_EMBEDDING_MODEL]:-}" ]]; }

embedding_url() {
    printf 'http://%s:%s' "$(local_address "${CONFIG[LLM_VLLM_HOST]:-}")" \
        "${CONFIG[LLM_EMBEDDING_PORT]:-8009}"
}

# After the model server's check: the embedding port is none of the chat replicas' ports nor
# the microservice's; natively, the microservice serves the embedding model started here
# (unless LLM_EMBEDDING_MODEL_NAME or its endpoint is exported). Compose derives the same.
embedding_prepare() {
    embedding_enabled || return 0
    local port="${CONFIG[LLM_EMBEDDING_PORT]}" first="${CONFIG[LLM_VLLM_PORT]}" last
    last=$((first + ${CONFIG[VLLM_REPLICAS]:-1} - 1))
    if ((port >= first && port <= last)); then
        die "LLM_EMBEDDING_PORT=${port} is among the chat model's vLLM ports (${first}-${last}): move one"
    fi
    if [[ "${NATIVE}" == true ]]; then
        export LLM_EMBEDDING_MODEL_NAME="${LLM_EMBEDDING_MODEL_NAME:-${CONFIG[LLM_EMBEDDING_MODEL]}}"
        export LLM_EMBEDDING_MODEL_SERVER_ENDPOINT="${LLM_EMBEDDING_MODEL_SERVER_ENDPOINT:-$(embedding_url)}"
    fi
}

# After the microservice's check (its port is known then).
embedding_check_usvc_port() {
    if embedding_enabled && [[ "${CONFIG[LLM_EMBEDDING_PORT]}" == "${CONFIG[LLM_USVC_PORT]}" ]]; then
        die "LLM_EMBEDDING_PORT and LLM_USVC_PORT are both ${CONFIG[LLM_USVC_PORT]}: move one"
    fi
}

# Natively: the embedding server's command into CMD, the chat server's configuration but for
# EMBEDDING_DROPPED; on hpu, its cards from LLM_EMBEDDING_HABANA_VISIBLE_DEVICES when set.
embedding_command() {
    local name pattern unset=()
    if [[ -z "${EMBEDDING_ENV_FILE}" ]]; then
        EMBEDDING_ENV_FILE="$(mktemp "${TMPDIR:-/tmp}/run_vllm-embedding.XXXXXX")"
        pattern="$(IFS='|'; echo "${EMBEDDING_DROPPED[*]}")"
        grep -Ev "^[[:space:]]*(export[[:space:]]+)?(${pattern})=" "${ENV_FILE}" \
            > "${EMBEDDING_ENV_FILE}" || true
    fi
    for name in "${EMBEDDING_DROPPED[@]}"; do
        if [[ -n "${!name+set}" ]]; then
            unset+=(-u "${name}")
        fi
    done
    CMD=(env "${unset[@]}" "LLM_VLLM_MODEL_NAME=${CONFIG[LLM_EMBEDDING_MODEL]}"
        "LLM_VLLM_PORT=${CONFIG[LLM_EMBEDDING_PORT]}" VLLM_RUNNER=pooling VLLM_CONVERT=embed)
    if [[ "${DEVICE}" == hpu && -n "${LLM_EMBEDDING_HABANA_VISIBLE_DEVICES:-}" ]]; then
        CMD+=("HABANA_VISIBLE_DEVICES=${LLM_EMBEDDING_HABANA_VISIBLE_DEVICES}")
    fi
    CMD+=("${PYTHON}" -m model_server --env-file "${EMBEDDING_ENV_FILE}")
}

embedding_cleanup() {
    if [[ -n "${EMBEDDING_ENV_FILE}" ]]; then
        rm -f "${EMBEDDING_ENV_FILE}"
    fi
}

# Natively, --dry-run: the embedding server's command and its vLLM command, as for a replica.
embedding_dry_run() {
    embedding_enabled || return 0
    embedding_command
    printf 'embedding model server: %s\n  vLLM: ' "$(shell_line "${CMD[@]}")"
    "${CMD[@]}" --dry-run || { embedding_cleanup; exit 2; }
    embedding_cleanup
}

# Natively: start the embedding server in its own process group; its PID joins run_native's
# `pids` (bash's dynamic scope), so that it is waited for and stopped with the rest.
embedding_start() {
    embedding_enabled || return 0
    embedding_command
    info "starting embedding model server (${DEVICE}, ${CONFIG[LLM_EMBEDDING_MODEL]}) on port ${CONFIG[LLM_EMBEDDING_PORT]}"
    setsid "${CMD[@]}" &
    pids+=("$!")
}
