#!/usr/bin/env bash
# Scale: Pigeon with a small and a large stored queue, compared.
#   For each size S (default 10,000 and 1,000,000; `--quick`: 10,000 and 100,000) the database
#   is filled directly with SQL (Pigeon stopped) with S queued messages for a simulator phone,
#   plus S/10 older delivered ones so that the lists have rows. Then, with the phone disabled:
#   RSS, and the list endpoints' latency (BENCH_RUNS runs of 3 s, 4 connections, closed loop):
#   RaspiSMS `sended` first page, a cursor page in the middle, the last page by number; Reach
#   `list`; Astandes `GET /api/v1/message`. Then the phone is enabled and the sender's
#   throughput and RSS are sampled every 0.25 s for SCALE_WINDOW s (default 30) or until the
#   queue is empty.
#
#   bash bench/scale.sh [--quick] [SIZE...]
#
# About 3 minutes for 1,000,000 (the fill takes about a minute), 1 minute for the small size.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$BENCH_DIR/systems.sh"

build
SIZES=()
for a in "$@"; do
    case "$a" in
    --quick) SIZES+=(10000 100000) ;;
    *) SIZES+=("$a") ;;
    esac
done
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 1000000)
WINDOW="${SCALE_WINDOW:-30}"

for size in "${SIZES[@]}"; do
    delivered=$((size / 10))
    dir="$BENCH_OUT/scale-$size"
    log "scale $size: setting up"
    pigeon_start "$dir"
    phone=$(pigeon_phone sim success_rate=1 delivered_rate=1 latency_ms=0 dlr_delay_ms=0 dlr=1 seed=1 concurrency=64)
    pigeon_stop
    t=$(date +%s)
    pigeon_fill "$size" "$delivered" "$phone"
    fill_s=$(($(date +%s) - t))
    db_mb=$(du -m "$PIGEON_DIR/pigeon.db" | cut -f1)
    log "scale $size: filled in ${fill_s}s (${db_mb} MB)"
    pigeon_start "$dir" keep
    sleep 2
    rss_idle=$(rss_kb "$PIGEON_PID")
    last_id=$(pigeon_sql "SELECT MAX(id) FROM messages WHERE status = 'delivered'")
    last_page=$((delivered / 25 - 1))
    endpoints=(
        "sended_first|$P/api/list/sended/"
        "sended_after_mid|$P/api/list/sended/after/$((last_id / 2))/"
        "sended_last_page|$P/api/list/sended/$last_page/"
        "reach_list|$P/rest/messaging/v1/list?pageSize=20"
        "astandes_list|$P/api/v1/message?limit=100"
    )
    for e in "${endpoints[@]}"; do
        name=${e%%|*}
        url=${e#*|}
        for ((run = 1; run <= BENCH_RUNS; run++)); do
            load --url "$url" -H "X-Api-Key: $KEY" -H "ApiUser: $EMAIL" -H "ApiKey: $KEY" \
                -H "Authorization: tokenv1 $KEY" -c 4 -d 3 --grace 10 --timeout 20 --label "$name" |
                record scale pigeon "$run" "size=$size" "endpoint=$name" >/dev/null
            jq -r '"scale \(.size) \(.endpoint) run \(.run): \(.rate)/s p50 \(.p50_ms) ms p99 \(.p99_ms) ms errors \(.errors)"' \
                <<<"$(tail -n 1 "$RESULTS")" >&2
        done
    done
    # The sender: enable the phone and count what leaves the queue, second by second.
    base=$(pigeon_sql "SELECT COUNT(*) FROM messages WHERE status IN ('sent', 'delivered', 'undelivered', 'failed')")
    curl -s -o /dev/null -X POST "$P/api/phone/$phone/status/force/" -H "X-Api-Key: $KEY" -d status=available
    t0=$(date +%s%3N)
    samples="[]"
    rss_max=$rss_idle
    for ((i = 1; i <= WINDOW * 4; i++)); do
        sleep 0.25
        done_now=$(( $(pigeon_sql "SELECT COUNT(*) FROM messages WHERE status IN ('sent', 'delivered', 'undelivered', 'failed')") - base ))
        rss=$(rss_kb "$PIGEON_PID")
        [ "$rss" -gt "$rss_max" ] && rss_max=$rss
        samples=$(jq -c --argjson t "$(( $(date +%s%3N) - t0 ))" --argjson d "$done_now" --argjson r "$rss" \
            '. + [{t_ms: $t, sent: $d, rss_kb: $r}]' <<<"$samples")
        [ "$done_now" -ge "$size" ] && break
    done
    rss_end=$(rss_kb "$PIGEON_PID")
    pigeon_stop
    # Throughput: from the first sample with a send (the phone worker has started) to the last.
    jq -cn --argjson s "$samples" --argjson size "$size" --argjson fill "$fill_s" --argjson mb "$db_mb" \
        --argjson ri "$rss_idle" --argjson rm "$rss_max" --argjson re "$rss_end" '
        {size: $size, fill_s: $fill, db_mb: $mb, rss_idle_kb: $ri, rss_max_kb: $rm, rss_end_kb: $re,
         samples: $s, sent: ($s[-1].sent),
         sender_per_s: ([$s[] | select(.sent > 0)] as $w
             | if ($w | length) > 2 then (($w[-1].sent - $w[0].sent) / (($w[-1].t_ms - $w[0].t_ms) / 1000) | round)
               else null end)}' |
        record scale_sender pigeon 1 >/dev/null
    jq -r '"scale \(.size) sender: \(.sender_per_s)/s (sent \(.sent) in the window); RSS idle \(.rss_idle_kb) kB, max \(.rss_max_kb) kB"' \
        <<<"$(tail -n 1 "$RESULTS")" >&2
done
