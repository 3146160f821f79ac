# Shared by the bench scripts (sourced, not run). Everything listens on and talks to 127.0.0.1
# only; every process started here is stopped by the EXIT trap, and every wait is bounded.

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"

# Knobs (environment):
#   BENCH_OUT        where raw JSON goes (default bench/out/<date-time>; run.sh shares one)
#   BENCH_RUNS       runs per measured figure (default 3)
#   BENCH_DURATION   seconds per load run (default 10)
#   BENCH_NO_BUILD=1 use the binaries already in target/release ($CARGO_TARGET_DIR/release)
#   PIGEON_BIN       the pigeon binary to measure (default: a copy of target/release/pigeon)
#   BENCH_THREADS    load-client threads (default 1: the client gets about one core)
#   BENCH_CONNECTIONS closed-loop connections (default 64)
BENCH_RUNS="${BENCH_RUNS:-3}"
BENCH_DURATION="${BENCH_DURATION:-10}"
BENCH_THREADS="${BENCH_THREADS:-1}"
BENCH_CONNECTIONS="${BENCH_CONNECTIONS:-64}"
if [ -z "${BENCH_OUT:-}" ]; then
    BENCH_OUT="$BENCH_DIR/out/$(date +%Y%m%d-%H%M%S)"
fi
export BENCH_OUT
mkdir -p "$BENCH_OUT"
RESULTS="$BENCH_OUT/results.jsonl"
touch "$RESULTS"

REL="${CARGO_TARGET_DIR:-$ROOT/target}/release"
LOAD="$REL/bench-load"
SINK="$REL/webhook-sink"
CEIL_HTTP="$REL/ceiling-http"
CEIL_SQLITE="$REL/ceiling-sqlite"

PIGEON_PORT=18080
CEILING_PORT=18090
SINK_PORT=18091
P="http://127.0.0.1:$PIGEON_PORT"
SINK_URL="http://127.0.0.1:$SINK_PORT"
# A fixed API key for the bench account (`pigeon user add --api-key`).
KEY="bench-api-key-0123456789abcdef"
EMAIL="bench@example.com"
TEXT="Mon%20SMS%20d%27exemple%20pour%20le%20benchmark"

# The processes this script started, stopped at exit.
STARTED_PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stop_pid() { # PID [seconds before SIGKILL]
    local pid=$1 wait=${2:-20} i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do stop_pid "$pid" 5; done
    STARTED_PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() { # PID: no longer ours to stop
    local keep=() p
    for p in "${STARTED_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    STARTED_PIDS=("${keep[@]}")
}

wait_http() { # URL [seconds]: until it answers at all
    local url=$1 secs=${2:-30} i
    for ((i = 0; i < secs * 10; i++)); do
        curl -s -o /dev/null --max-time 1 "$url" && return 0
        sleep 0.1
    done
    log "no answer from $url after ${secs}s"
    return 1
}

port_free() { # PORT: waits (bounded) until nothing listens on it
    local i
    for ((i = 0; i < 100; i++)); do
        ss -ltn "sport = :$1" | grep -q LISTEN || return 0
        sleep 0.1
    done
    log "port $1 still in use"
    return 1
}

build() {
    if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
        log "building (release): pigeon, pigeon-bench"
        (cd "$ROOT" && cargo build --release -p pigeon -p pigeon-bench >&2)
    fi
    # Measure a frozen copy: the tree may be rebuilt while the benchmark runs.
    if [ -z "${PIGEON_BIN:-}" ]; then
        mkdir -p "$BENCH_OUT/bin"
        cp "$REL/pigeon" "$BENCH_OUT/bin/pigeon"
        PIGEON_BIN="$BENCH_OUT/bin/pigeon"
    fi
    export PIGEON_BIN
    for b in "$LOAD" "$SINK" "$CEIL_HTTP" "$CEIL_SQLITE" "$PIGEON_BIN"; do
        [ -x "$b" ] || { log "missing $b"; exit 1; }
    done
}

# Appends a JSON object (stdin) to the results with the given fields: record scenario system run [key=value...]
record() {
    local scenario=$1 system=$2 run=$3
    shift 3
    local extra='{}' kv
    for kv in "$@"; do
        extra=$(jq -c --arg k "${kv%%=*}" --arg v "${kv#*=}" '. + {($k): ($v | tonumber? // .)}' <<<"$extra")
    done
    # The 1-minute load average when the run ended: ours is about 2 during a load; more means
    # something else ran on the machine meanwhile.
    jq -c --arg s "$scenario" --arg y "$system" --argjson r "$run" --argjson e "$extra" \
        --argjson la "$(cut -d' ' -f1 /proc/loadavg)" \
        '. + {scenario: $s, system: $y, run: $r, loadavg1: $la} + $e' | tee -a "$RESULTS"
}

# bench-load with the common options; the JSON line on stdout.
load() {
    "$LOAD" --threads "$BENCH_THREADS" "$@"
}

# ---------------------------------------------------------------- Pigeon

PIGEON_PID=""
PIGEON_DIR=""

# pigeon_start DIR: a fresh Pigeon in DIR (database, data dir, log) on $P with the bench
# account; extra environment (PIGEON_*) is taken from the caller's environment.
pigeon_start() {
    PIGEON_DIR=$1
    local fresh=${2:-fresh}
    if [ "$fresh" = fresh ]; then
        rm -rf "$PIGEON_DIR"
        mkdir -p "$PIGEON_DIR"
        "$PIGEON_BIN" --database "sqlite://$PIGEON_DIR/pigeon.db" --data-dir "$PIGEON_DIR/data" \
            user add "$EMAIL" --api-key "$KEY" --password bench-password >/dev/null 2>"$PIGEON_DIR/user.log"
    fi
    port_free "$PIGEON_PORT"
    PIGEON_REACH_RATE_PER_SEC="${PIGEON_REACH_RATE_PER_SEC:-0}" \
        RUST_LOG="${RUST_LOG:-warn}" \
        "$PIGEON_BIN" --database "sqlite://$PIGEON_DIR/pigeon.db" --data-dir "$PIGEON_DIR/data" \
        serve --listen "127.0.0.1:$PIGEON_PORT" --allow-outbound-cidr 127.0.0.1/32 \
        >>"$PIGEON_DIR/pigeon.log" 2>&1 &
    PIGEON_PID=$!
    STARTED_PIDS+=("$PIGEON_PID")
    wait_http "$P/api/list/phone/?api_key=$KEY" 60
}

pigeon_stop() {
    [ -n "$PIGEON_PID" ] || return 0
    stop_pid "$PIGEON_PID" 30
    forget_pid "$PIGEON_PID"
    PIGEON_PID=""
}

# pigeon_phone NAME [adapter_data[k]=v ...]: a simulator phone; prints its id.
pigeon_phone() {
    local name=$1 args=() kv
    shift
    for kv in "$@"; do args+=(--data-urlencode "adapter_data[${kv%%=*}]=${kv#*=}"); done
    curl -s -X POST "$P/api/phone/" -H "X-Api-Key: $KEY" --data-urlencode "name=$name" \
        -d adapter=simulator "${args[@]}" | jq -er '.response'
}

# pigeon_webhook TYPE URL: a RaspiSMS webhook; prints its id.
pigeon_webhook() {
    curl -s -X POST "$P/api/webhook/" -H "X-Api-Key: $KEY" --data-urlencode "type=$1" \
        --data-urlencode "url=$2" | jq -er '.response.id'
}

pigeon_sql() { # SQL: read-only query on the running Pigeon's database
    sqlite3 -readonly -cmd '.timeout 5000' "$PIGEON_DIR/pigeon.db" "$1"
}

# pigeon_fill QUEUED DELIVERED PHONE_ID: messages straight into the stopped Pigeon's database, the
# delivered ones older (lower ids) than the queued ones; the phone is disabled.
pigeon_fill() {
    local queued=$1 delivered=$2 phone=$3 now
    now=$(date +%s%3N)
    sqlite3 "$PIGEON_DIR/pigeon.db" >/dev/null <<EOF
PRAGMA synchronous = OFF;
UPDATE phones SET status = 'disabled' WHERE id = $phone;
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $delivered)
INSERT INTO messages (user_id, phone_id, phone_fixed, direction, destination, text, encoding, segments,
    status, initial_status, provider_id, adapter, valid_until, max_tries, tries, at, created_at, updated_at)
SELECT 1, $phone, 0, 'outbound', printf('+3367%07d', x), 'Mon SMS d''exemple pour le benchmark', 'gsm7', 1,
    'delivered', 'queued', printf('old-%d', x), 'simulator', $now - 86400000, 3, 1, $now - 86400000, $now - 86400000, $now - 86400000
FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $queued)
INSERT INTO messages (user_id, phone_id, phone_fixed, direction, destination, text, encoding, segments,
    status, initial_status, valid_until, max_tries, tries, next_try_at, at, created_at, updated_at)
SELECT 1, $phone, 0, 'outbound', printf('+336%08d', x), 'Mon SMS d''exemple pour le benchmark', 'gsm7', 1,
    'queued', 'queued', $now + 172800000, 3, 0, $now, $now, $now, $now
FROM c;
-- Created queued (in the row); the delivered ones' change in their history.
INSERT INTO message_history (message_id, status, at) SELECT id, status, created_at FROM messages
WHERE status = 'delivered';
-- Pigeon's own inserts keep these counts; rows put in by hand must add theirs.
INSERT INTO message_counts (user_id, phone_id, direction, status, n)
SELECT user_id, COALESCE(phone_id, 0), direction, status, COUNT(*) FROM messages WHERE true
GROUP BY user_id, COALESCE(phone_id, 0), direction, status
ON CONFLICT (user_id, phone_id, direction, status) DO UPDATE SET n = excluded.n;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
EOF
}

# bulk_body now|later → file: a RaspiSMS `POST /api/scheduled/` body with 1,000 distinct numbers
# (+3361NNNNKKK, NNNN the request counter: `--pad 4`), `later` with `at` in 2099.
bulk_body() {
    local file="$BENCH_OUT/bulk-body-$1.txt"
    {
        printf 'text=%s' "$TEXT"
        [ "$1" = later ] && printf '&at=2099-01-01%%2000%%3A00%%3A00'
        for ((k = 0; k < 1000; k++)); do printf '&numbers%%5B%%5D=%%2B3361{n}%03d' "$k"; done
    } >"$file"
    echo "$file"
}

rss_kb() { ps -o rss= -p "$1" 2>/dev/null | tr -d ' ' || echo 0; }

# ---------------------------------------------------------------- sink

SINK_PID=""
sink_start() {
    port_free "$SINK_PORT"
    "$SINK" --listen "127.0.0.1:$SINK_PORT" --duration "${1:-600}" >"$BENCH_OUT/sink.last.json" 2>/dev/null &
    SINK_PID=$!
    STARTED_PIDS+=("$SINK_PID")
    wait_http "$SINK_URL/_stats" 10
}
sink_stats() { curl -s --max-time 2 "$SINK_URL/_stats"; }
sink_stop() {
    [ -n "$SINK_PID" ] || return 0
    stop_pid "$SINK_PID" 5
    forget_pid "$SINK_PID"
    SINK_PID=""
}

median() { # numbers on stdin → median
    sort -g | awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
