#!/usr/bin/env bash
# The provision speed benchmark (README "Speed"): no-op re-runs of the same ~25-task plan with
# minipaas, Ansible and pyinfra on 1, 10 and 30 lab nodes, plus N parallel `ssh true`.
#
#   bench/provision.sh                 # hosts 1,10,30; 3 measured runs each
#   HOSTS=1,10 RUNS=5 bench/provision.sh
#   TOOLS=minipaas bench/provision.sh  # only minipaas (and N x `ssh true`)
#   KEEP_LAB=1 bench/provision.sh      # leave the `bench` lab running afterwards
#
# Needs Docker (for `minipaas lab`) and python3 with venv; ansible-core and pyinfra come from PyPI
# into target/bench-venv. Results: printed, and in target/bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."

HOSTS=${HOSTS:-1,10,30}
RUNS=${RUNS:-3}
TOOLS=${TOOLS:-minipaas,ansible,pyinfra}
VENV=target/bench-venv
OUT=target/bench
max=$(tr ',' '\n' <<<"$HOSTS" | sort -n | tail -1)

cargo build --release --quiet
MINIPAAS=$PWD/target/release/minipaas

# The harness itself needs PyYAML from the venv, whichever tools run.
if [ ! -x "$VENV/bin/ansible-playbook" ] || [ ! -x "$VENV/bin/pyinfra" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet ansible-core pyinfra
fi
echo "minipaas $("$MINIPAAS" --version | awk '{print $2}'), $("$VENV/bin/ansible" --version | sed -n 1p), pyinfra $("$VENV/bin/pyinfra" --version | awk '{print $2}')"

# About 26 systemd nodes start with the default inotify instance limit.
if [ "$max" -gt 20 ] && [ "$(sysctl -n fs.inotify.max_user_instances)" -lt 1024 ]; then
    sysctl -qw fs.inotify.max_user_instances=1024
fi

"$MINIPAAS" lab up --name bench --nodes "$max"
if [ -z "${KEEP_LAB:-}" ]; then
    trap '"$MINIPAAS" lab down --name bench' EXIT
fi

mkdir -p "$OUT"
"$VENV/bin/python" bench/harness.py --inventory inventories/bench.yaml --minipaas "$MINIPAAS" \
    --venv "$PWD/$VENV" --hosts "$HOSTS" --runs "$RUNS" --tools "$TOOLS" --out "$PWD/$OUT"
