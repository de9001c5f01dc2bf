#!/usr/bin/env bash
# Check the Gaudi stack on real hardware: boot the HPU model server on a small model once in
# BF16 and once through the FP8 profile (calibration job, then vLLM with its measurements), send
# the same fixed prompt set to both, and print a table of output agreement and throughput.
#
#   scripts/gaudi_check.sh                    # TinyLlama/TinyLlama-1.1B-Chat-v1.0
#   GAUDI_CHECK_MODEL=<HF id or folder> scripts/gaudi_check.sh
#
# Needs a Gaudi host: Docker with the habana runtime, Docker Compose v2, python3, and the model
# hub (or the model in GAUDI_CHECK_DIR/data). It cannot run on machines without Gaudi cards.
# Variables: GAUDI_CHECK_MODEL, GAUDI_CHECK_DIR (work folder, default ./gaudi-check),
# GAUDI_CHECK_PORT (8008), GAUDI_CHECK_MIN_AGREEMENT (0.5: mean share of leading words the FP8
# answers share with the BF16 ones, below which the check fails). docs/gaudi.md explains it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${GAUDI_CHECK_MODEL:-TinyLlama/TinyLlama-1.1B-Chat-v1.0}
WORK=$(mkdir -p "${GAUDI_CHECK_DIR:-./gaudi-check}" && cd "${GAUDI_CHECK_DIR:-./gaudi-check}" && pwd)
PORT=${GAUDI_CHECK_PORT:-8008}
MIN_AGREEMENT=${GAUDI_CHECK_MIN_AGREEMENT:-0.5}
STACK="$ROOT/docker/hpu"
PROJECT=gaudi-check

die() {
    echo "gaudi_check: $*" >&2
    exit 2
}

command -v docker >/dev/null || die "docker is not installed"
docker compose version >/dev/null 2>&1 || die "Docker Compose v2 (docker compose) is missing"
command -v python3 >/dev/null || die "python3 is not installed"
docker info --format '{{json .Runtimes}}' | grep -q habana \
    || die "Docker has no habana runtime: this check needs a Gaudi host"

mkdir -p "$WORK/data/fp8"
# The calibration prompts are the check's own prompt set, one per line.
(cd "$ROOT" && python3 -c 'from bench.gaudi_check import PROMPTS; print("\n".join(PROMPTS))') \
    >"$WORK/data/fp8/prompts.txt"

compose() {
    LLM_VLLM_MODEL_NAME="$MODEL" LLM_VLLM_PORT="$PORT" LLM_DATA_DIR="$WORK/data" \
        FP8_DATASET_PATH=/data/fp8/prompts.txt \
        docker compose -p "$PROJECT" --env-file "$STACK/.env" -f "$STACK/docker-compose.yaml" "$@"
}

stop() {
    compose --profile fp8 down --remove-orphans >/dev/null 2>&1 || true
}
trap stop EXIT

# boot LABEL FP8(true|false): start the model server (and with FP8 the job before it), wait
# until healthy, send the prompt set, write LABEL's answers, stop.
boot() {
    local label=$1 fp8=$2 profile=()
    [[ $fp8 == true ]] && profile=(--profile fp8)
    echo "gaudi_check: $label: starting $MODEL (first boots download and warm up: minutes)"
    IF_FP8_QUANTIZATION=$fp8 compose "${profile[@]}" up --build --wait llm-vllm-model-server
    (cd "$ROOT" && python3 -m bench.gaudi_check run --endpoint "http://127.0.0.1:$PORT" \
        --model "$MODEL" --label "$label" --out "$WORK/$label.json")
    stop
}

boot BF16 false
boot FP8 true
cd "$ROOT"
python3 -m bench.gaudi_check table "$WORK/BF16.json" "$WORK/FP8.json" --min-agreement "$MIN_AGREEMENT"
