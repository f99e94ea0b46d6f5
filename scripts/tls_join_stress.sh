#!/usr/bin/env bash
# scripts/tls_join_stress.sh — N tries of a server and 3 nodes started at the same instant over
# mutual TLS (issue 21, item 3): counts the tries in which every node joined and the run finished.
#
#   scripts/tls_join_stress.sh [N=50] [BIN=build/fedvlm-sim] [NODES=3]
#
# Each try: a tiny served run (mlp_2nn, 3 clients, 1 round, 200 Fashion-MNIST samples); the
# server and the nodes are started in one shell statement, no pause between them (the nodes
# wait for the listener). A failed try keeps its logs under $KEEP (default /tmp/tls-join-stress).
set -u
N=${1:-50}
BIN=$(realpath "${2:-build/fedvlm-sim}")
NODES=${3:-3}
DATA=/usr/share/datasets/fashion-mnist
KEEP=${KEEP:-/tmp/tls-join-stress}
[ -f "$DATA/train-images-idx3-ubyte.gz" ] || { echo "Fashion-MNIST not installed ($DATA)"; exit 2; }
command -v openssl > /dev/null || { echo "openssl (the command) is not installed"; exit 2; }
work=$(mktemp -d /tmp/tls-stress.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=ca \
  -keyout ca.key -out ca.pem 2>/dev/null
for who in server node; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=$who \
    -keyout $who.key -out $who.csr 2>/dev/null
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 30 -out $who.pem 2>/dev/null
done
tls() { echo "--cert $work/$1.pem --key $work/$1.key --ca $work/ca.pem"; }
ok=0
fresh=0
for ((i = 1; i <= N; i++)); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  out=$work/try$i
  mkdir -p "$out"
  cat > "$out/x.toml" <<TOML
name = "stress"
seed = 1
output_dir = "$out/results"
[data]
path = "$DATA"
max_samples = 200
[model]
arch = "mlp_2nn"
[pretrain]
enabled = false
[partition]
scheme = "shards"
shards = 6
shards_per_client = 2
[federation]
clients = 3
rounds = 1
[strategy]
name = "plora"
[lora]
targets = ["fc1", "fc3"]
TOML
  pids=()
  timeout 90 "$BIN" serve "$out/x.toml" --listen 127.0.0.1:$port --nodes $NODES --wait 40 --quiet $(tls server) \
    > "$out/serve.log" 2>&1 & server=$!
  for ((k = 0; k < NODES; k++)); do
    timeout 90 "$BIN" node --connect 127.0.0.1:$port --wait 40 $(tls node) > "$out/node$k.log" 2>&1 & pids+=($!)
  done
  wait $server; rc=$?
  nrc=0
  for p in "${pids[@]}"; do wait "$p" || nrc=$?; done
  if [ $rc -eq 0 ] && [ $nrc -eq 0 ]; then
    ok=$((ok + 1))
    if grep -q "went silent" "$out"/node*.log; then fresh=$((fresh + 1)); echo "try $i: ok (a node's connection went silent; it opened a fresh one)"
    else echo "try $i: ok"; fi
    rm -rf "$out"
  else
    mkdir -p "$KEEP"; rm -rf "${KEEP:?}/try$i"; cp -r "$out" "$KEEP/try$i"
    echo "try $i: FAILED (server $rc, a node $nrc): $(grep -h -m1 -E 'only|refused|error' "$out"/*.log | head -1)  [logs: $KEEP/try$i]"
  fi
done
echo "$ok of $N tries: every one of $NODES nodes joined and the run finished ($fresh needed a node's fresh connection)"
[ $ok -eq $N ]
