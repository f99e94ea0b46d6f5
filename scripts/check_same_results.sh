#!/usr/bin/env bash
# scripts/check_same_results.sh BEFORE_BIN AFTER_BIN [WORK_DIR]
#
# Behaviour unchanged: two fedvlm-sim binaries (e.g. before and after a refactor) run the same
# eight experiments with the same seed and one intra-op thread — the quickstart (pLoRA), a FLoRA
# run, an asynchronous FedBuff run, stacking with 2 clients a round, pLoRA evaluating a sample, FedAvg of cnn_mnist and of cnn_fedavg
# trained in full (experiments/fedavg_fmnist.toml, shortened), and a served run (a server and 2 node processes on
# 127.0.0.1) — and every metrics.jsonl, rounds.jsonl and adapters/*.safetensors must be equal.
# Checkpoints (*.ckpt) must be equal byte for byte (CHECK_CKPT=0 leaves them out: across a change of
# the checkpoint format on purpose; resume tests check those). Wall-clock fields (seconds, round_seconds) and the bytes counted on sockets (wire_bytes_*)
# are the only ones left out: they differ between any two runs. Exit 0 when all agree.
# Each binary pretrains its own backbone (its own cache), and the pretrained weights are compared too.
set -euo pipefail
before="$(realpath "$1")"
after="$(realpath "$2")"
work="${3:-$(mktemp -d)}"
root="$(cd "$(dirname "$0")/.." && pwd)"
exp="$root/experiments/quickstart.toml"
mkdir -p "$work"
# Smaller than the shipped quickstart so the check takes minutes, not the same every time.
common=(--quiet --set threads=1 --set federation.rounds=2 --set scheduler.concurrency=1)

run_all() { # BIN OUT
  local bin="$1" out="$2"
  mkdir -p "$out"
  "$bin" "$exp" "${common[@]}" --output-dir "$out/plora" --set pretrain.cache_dir=../cache
  "$bin" "$exp" "${common[@]}" --output-dir "$out/flora" --set pretrain.cache_dir=../cache --set strategy.name=flora
  "$bin" "$exp" "${common[@]}" --output-dir "$out/async" --set pretrain.cache_dir=../cache --set federation.mode=async \
    --set federation.buffer_size=3 --set federation.client_seconds=10.0
  # Partial participation: the clients that did not train hold the download the aggregator
  # merged for them (stacking: the stack merged into lora_delta, fresh adapters, the optimizer dropped).
  "$bin" "$exp" "${common[@]}" --output-dir "$out/partial" --set pretrain.cache_dir=../cache \
    --set strategy.name=stacking --set federation.clients_per_round=2
  # ... and pLoRA evaluating 1 client beyond those that train: downloads deferred (sent before a client next trains).
  "$bin" "$exp" "${common[@]}" --output-dir "$out/sampled" --set pretrain.cache_dir=../cache \
    --set federation.clients_per_round=2 --set evaluation.clients_sample=1 --set federation.rounds=3
  # The classic FedAvg CNNs trained in full (their max-pooling, dropout and momentum), on a slice of Fashion-MNIST.
  local fedavg="$root/experiments/fedavg_fmnist.toml"
  "$bin" "$fedavg" "${common[@]}" --output-dir "$out/fedavg" --set data.max_samples=12000 \
    --set federation.clients_per_round=4 --set train.local_epochs=1 --set checkpoint.every=1 --set train.fresh_optimizer=false
  "$bin" "$fedavg" "${common[@]}" --output-dir "$out/fedavg_cnn" --set data.max_samples=6000 --set model.arch=cnn_fedavg \
    --set federation.clients_per_round=3 --set train.local_epochs=1 --set checkpoint.every=1
  local port=$((20000 + RANDOM % 20000))
  "$bin" serve "$exp" "${common[@]}" --output-dir "$out/served" --set pretrain.cache_dir=../cache \
    --listen "127.0.0.1:$port" --nodes 2 --wait 120 > "$out/serve.log" 2>&1 &
  local server=$!
  "$bin" node --connect "127.0.0.1:$port" --wait 120 > "$out/node0.log" 2>&1 &
  "$bin" node --connect "127.0.0.1:$port" --wait 120 > "$out/node1.log" 2>&1 &
  wait "$server" || { echo "served run failed:"; tail -20 "$out/serve.log"; return 1; }
  wait
}

echo "== before: $before"
# Both run in the same directory, moved aside after, so that the checkpoints' hashes of the
# resolved configuration (which holds output_dir) agree and the files compare byte for byte.
run_all "$before" "$work/run"
mv "$work/run" "$work/before"
echo "== after: $after"
run_all "$after" "$work/run"
mv "$work/run" "$work/after"

/usr/bin/env python3 - "$work/before" "$work/after" <<'PY'
import json, os, sys, filecmp
before, after = sys.argv[1], sys.argv[2]
SKIP = {"seconds", "round_seconds", "wire_bytes_sent", "wire_bytes_received"}
def lines(path):
    out = []
    for line in open(path):
        rec = json.loads(line)
        out.append({k: v for k, v in rec.items() if k not in SKIP})
    return out
checked, bad = 0, []
for d, _, names in os.walk(before):
    for n in sorted(names):
        p = os.path.join(d, n)
        rel = os.path.relpath(p, before)
        q = os.path.join(after, rel)
        if n in ("metrics.jsonl", "rounds.jsonl"):
            if not os.path.exists(q) or lines(p) != lines(q): bad.append(rel)
            checked += 1
        elif (n.endswith(".safetensors") and ("/adapters/" in "/" + rel or rel.startswith("cache/"))) or (n.endswith(".ckpt") and os.environ.get("CHECK_CKPT", "1") == "1"):
            if not os.path.exists(q) or not filecmp.cmp(p, q, shallow=False): bad.append(rel)
            checked += 1
for b in bad: print("DIFFERS:", b)
if checked == 0: print("nothing was compared"); sys.exit(1)
print(f"{checked} files compared, {len(bad)} differ")
sys.exit(1 if bad else 0)
PY
