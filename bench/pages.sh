#!/usr/bin/env bash
# Numbered pages of a long history: RaspiSMS `sended` pages by number (first, middle, three
# quarters, last) with DELIVERED sent messages and a queue of QUEUED newer ones, filled with SQL
# while Pigeon is stopped (as in scale.sh, whose queue is the large part instead). Latency of
# each page: BENCH_RUNS runs of 2 s, one connection, closed loop. A page near the end is read
# backwards from the end when that walk is the shorter one (README, Lists).
#
#   bash bench/pages.sh [DELIVERED [QUEUED]]      # default 1,000,000 and 1,000; ≈ 1 minute
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$BENCH_DIR/systems.sh"

build
delivered=${1:-1000000}
queued=${2:-1000}
dir="$BENCH_OUT/pages-$delivered-$queued"
log "pages: $delivered sent, $queued queued"
pigeon_start "$dir"
phone=$(pigeon_phone sim success_rate=1 delivered_rate=1 latency_ms=0 dlr_delay_ms=0 dlr=1 seed=1 concurrency=64)
pigeon_stop
pigeon_fill "$queued" "$delivered" "$phone"
pigeon_start "$dir" keep
last=$(((delivered + 24) / 25 - 1))
for page in 0 $((last / 2)) $((last * 3 / 4)) "$last"; do
    for ((run = 1; run <= BENCH_RUNS; run++)); do
        load --url "$P/api/list/sended/$page/" -H "X-Api-Key: $KEY" -c 1 -d 2 --grace 10 --timeout 20 \
            --label "sended_page_$page" |
            record pages pigeon "$run" "sent_messages=$delivered" "queued_messages=$queued" "page=$page" >/dev/null
        jq -r '"pages \(.sent_messages) sent, \(.queued_messages) queued: page \(.page) run \(.run): p50 \(.p50_ms) ms p99 \(.p99_ms) ms errors \(.errors)"' \
            <<<"$(tail -n 1 "$RESULTS")"
    done
done
pigeon_stop
