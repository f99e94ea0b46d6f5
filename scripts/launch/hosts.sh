#!/usr/bin/env bash
# scripts/launch/hosts.sh — a served run over ssh on a list of hosts: the server on the first
# host of HOSTFILE, a node on each further line (a host named twice runs two nodes).
#
#   scripts/launch/hosts.sh HOSTFILE EXPERIMENT.toml [serve options...]
#
# HOSTFILE: one host a line ("#" comments and blank lines skipped); each host must have this
# checkout at the same path (FEDVLM_DIR, default this one) with its build, the weights and data
# at the paths the experiment names, and passwordless ssh. Environment: FEDVLM_CERTS, FEDVLM_PORT,
# FEDVLM_INSECURE, FEDVLM_NODE_ARGS as for slurm.sbatch; FEDVLM_SSH (default "ssh -o
# BatchMode=yes"): how to run a command on a host; FEDVLM_BIN (default build/fedvlm-sim, relative
# to FEDVLM_DIR). The server's output comes here; each node's
# goes to fedvlm-node-K.log here. Ctrl-C or the server's end stops the nodes. Exit status: the
# server's.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: scripts/launch/hosts.sh HOSTFILE EXPERIMENT.toml [serve options...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")/../.." && pwd)
source "$here/scripts/launch/common.sh"
hostfile=$1; shift
# The server runs in FEDVLM_DIR: an experiment path that exists here is passed on absolute.
[ -e "$1" ] && set -- "$(realpath "$1")" "${@:2}"
dir=${FEDVLM_DIR:-$here}
ssh_cmd=${FEDVLM_SSH:-ssh -o BatchMode=yes}
bin=${FEDVLM_BIN:-build/fedvlm-sim}
mapfile -t hosts < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$hostfile" | grep -v '^$')
[ "${#hosts[@]}" -ge 2 ] || { echo "hosts.sh: $hostfile needs a server host and at least one node host" >&2; exit 2; }
server=${hosts[0]}
single=1
for h in "${hosts[@]}"; do [ "$h" = "$server" ] || single=0; done
listen=$(fedvlm_listen_args "$single")
connect_host=$([ "$single" = 1 ] && [ -z "${FEDVLM_CERTS:-}" ] && echo 127.0.0.1 || echo "$server")
port=${FEDVLM_PORT:-4242}
node_tls=$(fedvlm_tls_args node) # checked here; the same shared directory on every host
serve_cmd="cd '$dir' && exec '$bin' serve $(printf "'%s' " "$@") $listen --nodes $((${#hosts[@]} - 1)) $(fedvlm_tls_args server)"
node_cmd="cd '$dir' && exec '$bin' node --connect $connect_host:$port ${FEDVLM_NODE_ARGS:-} $node_tls"
echo "hosts.sh: server on $server ($listen), ${#hosts[@]} host line(s) in all"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
$ssh_cmd "$server" "$serve_cmd" & server_pid=$!
for ((k = 1; k < ${#hosts[@]}; k++)); do
  $ssh_cmd "${hosts[$k]}" "$node_cmd" > "fedvlm-node-$k.log" 2>&1 & pids+=($!)
done
rc=0
wait "$server_pid" || rc=$?
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
exit $rc
