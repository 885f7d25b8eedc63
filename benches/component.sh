#!/usr/bin/env bash
# Benchmark of the edgeq Spin component in the wasmtime host (issue 4, "Done when").
# Run from anywhere:
#
#   bash benches/component.sh                # DURATION=10 s per phase: about 2 minutes
#   DURATION=5 bash benches/component.sh
#
# It builds the edgeq component (`cargo build --release --target wasm32-wasip2 -p
# edgeq`), the empty spin-sdk 5.2 component of benches/empty-component/ (answers
# 200 with an empty body, no store call), the wasmtime host (`cargo build --release
# --example embed`) and the native server (`-p edgeq-native`). It then starts the
# host twice on free loopback ports, once per component, and the native server with
# the memory store, and drives each with `wrk -t2 -c64 -d${DURATION}s` and
# benches/edgeq.lua (the modes of benches/http.sh):
#
#   empty     any path (GET /healthz, the `health` mode) on the empty component:
#             the yardstick the component's figures are divided by;
#   healthz   GET /healthz through the edgeq component (one store read);
#   push      POST one 128-byte message through the edgeq component (201s);
#   pop       POST .../pop through the edgeq component (200s), from a queue filled
#             by push and then topped up with batch requests (1000 x 128 B) so that
#             pops do not run dry; 204s (ran dry) are counted and reported;
#   native    the same healthz, push and pop on `edgeq serve --store memory`.
#
# It prints req/s, the ratios push/empty and pop/empty against the targets of issue
# 4 (push >= 0.6, pop >= 0.5), the native figures beside them, the component's size,
# and an estimate of the mean instantiation time per request (PERF=1, the default
# when `perf` is installed: see "instantiation" below). Every process it starts is
# stopped on exit (trap), and every tool runs under `timeout`.
#
# Knobs (environment): DURATION (s per phase, 10), CONNECTIONS (64), THREADS (2),
# FILL_TIMEOUT (s allowed for the pop pre-fill, 120), POP_RESERVE (messages the pop
# queue must hold before the pop phase, 40000 x DURATION), NATIVE (1; 0 skips the
# native server), PERF (1 if perf is installed; 0 skips the instantiation estimate),
# PERF_SECS (3).
set -euo pipefail

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
FILL_TIMEOUT=${FILL_TIMEOUT:-120}
POP_RESERVE=${POP_RESERVE:-$((40000 * DURATION))}
NATIVE=${NATIVE:-1}
PERF_SECS=${PERF_SECS:-3}
if [ -z "${PERF:-}" ]; then
    PERF=0
    command -v perf >/dev/null && PERF=1
fi
BODY_BYTES=128

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
lua=$here/edgeq.lua
target=${CARGO_TARGET_DIR:-$root/target}

say() { printf "[%3ss] %s\n" "$SECONDS" "$*" >&2; }
die() { say "component.sh: $*"; exit 1; }

# --- builds -------------------------------------------------------------------

say "== building the edgeq component, the empty component, the host and the native server"
(
    cd "$root"
    cargo build --release --target wasm32-wasip2 -p edgeq
    CARGO_TARGET_DIR=$target cargo build --release --target wasm32-wasip2 \
        --manifest-path benches/empty-component/Cargo.toml
    cargo build --release --example embed
    [ "$NATIVE" = 0 ] || cargo build --release -p edgeq-native
) >&2
edgeq_wasm=$target/wasm32-wasip2/release/edgeq.wasm
empty_wasm=$target/wasm32-wasip2/release/edgeq_bench_empty.wasm
host_bin=$target/release/examples/embed
native_bin=$target/release/edgeq
for f in "$edgeq_wasm" "$empty_wasm" "$host_bin"; do [ -f "$f" ] || die "missing $f"; done

command -v wrk >/dev/null || die "wrk is needed (apt-get install wrk; benches/http.sh installs it)"
command -v curl >/dev/null || die "curl is needed"

# --- processes: started on port 0, stopped on exit ----------------------------

work=$(mktemp -d -t edgeq-cbench.XXXXXX)
pids=()

# stop_pid (benches/lib.sh, sourced below) is only reached once a pid was recorded.
cleanup() {
    local pid
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME SED_PORT CMD...: starts CMD (logging to $work/NAME.log), waits for the
# port that SED_PORT extracts from its log; sets pid and url.
start() {
    local name=$1 pattern=$2 log=$work/$1.log port="" i
    shift 2
    "$@" >"$log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for i in $(seq 300); do
        port=$(sed -n "$pattern" "$log" | head -1)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "$name exited"; }
        sleep 0.1
    done
    [ -n "$port" ] || die "$name did not report its port"
    url=http://127.0.0.1:$port
}

# The host prints "edgeq component listening on http://127.0.0.1:PORT".
start_host() {
    start "$1" 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' \
        "$host_bin" 127.0.0.1:0 "$2"
}

# --- helpers (benches/lib.sh); fills use 16 curl clients ---------------------

FILL_CLIENTS=16
# shellcheck source=benches/lib.sh
source "$here/lib.sh"

field() { sed -n "s/.* $2=\([0-9][0-9]*\).*/\1/p" <<<"$1"; }
rate() { awk -v n="$1" -v us="$2" 'BEGIN { printf "%.0f", n / (us / 1e6) }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
met() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "-" && r + 0 >= t) ? "yes" : "NO" }'; }

declare -A R

# phase KEY MODE QUEUE STATUS: one wrk run; R[KEY] = STATUS answers per second.
phase() {
    local key=$1 mode=$2 queue=$3 status=$4 line us bad
    say "== $key (${DURATION}s)"
    line=$(wrk_run "$mode" "$queue" "$DURATION")
    us=$(field "$line" us)
    R[$key]=$(rate "$(field "$line" "$status")" "$us")
    R[$key.p50]=$(ms "$(field "$line" p50us)")
    R[$key.n]=$(field "$line" "$status")
    R[$key.us]=$us
    R[$key.s204]=$(field "$line" s204)
    bad=$(($(field "$line" other) + $(field "$line" errors)))
    # A status other than the one counted (and 204 for pop) is a failure too.
    for s in s200 s201 s204; do
        [ "$s" = "$status" ] || [ "$s" = s204 ] || bad=$((bad + $(field "$line" $s)))
    done
    R[$key.bad]=$bad
}

# measure_queue PREFIX: healthz, push, pre-fill, pop against the server at $url.
measure_queue() {
    local p=$1 have need batches ok
    phase "$p.healthz" health bench s200
    put_queue bench
    phase "$p.push" push bench s201
    have=$(depth bench)
    need=$((POP_RESERVE - have))
    if [ "$need" -gt 0 ]; then
        batches=$(((need + 999) / 1000))
        say "   $p: queue holds $have; filling $batches x 1000 (at most ${FILL_TIMEOUT}s)"
        ok=$(fill bench "$batches" "$FILL_TIMEOUT")
        say "   $p: $ok batch requests answered 200"
    fi
    R[$p.pop.depth]=$(depth bench)
    phase "$p.pop" pop bench s200
}

# --- the runs -----------------------------------------------------------------------

load_start=$(cut -d' ' -f1 /proc/loadavg)

say "== host: empty component ($empty_wasm)"
start_host empty "$empty_wasm"
empty_pid=$pid
curl -fsS --max-time 10 -o /dev/null "$url/" || die "the empty component does not answer"
phase empty health bench s200

empty_traps=$(grep -c 'request failed' "$work/empty.log" || true)
stop_pid "$empty_pid"

# instantiation: the host records no timings (its HostStats count requests and
# traps only, and are not served), and perf cannot attach to a running process in
# every VM, so a second host for the empty component runs under `perf record -e
# cpu-clock --call-graph dwarf` for a PERF_SECS wrk run. The CPU time of a sample
# is the event count / samples; a symbol's inclusive share of the event count,
# divided by the requests answered, is its CPU time per request. Reported:
# `Instantiator::new` (instantiating the component from the InstancePre, memory
# image included), the drop of the instance's Store (the pooling allocator
# deallocating and decommitting its slot) and the whole per-request instance task
# (instantiate + handler + drop). Startup (compiling the component) falls under
# none of them. An estimate: dwarf unwinding can truncate deep stacks.
if [ "$PERF" = 1 ]; then
    say "== instantiation estimate: the host under perf, empty component (${PERF_SECS}s)"
    log=$work/perf-host.log
    timeout $((PERF_SECS + 120)) perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 \
        -o "$work/perf.data" -- "$host_bin" 127.0.0.1:0 "$empty_wasm" >"$log" 2>&1 &
    perf_pid=$!
    pids+=("$perf_pid")
    port=""
    for i in $(seq 300); do
        port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -1)
        [ -n "$port" ] && break
        kill -0 "$perf_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -n "$port" ]; then
        url=http://127.0.0.1:$port
        host_under_perf=$(pgrep -P "$perf_pid" | head -1 || true)
        [ -n "$host_under_perf" ] || die "no host under perf"
        pids+=("$host_under_perf")
        line=$(wrk_run health bench "$PERF_SECS")
        R[inst.n]=$(field "$line" s200)
        # Stopping the host ends the recording; perf then writes its data.
        stop_pid "$host_under_perf"
        wait "$perf_pid" 2>/dev/null || true
        say "   perf report (can take a minute)"
        timeout 300 perf report -i "$work/perf.data" --children --stdio --no-demangle -g none \
            --percent-limit 0 --sort symbol >"$work/perf.txt" 2>/dev/null || true
        # per_req PATTERN: the largest inclusive share of a symbol matching PATTERN,
        # as CPU microseconds per request.
        per_req() {
            awk -v pat="$1" -v n="${R[inst.n]}" '
                /^# Event count/ { ev = $NF }
                $0 ~ pat { gsub("%", "", $1); if ($1 + 0 > m) m = $1 + 0 }
                END { if (n > 0 && ev > 0) printf "%.1f", m / 100 * ev / 1000 / n; else print "-" }' \
                "$work/perf.txt"
        }
        R[inst.new]=$(per_req 'Instantiator3new')
        R[inst.drop]=$(per_req 'drop_in_place.*StoreInner')
        R[inst.task]=$(per_req 'run_instance28_')
        R[inst.all]=$(per_req 'worker3run17')
    else
        say "   the host did not start under perf: instantiation not measured"
        PERF=0
    fi
fi

say "== host: edgeq component ($edgeq_wasm)"
start_host edgeq "$edgeq_wasm"
edgeq_pid=$pid
curl -fsS --max-time 10 -o /dev/null "$url/healthz" || die "the edgeq component does not answer"
measure_queue comp
edgeq_traps=$(grep -c 'request failed' "$work/edgeq.log" || true)
stop_pid "$edgeq_pid"

if [ "$NATIVE" != 0 ]; then
    say "== native: edgeq serve --store memory"
    start native 's/.*edgeq listening.*addr=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
        env RUST_LOG=info "$native_bin" serve --listen 127.0.0.1:0 --store memory
    native_pid=$pid
    measure_queue native
    stop_pid "$native_pid"
fi

# --- the table -----------------------------------------------------------------------

size=$(stat -c %s "$edgeq_wasm")
empty_size=$(stat -c %s "$empty_wasm")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
e=${R[empty]}
printf '\nedgeq component benchmark, %s, %s cores (%s)\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "${cpu:-cpu?}"
printf '1-min load average at start %s, at end %s (anything above ~0 is other work sharing the cores)\n' \
    "$load_start" "$(cut -d' ' -f1 /proc/loadavg)"
printf 'wrk -t%s -c%s -d%ss on 127.0.0.1, %s-byte bodies; host = examples/embed (wasmtime 48, pooling\n' \
    "$THREADS" "$CONNECTIONS" "$DURATION" "$BODY_BYTES"
printf 'allocator, a fresh instance per request); ratio = req/s / (empty component req/s, same host, same run)\n\n'
fmt='%-30s %10s %7s %-11s %10s %7s  %s\n'
printf "$fmt" "figure" "component" "ratio" "target" "native" "ratio" "notes"
missed=0
row() { # LABEL KEY TARGET NOTES
    local label=$1 k=$2 t=$3 notes=$4 r nr="" n="" ok=""
    r=$(ratio "${R[comp.$k]:-0}" "$e")
    if [ -n "$t" ]; then
        ok=$(met "$r" "$t")
        [ "$ok" = yes ] || missed=$((missed + 1))
        ok=">= $t $ok"
    fi
    if [ "$NATIVE" != 0 ]; then
        n=${R[native.$k]}
        nr=$(ratio "$n" "${R[native.healthz]}")
        notes="$notes; native p50 ${R[native.$k.p50]} ms, errors ${R[native.$k.bad]}"
    fi
    printf "$fmt" "$label" "${R[comp.$k]}" "$r" "$ok" "$n" "$nr" "$notes"
}
printf "$fmt" "empty component (any path)" "$e" "1.00" "" "" "" "p50 ${R[empty.p50]} ms, errors ${R[empty.bad]}, host traps $empty_traps"
row "GET /healthz" healthz "" "p50 ${R[comp.healthz.p50]} ms, errors ${R[comp.healthz.bad]}"
row "push 1 x 128 B" push 0.6 "p50 ${R[comp.push.p50]} ms, errors ${R[comp.push.bad]}"
row "pop 1 msg" pop 0.5 "p50 ${R[comp.pop.p50]} ms, 204 ${R[comp.pop.s204]}, errors ${R[comp.pop.bad]}, from ${R[comp.pop.depth]} queued"
[ "$NATIVE" = 0 ] || printf '(native ratio = native req/s / native GET /healthz req/s; native pop: 204 %s, from %s queued)\n' \
    "${R[native.pop.s204]}" "${R[native.pop.depth]}"
printf '\nedgeq component: %s bytes (%s); empty component: %s bytes; host traps during the edgeq runs: %s\n' \
    "$size" "$(awk -v s="$size" 'BEGIN { printf "%.2f MiB", s / 1048576 }')" "$empty_size" "$edgeq_traps"
if [ "$PERF" = 1 ]; then
    printf 'instantiation (estimate, perf cpu-clock, empty component, %s requests in %ss): CPU us per request:\n' \
        "${R[inst.n]}" "$PERF_SECS"
    printf '  instantiate (Instantiator::new) %s; Store drop (pooling dealloc + decommit) %s; whole instance task %s; all tokio workers %s\n' \
        "${R[inst.new]}" "${R[inst.drop]}" "${R[inst.task]}" "${R[inst.all]}"
    printf '  target <= 50 us (instantiate); perf slows the host, so these are upper-bound-ish CPU costs\n'
else
    printf 'instantiation: not measured (PERF=0 or no perf; the host records no timings)\n'
fi
printf '\ntargets missed: %s\n' "$missed"
