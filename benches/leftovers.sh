#!/usr/bin/env bash
# What a pop stress leaves in the store: one release server on a private Redis,
# the stress checker (8 producers x 8 consumers x 20,000 by default), then every
# key still in Redis. The queue is empty by then, so all but the ring's and the
# queue's own counters is bookkeeping nobody deleted.
#
#   bash benches/leftovers.sh
#   N=100000 NO_BUILD=1 bash benches/leftovers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
P=${P:-8} C=${C:-8} N=${N:-20000}
[ -n "${NO_BUILD:-}" ] || cargo build --release -p edgeq-native --bin edgeq --example stress >&2
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    --logfile "$work/redis.log" &
pids+=($!)
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
"$target/release/edgeq" serve --listen 127.0.0.1:0 --store "redis://127.0.0.1:$port" 2>"$work/edgeq.log" &
pids+=($!)
addr=""
until [ -n "$addr" ]; do
    sleep 0.1
    addr=$(grep -o 'addr=[0-9.:]*' "$work/edgeq.log" | head -1 | cut -d= -f2) || true
done
"$target/release/examples/stress" --url "$addr" -p "$P" -c "$C" -n "$N" --mode pop --label redis --header
redis-cli -p "$port" --scan >"$work/keys"
count() { grep -c "$1" "$work/keys" || true; }
echo "keys left: $(wc -l <"$work/keys"); \`u\` stamps: $(count '/[0-9]*/u$'); commit counters: $(count '/[0-9]*/s$'); records: $(count '/[0-9]*/m$')"
for key in $(grep -E '/[0-9]+/(t|h|lo)$' "$work/keys"); do
    echo "$key = $(redis-cli -p "$port" get "$key")"
done
