#!/usr/bin/env bash
# HTTP benchmark of `edgeq serve` (issue 3, item 7). Run from anywhere:
#
#   bash benches/http.sh                 # DURATION=10 by default: about 4-5 minutes
#   DURATION=3 STORES=memory bash benches/http.sh
#
# For each store (memory, then durable redb in a temporary directory) it starts the
# release server on a free loopback port and drives it with wrk (2 threads, 64
# connections, DURATION seconds per phase):
#
#   health  GET /healthz: the yardstick every figure of that server is divided by;
#   push    POST one 128-byte message;
#   batch   POST 1000 x 128-byte messages per request (reported in messages/s);
#   pop     POST .../pop of one message, from the queue push and batch filled (a
#           pop that finds nothing is a 204 and is reported: it must be 0);
#   mixed   push and pop in turn on an (almost) empty queue, then on a queue that
#           holds DEPTH (1,000,000) messages, filled first with batch requests.
#           Each mixed phase runs WARMUP seconds unmeasured first: right after a
#           bulk fill both stores are slower for a few seconds (redb's commits
#           write twice the pages per fsync, the memory store's hash tables may
#           double), which is the fill's cost, not the depth's (benches/README.md,
#           "Stint 16").
#
# It prints a table of req/s, each as a ratio to /healthz, the depth ratios, and
# the targets of issue 3. Servers are stopped on exit, whatever happens.
#
# Knobs (environment): DURATION (s per phase, 10), STORES ("memory redb"),
# DEPTH (1000000), FILL_TIMEOUT (s allowed to fill DEPTH, 150), WARMUP (s, 10),
# CONNECTIONS (64), THREADS (2), NO_BUILD (set: use the release binary already
# built, in $CARGO_TARGET_DIR or target/).
set -euo pipefail

DURATION=${DURATION:-10}
STORES=${STORES:-memory redb}
DEPTH=${DEPTH:-1000000}
WARMUP=${WARMUP:-10}
FILL_TIMEOUT=${FILL_TIMEOUT:-150}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
BODY_BYTES=128

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
lua=$here/edgeq.lua

say() { printf "[%3ss] %s\n" "$SECONDS" "$*" >&2; }
die() { say "http.sh: $*"; exit 1; }

# --- the server binary and the load tool -------------------------------------

say "== building the release server"
[ -n "${NO_BUILD:-}" ] || (cd "$root" && cargo build --release -p edgeq-native) >&2
bin=${CARGO_TARGET_DIR:-$root/target}/release/edgeq
[ -x "$bin" ] || die "no binary at $bin"

if ! command -v wrk >/dev/null; then
    say "== installing wrk (Debian package)"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq wrk >&2 \
        || die "cannot install wrk: install it and run again"
fi
command -v curl >/dev/null || die "curl is needed"

# --- servers: started on port 0, stopped on exit ------------------------------

work=$(mktemp -d -t edgeq-bench.XXXXXX)
server_pid=""

# The redb store persists its overlay on shutdown: give it 15 s before SIGKILL.
# (stop_pid is in benches/lib.sh, sourced below, before any server starts.)
stop_server() { stop_pid "$1" 15; }

cleanup() {
    [ -z "$server_pid" ] || stop_server "$server_pid"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME SPEC: sets server_pid and url.
start_server() {
    local name=$1 spec=$2 log=$work/$1.log port="" i
    RUST_LOG=info "$bin" serve --listen 127.0.0.1:0 --store "$spec" >"$log" 2>&1 &
    server_pid=$!
    for i in $(seq 100); do
        port=$(sed -n 's/.*edgeq listening.*addr=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log")
        [ -n "$port" ] && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "$name server exited"; }
        sleep 0.1
    done
    [ -n "$port" ] || die "$name server did not report its port"
    url=http://127.0.0.1:$port
    curl -fsS --max-time 5 "$url/healthz" >/dev/null || die "$name server does not answer"
}

# --- helpers (benches/lib.sh) --------------------------------------------------

# shellcheck source=benches/lib.sh
source "$here/lib.sh"

# settle QUEUE: waits (at most 120 s) until the queue's depth stops moving, so
# requests a load tool gave up on do not run into the next phase.
settle() {
    local last="" now i
    for i in $(seq 240); do
        now=$(depth "$1")
        [ "$now" = "$last" ] && return 0
        last=$now
        sleep 0.5
    done
    say "   $1 still moving after 120 s"
}

# field LINE NAME: the number after NAME= in LINE.
field() { sed -n "s/.* $2=\([0-9][0-9]*\).*/\1/p" <<<"$1"; }
# rate COUNT MICROSECONDS
rate() { awk -v n="$1" -v us="$2" 'BEGIN { printf "%.0f", n / (us / 1e6) }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
met() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "-" && r + 0 >= t) ? "yes" : "NO" }'; }

# Results: R[store.key] = value.
declare -A R

# measure STORE: every phase against the running server.
measure() {
    local s=$1 line us
    say "== $s: GET /healthz (${DURATION}s)"
    line=$(wrk_run health bench "$DURATION")
    us=$(field "$line" us)
    R[$s.health]=$(rate "$(field "$line" s200)" "$us")
    R[$s.health.bad]=$(($(field "$line" other) + $(field "$line" errors)))
    R[$s.health.p50]=$(ms "$(field "$line" p50us)")

    put_queue bench
    put_queue shallow
    put_queue deep

    say "== $s: push 1 x ${BODY_BYTES} B (${DURATION}s)"
    line=$(wrk_run push bench "$DURATION")
    us=$(field "$line" us)
    R[$s.push]=$(rate "$(field "$line" s201)" "$us")
    R[$s.push.bad]=$(($(field "$line" other) + $(field "$line" s200) + $(field "$line" errors)))
    R[$s.push.p50]=$(ms "$(field "$line" p50us)")

    # Messages/s is what the queue grew by during the run (a batch on the durable
    # store can take seconds, so counting only completed requests would undercount).
    say "== $s: batch 1000 x ${BODY_BYTES} B (${DURATION}s)"
    local d0 d1
    d0=$(depth bench)
    line=$(wrk_run batch bench "$DURATION")
    d1=$(depth bench)
    us=$(field "$line" us)
    R[$s.batch]=$(rate "$(field "$line" s200)" "$us")
    R[$s.batch.msgs]=$(rate $((d1 - d0)) "$us")
    R[$s.batch.bad]=$(($(field "$line" other) + $(field "$line" failed) + $(field "$line" errors)))
    settle bench

    R[$s.pop.depth]=$(depth bench)
    say "== $s: pop 1 message from ${R[$s.pop.depth]} queued (${DURATION}s)"
    line=$(wrk_run pop bench "$DURATION")
    us=$(field "$line" us)
    R[$s.pop]=$(rate "$(field "$line" s200)" "$us")
    R[$s.pop.dry]=$(field "$line" s204)
    R[$s.pop.bad]=$(($(field "$line" other) + $(field "$line" errors)))
    R[$s.pop.p50]=$(ms "$(field "$line" p50us)")

    # A cushion of 1000 so pops in the mixed run rarely overtake pushes.
    [ "$(fill shallow 1 30)" = 1 ] || die "cannot fill queue shallow"
    warm_up "$s" shallow
    say "== $s: push+pop, queue near empty (${DURATION}s)"
    line=$(wrk_run mixed shallow "$DURATION")
    mixed_into "$s" empty "$line"

    local batches=$(((DEPTH + 999) / 1000)) t0 t1
    say "== $s: filling queue deep with $((batches * 1000)) messages (at most ${FILL_TIMEOUT}s)"
    t0=$(date +%s.%N)
    fill deep "$batches" "$FILL_TIMEOUT" >/dev/null
    settle deep
    t1=$(date +%s.%N)
    R[$s.fill.secs]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    R[$s.deep.depth]=$(depth deep)
    say "   $s: ${R[$s.deep.depth]} messages queued in ${R[$s.fill.secs]}s"
    warm_up "$s" deep
    say "== $s: push+pop, ${R[$s.deep.depth]} queued (${DURATION}s)"
    line=$(wrk_run mixed deep "$DURATION")
    mixed_into "$s" deep "$line"
}

# warm_up STORE QUEUE: WARMUP seconds of mixed load on QUEUE, not measured.
warm_up() {
    [ "$WARMUP" -gt 0 ] || return 0
    say "   $1: warming up on $2 (${WARMUP}s, not measured)"
    wrk_run mixed "$2" "$WARMUP" >/dev/null
}

# mixed_into STORE WHICH LINE
mixed_into() {
    local s=$1 w=$2 line=$3 us
    us=$(field "$line" us)
    R[$s.$w.push]=$(rate "$(field "$line" s201)" "$us")
    R[$s.$w.pop]=$(rate "$(field "$line" s200)" "$us")
    R[$s.$w.dry]=$(field "$line" s204)
    R[$s.$w.bad]=$(($(field "$line" other) + $(field "$line" errors)))
}

load_start=$(cut -d' ' -f1 /proc/loadavg)
for store in $STORES; do
    case $store in
        memory) spec=memory ;;
        redb) spec=redb:$work/redb/edgeq.redb ;;
        *) die "unknown store $store (memory or redb)" ;;
    esac
    say "== $store: starting edgeq serve --store $spec"
    start_server "$store" "$spec"
    measure "$store"
    stop_server "$server_pid"
    server_pid=""
    say "== $store: server stopped"
done

# --- the table ------------------------------------------------------------------

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
printf '\nedgeq HTTP benchmark, %s, %s cores (%s)\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "${cpu:-cpu?}"
printf '1-min load average at start %s, at end %s (anything above ~0 is other work sharing the cores)\n' \
    "$load_start" "$(cut -d' ' -f1 /proc/loadavg)"
printf 'wrk -t%s -c%s -d%ss on 127.0.0.1, %s-byte bodies; ratio = req/s / (GET /healthz req/s of the same server)\n' \
    "$THREADS" "$CONNECTIONS" "$DURATION" "$BODY_BYTES"
printf 'mixed phases measured after %ss of the same load, unmeasured\n\n' "$WARMUP"
fmt='%-7s %-30s %10s %11s %8s %9s %-4s %s\n'
# shellcheck disable=SC2059
printf "$fmt" store figure req/s msg/s ratio target met notes
missed=0
row() { # store figure req/s msg/s ratio target notes
    local verdict=""
    if [ -n "$6" ]; then
        verdict=$(met "$5" "$6")
        [ "$verdict" = yes ] || missed=$((missed + 1))
    fi
    # shellcheck disable=SC2059
    printf "$fmt" "$1" "$2" "$3" "$4" "$5" "${6:+>= $6}" "$verdict" "$7"
}
for s in $STORES; do
    h=${R[$s.health]}
    t=0.75
    [ "$s" = memory ] || t=0.40
    row "$s" "GET /healthz" "$h" "" "1.00" "" "p50 ${R[$s.health.p50]} ms, errors ${R[$s.health.bad]}"
    row "$s" "push 1 msg" "${R[$s.push]}" "${R[$s.push]}" "$(ratio "${R[$s.push]}" "$h")" "$t" \
        "p50 ${R[$s.push.p50]} ms, errors ${R[$s.push.bad]}"
    row "$s" "pop 1 msg" "${R[$s.pop]}" "${R[$s.pop]}" "$(ratio "${R[$s.pop]}" "$h")" "$t" \
        "p50 ${R[$s.pop.p50]} ms, 204 ${R[$s.pop.dry]}, errors ${R[$s.pop.bad]}, from ${R[$s.pop.depth]} queued"
    row "$s" "batch 1000 msgs" "${R[$s.batch]}" "${R[$s.batch.msgs]}" \
        "$(ratio "${R[$s.batch.msgs]}" "$h")" "" "ratio in msg/s; errors ${R[$s.batch.bad]}"
    for w in empty deep; do
        label="near empty"
        [ "$w" = empty ] || label="${R[$s.deep.depth]} queued"
        row "$s" "mixed push, $label" "${R[$s.$w.push]}" "${R[$s.$w.push]}" \
            "$(ratio "${R[$s.$w.push]}" "$h")" "" "errors ${R[$s.$w.bad]}"
        row "$s" "mixed pop, $label" "${R[$s.$w.pop]}" "${R[$s.$w.pop]}" \
            "$(ratio "${R[$s.$w.pop]}" "$h")" "" "204 ${R[$s.$w.dry]}"
    done
    row "$s" "depth 1M / empty, push" "" "" "$(ratio "${R[$s.deep.push]}" "${R[$s.empty.push]}")" \
        0.9 "filled in ${R[$s.fill.secs]}s"
    row "$s" "depth 1M / empty, pop" "" "" "$(ratio "${R[$s.deep.pop]}" "${R[$s.empty.pop]}")" 0.9 ""
done
printf '\ntargets missed: %s\n' "$missed"
