#!/usr/bin/env bash
# Prepares a fresh Debian machine (as root) for minipaas's demo and tests: installs what is
# missing from Debian's packages, starts a Docker engine when none answers, and raises the
# inotify limit lab nodes need. Sourced by scripts/test and scripts/demo; safe to run again.

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/test: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else die "need root for: $*"; fi
}

# command (or file) -> the Debian packages that provide it. The rendered node configs are
# checked by the real tools (nft, syslog-ng, caddy, fail2ban) in the golden tests. The scripts
# run an engine, so `dockerd` is what decides: a machine may have only a Docker client on PATH.
declare -A NEEDED=(
    [docker]=docker.io
    [dockerd]=docker.io
    [debootstrap]=debootstrap
    [ssh]=openssh-client
    [ssh-keygen]=openssh-client
    [/usr/sbin/sshd]=openssh-server
    [pg_ctlcluster]=postgresql
    [openssl]=openssl
    [cc]=gcc
    [tar]=tar
    [nft]=nftables
    [syslog-ng]="syslog-ng-core syslog-ng-scl syslog-ng-mod-http"
    [caddy]=caddy
    [fail2ban-client]="fail2ban python3-systemd"
)
missing=()
for cmd in "${!NEEDED[@]}"; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        for pkg in ${NEEDED[$cmd]}; do
            [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
        done
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    # With recommends, as measured: on Debian 13 the `docker` command itself (docker-cli) is one.
    as_root apt-get install -y -q "${missing[@]}"
fi

# The scripts that build minipaas call this; the packages and the engine above need no Rust.
need_rust() {
    local tool
    for tool in cargo rustfmt cargo-clippy; do
        command -v "$tool" >/dev/null 2>&1 \
            || die "\`$tool\` is missing: install Rust (>= 1.85) with the rustfmt and clippy components"
    done
}

if ! docker info >/dev/null 2>&1; then
    say "no Docker engine answers; starting dockerd (log: /var/log/minipaas-dockerd.log)"
    as_root true
    setsid dockerd >/var/log/minipaas-dockerd.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 \
        || { tail -20 /var/log/minipaas-dockerd.log >&2; die "dockerd did not answer within 60 s"; }
fi

# Every lab node runs systemd, which holds a few inotify instances; the default 128 fits ~26.
limit=/proc/sys/fs/inotify/max_user_instances
if [ "$(cat "$limit")" -lt 1024 ]; then
    say "raising fs.inotify.max_user_instances to 1024"
    # The suite's few nodes fit the default; only big labs need more, and they say so.
    echo 1024 2>/dev/null >"$limit" \
        || say "warning: cannot raise it (read-only /proc/sys?); labs beyond ~20 nodes will fail"
fi

