#!/usr/bin/env bash
# Bulk: `POST /api/scheduled/` with 1,000 numbers per request, closed loop with 4 connections
# for BENCH_DURATION s, BENCH_RUNS fresh runs per variant; the figure is recipients accepted
# per second (requests/s × 1,000).
#   now:   sent at once, with a simulator phone: the scheduler turns each campaign into 1,000
#          messages and the sender sends them while the load goes on (what a user gets);
#   later: `at` in 2099: the same acceptance with nothing else running (the API alone).
#
#   bash bench/bulk.sh [VARIANT...]       # default: now later
#
# About 20 s per run.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$BENCH_DIR/systems.sh"

build
VARIANTS=("$@")
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(now later)

for variant in "${VARIANTS[@]}"; do
    body=$(bulk_body "$variant")
    for ((run = 1; run <= BENCH_RUNS; run++)); do
        dir="$BENCH_OUT/bulk-$variant-$run"
        pigeon_start "$dir"
        pigeon_sim_phone 1 >/dev/null
        cpu0=$(cpu_seconds "$PIGEON_PID")
        line=$(load --url "$P/api/scheduled/" -H "X-Api-Key: $KEY" --body "@$body" --pad 4 --start 1000 \
            -c 4 -d "$BENCH_DURATION" --timeout 30 --label "bulk-$variant")
        cpu1=$(cpu_seconds "$PIGEON_PID")
        rss=$(rss_kb "$PIGEON_PID")
        # How far the scheduler got turning the accepted campaigns into messages meanwhile.
        dispatched=$(pigeon_sql "SELECT COUNT(*) FROM messages WHERE direction = 'outbound'")
        pigeon_stop
        jq -c --argjson c0 "$cpu0" --argjson c1 "$cpu1" --argjson rss "$rss" --argjson d "$dispatched" \
            '. + {recipients_per_s: (.rate * 1000 | round), server_cpu_s: (($c1 - $c0) * 100 | round / 100),
                  server_rss_kb: $rss, messages_dispatched: $d}' <<<"$line" |
            record bulk pigeon "$run" "variant=$variant" >/dev/null
        jq -r '"bulk \(.variant) run \(.run): \(.rate) req/s = \(.recipients_per_s) recipients/s, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, errors \(.errors), dispatched meanwhile \(.messages_dispatched)"' \
            <<<"$(tail -n 1 "$RESULTS")" >&2
    done
done
