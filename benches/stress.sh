#!/usr/bin/env bash
# The stress checker (native-runner/examples/stress) against release servers, one
# table row per setup: memory, redb, Redis, and two servers sharing one Redis.
#
#   bash benches/stress.sh                       # 8 producers x 8 consumers x 100,000, pop
#   P=4 C=4 N=10000 MODE=receive bash benches/stress.sh
#   SETUPS="memory redis2" bash benches/stress.sh
#   NO_BUILD=1 bash benches/stress.sh            # use the release binaries already built
#   N=20000 SETUPS=redis LEFTOVERS=1 bash benches/stress.sh
#                                                # and count the keys left in Redis
#                                                # (LEFTOVERS=2: and list them)
#
# Servers are `edgeq serve --listen 127.0.0.1:0` child processes (the port comes from
# the startup log line), Redis a private `redis-server` on a free port with nothing
# persisted; everything is stopped on exit. With LEFTOVERS=1, a Redis setup in pop
# mode also prints what the run left in Redis: the queue is empty by then, so all
# but the ring's and the queue's own counters is bookkeeping nobody deleted. It
# prints it twice: right after the run, and after one more pop 6 s later (past
# GRACE), whose scan deletes the commit counters the run listed for deletion
# (`src/engine/fences.rs`). Exits non-zero if any row lost or duplicated a message.
set -euo pipefail
cd "$(dirname "$0")/.."
P=${P:-8} C=${C:-8} N=${N:-100000} MODE=${MODE:-pop}
SETUPS=${SETUPS:-memory redb redis redis2}
[ -n "${NO_BUILD:-}" ] || cargo build --release -p edgeq-native --bin edgeq --example stress >&2
target=${CARGO_TARGET_DIR:-target}
edgeq=$target/release/edgeq
stress=$target/release/examples/stress
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
die() { echo "stress.sh: $*" >&2; exit 1; }

# serve STORE: starts a server, adds `--url ADDR` to urls. (No $(...): the
# process must be a child of this shell so that cleanup can stop it.)
serve() {
    local log=$work/edgeq.$RANDOM.log addr=""
    "$edgeq" serve --listen 127.0.0.1:0 --store "$1" 2>"$log" &
    pids+=($!)
    for _ in $(seq 100); do
        addr=$(grep -o 'addr=[0-9.:]*' "$log" | head -1 | cut -d= -f2) || true
        [ -n "$addr" ] && { urls+=(--url "$addr"); return; }
        sleep 0.1
    done
    die "edgeq did not start: $(cat "$log")"
}

# redis: starts a private redis-server, sets redis_port and redis_url.
redis() {
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
        --logfile "$work/redis-$port.log" &
    pids+=($!)
    for _ in $(seq 100); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && {
            redis_port=$port redis_url=redis://127.0.0.1:$port
            return
        }
        sleep 0.1
    done
    die "redis-server did not start"
}

# leftovers: the keys the run left in the Redis on redis_port.
leftovers() {
    local keys=$work/keys key
    redis-cli -p "$redis_port" --scan >"$keys"
    count() { grep -c "$1" "$keys" || true; }
    echo "keys left: $(wc -l <"$keys"); \`u\` stamps: $(count '/[0-9]*/u$'); commit counters: $(count '/[0-9]*/s$'); records: $(count '/[0-9]*/m$')"
    local shown='/[0-9]+/(t|h|lo)$'
    [ "${LEFTOVERS:-}" = 2 ] && shown=.
    for key in $(grep -E "$shown" "$keys" | sort -V); do
        echo "$key = $(redis-cli -p "$redis_port" get "$key")"
    done
}

echo "edgeq stress, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg)"
header=--header
status=0
for setup in $SETUPS; do
    urls=()
    case $setup in
        memory) serve memory ;;
        redb) serve "redb:$work/$setup.redb" ;;
        redis) redis; serve "$redis_url" ;;
        redis2) redis; serve "$redis_url"; serve "$redis_url" ;;
        *) die "unknown setup $setup (memory, redb, redis, redis2)" ;;
    esac
    label=$setup
    [ "$setup" = redis2 ] && label="2 servers, 1 redis"
    "$stress" "${urls[@]}" -p "$P" -c "$C" -n "$N" --mode "$MODE" --label "$label" $header || status=1
    header=
    if [ -n "${LEFTOVERS:-}" ] && [ "$MODE" = pop ] && [ "${setup#redis}" != "$setup" ]; then
        echo "right after the run:"
        leftovers
        sleep 6
        curl -fsS --max-time 10 -o /dev/null -X POST "${urls[1]}/v1/queues/stress/pop" \
            || die "the settling pop failed"
        echo "after one more pop 6 s later:"
        leftovers
    fi
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
done
echo "load average at end $(cut -d' ' -f1 /proc/loadavg)"
exit $status
