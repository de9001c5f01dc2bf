#!/usr/bin/env bash
# The real servers some tests start on loopback ports of their own: Prometheus (with promtool)
# and Redis, from Debian's `prometheus` and `redis-server` packages. Installs only what is
# missing (nothing to do, and fast, when every binary is there), as root, through sudo when not
# root. The packages' system services are never started: they would hold 9090 and 6379 and
# outlive the tests. The tests start their own processes and stop them by PID.
set -euo pipefail

log() { printf '%s install_test_services: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'install_test_services.sh: error: %s\n' "$*" >&2; exit 1; }

# binary -> the Debian package that provides it
declare -A PACKAGE_OF=(
    [prometheus]=prometheus
    [promtool]=prometheus
    [redis-server]=redis-server
)
# package -> the system services it ships (kept stopped and disabled)
declare -A SERVICES_OF=(
    [prometheus]="prometheus"
    [redis-server]="redis-server"
)
POLICY=/usr/sbin/policy-rc.d

missing=()
for binary in "${!PACKAGE_OF[@]}"; do
    if ! command -v "${binary}" >/dev/null 2>&1; then
        package="${PACKAGE_OF[${binary}]}"
        [[ " ${missing[*]-} " == *" ${package} "* ]] || missing+=("${package}")
    fi
done
if ((${#missing[@]} == 0)); then
    exit 0
fi

if [[ "${EUID}" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    die "${missing[*]} missing; run this script as root or install sudo (apt-get install ${missing[*]})"
fi
command -v apt-get >/dev/null 2>&1 || die "${missing[*]} missing and no apt-get (Debian/Ubuntu only)"

# policy-rc.d exit 101 = "action forbidden": the packages' postinst scripts install their
# services without starting them (invoke-rc.d and deb-systemd-invoke both ask it). One the
# host already has stays as it is; ours is removed on exit.
own_policy=false
remove_policy() {
    if [[ "${own_policy}" == true ]]; then
        "${as_root[@]}" rm -f "${POLICY}"
    fi
}
trap remove_policy EXIT
if [[ ! -e "${POLICY}" ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "${POLICY}" >/dev/null
    "${as_root[@]}" chmod 0755 "${POLICY}"
    own_policy=true
fi

apt_install() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
log "apt-get install ${missing[*]}"
if ! apt_install "${missing[@]}"; then
    log "apt-get update, then try again"
    "${as_root[@]}" apt-get update -qq >/dev/null || die "apt-get update failed"
    apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed"
fi

# Where systemd runs, it would start them at the next boot: disable them, and stop them in
# case a policy the host already had let them start.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    for package in "${missing[@]}"; do
        for service in ${SERVICES_OF[${package}]}; do
            "${as_root[@]}" systemctl disable --now --quiet "${service}" 2>/dev/null || true
        done
    done
fi

for binary in "${!PACKAGE_OF[@]}"; do
    command -v "${binary}" >/dev/null 2>&1 || die "${binary} still missing after installing"
done
log "installed ${missing[*]} (services not started)"
