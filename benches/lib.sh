# Helpers shared by benches/http.sh and benches/component.sh; sourced, not run.
# They use the caller's $url, $lua, $work, $BODY_BYTES, $THREADS, $CONNECTIONS and
# die(); fill() runs $FILL_CLIENTS curl clients ($CONNECTIONS unless set).

# stop_pid PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 5) if it
# has not exited; reaps it.
stop_pid() {
    local pid=$1 tries=$((${2:-5} * 10)) i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < tries; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

put_queue() {
    curl -fsS --max-time 10 -X PUT "$url/v1/queues/$1" -o /dev/null \
        || die "cannot create queue $1 at $url"
}

depth() {
    curl -fsS --max-time 30 "$url/v1/queues/$1" | grep -o '"messages":[0-9]*' | cut -d: -f2
}

# wrk_run MODE QUEUE SECONDS: runs one phase, prints its EDGEQ line.
wrk_run() {
    local mode=$1 queue=$2 secs=$3 out
    out=$(timeout $((secs + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --timeout 30s \
        -s "$lua" "$url" -- "$mode" "$queue" 2>&1) || die "wrk $mode failed: $out"
    grep '^EDGEQ ' <<<"$out" || die "wrk $mode printed no result: $out"
}

# The body of every batch request: 1000 messages of BODY_BYTES bytes.
batch_file=$work/batch.json
entry="{\"body\":\"$(printf '%*s' "$BODY_BYTES" '' | tr ' ' b)\"}"
{
    printf '{"messages":['
    for _ in $(seq 999); do printf '%s,' "$entry"; done
    printf '%s]}' "$entry"
} >"$batch_file"

# fill QUEUE BATCHES SECONDS: posts BATCHES batch requests from FILL_CLIENTS curl
# clients (keep-alive), giving up after SECONDS; prints how many were answered 200.
fill() {
    local q=$1 n=$2 secs=$3 p=${FILL_CLIENTS:-$CONNECTIONS} i j k pids=() args
    [ "$n" -ge "$p" ] || p=$n
    rm -f "$work"/fill.*
    for ((i = 0; i < p; i++)); do
        k=$((n / p + (i < n % p ? 1 : 0)))
        args=()
        for ((j = 0; j < k; j++)); do
            args+=(-o /dev/null "$url/v1/queues/$q/messages/batch")
        done
        timeout "$secs" curl -s -w '%{http_code}\n' -H 'Content-Type: application/json' \
            --data-binary @"$batch_file" "${args[@]}" >"$work/fill.$i" 2>/dev/null &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || true; done
    cat "$work"/fill.* | grep -c '^200$' || true
}
