#!/usr/bin/env bash
# The machine's two ceilings, BENCH_RUNS runs each:
#   http:   `ceiling-http`, a trivial axum handler, at closed-loop saturation with the same client,
#           connections, duration and request (a RaspiSMS send) as accept.sh;
#   sqlite: `ceiling-sqlite`, message-shaped rows into a WAL file (on the disk the benchmark
#           writes to) with synchronous=FULL and NORMAL, 1 and 1,000 rows per transaction,
#           5 s each (batches as multi-row INSERTs of 100 rows); plus FULL × 1,000 without
#           secondary indexes, and FULL × 1,000 with one INSERT per row (as Pigeon writes).
#
#   bash bench/ceilings.sh [http] [sqlite]
#
# About 2 minutes.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$BENCH_DIR/systems.sh"

build
WHAT=("$@")
[ ${#WHAT[@]} -gt 0 ] || WHAT=(http sqlite)

for what in "${WHAT[@]}"; do
    case "$what" in
    http)
        for ((run = 1; run <= BENCH_RUNS; run++)); do
            sys_start axum "$BENCH_OUT/ceiling-http-$run"
            load "${REQ[@]}" -c 16 -d 2 >/dev/null
            cpu0=$(cpu_seconds "${SERVER_PIDS[@]}")
            line=$(load "${REQ[@]}" -c "$BENCH_CONNECTIONS" -d "$BENCH_DURATION" --start 10000000 --label axum)
            cpu1=$(cpu_seconds "${SERVER_PIDS[@]}")
            sys_stop axum
            jq -c --argjson c0 "$cpu0" --argjson c1 "$cpu1" '. + {server_cpu_s: (($c1 - $c0) * 100 | round / 100)}' \
                <<<"$line" | record ceiling_http axum "$run" phase=saturation >/dev/null
            jq -r '"ceiling http run \(.run): \(.rate)/s p50 \(.p50_ms) ms p99 \(.p99_ms) ms errors \(.errors)"' \
                <<<"$(tail -n 1 "$RESULTS")" >&2
        done
        ;;
    sqlite)
        db="$BENCH_OUT/ceiling.db"
        for sync in full normal; do
            for batch in 1 1000; do
                for ((run = 1; run <= BENCH_RUNS; run++)); do
                    "$CEIL_SQLITE" --path "$db" --synchronous "$sync" --batch "$batch" --duration 5 |
                        record ceiling_sqlite sqlite "$run" "variant=$sync-$batch" >/dev/null
                    jq -r '"ceiling sqlite \(.variant) run \(.run): \(.rows_per_s) rows/s, \(.commits_per_s) commits/s"' \
                        <<<"$(tail -n 1 "$RESULTS")" >&2
                done
            done
        done
        for ((run = 1; run <= BENCH_RUNS; run++)); do
            "$CEIL_SQLITE" --path "$db" --synchronous full --batch 1000 --duration 5 --bare |
                record ceiling_sqlite sqlite "$run" "variant=full-1000-bare" >/dev/null
            "$CEIL_SQLITE" --path "$db" --synchronous full --batch 1000 --duration 5 --row-by-row |
                record ceiling_sqlite sqlite "$run" "variant=full-1000-rowwise" >/dev/null
        done
        rm -f "$db" "$db-wal" "$db-shm"
        ;;
    *) log "unknown ceiling $what (http, sqlite)"; exit 2 ;;
    esac
done
