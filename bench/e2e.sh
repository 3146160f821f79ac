#!/usr/bin/env bash
# End to end: BENCH_E2E_N messages (default 20,000) sent as fast as 32 connections go, then
# timed until each reached its final status, with one webhook per message counted by
# webhook-sink. BENCH_RUNS fresh runs per system.
#   Pigeon (RaspiSMS API): simulator phone with delivery reports (delivered at once); final =
#     `delivered`/`failed`/`undelivered`/`expired` in the database; webhook = the
#     `send_sms_status_change` RaspiSMS webhook.
#   Kannel: sendsms → bearerbox (store file) → fakesmsc; final = fakesmsc received it; webhook
#     = the dlr-url callback of the SMSC's acceptance report (dlr-mask 8; fakesmsc sends no
#     handset reports).
#
#   bash bench/e2e.sh [SYSTEM...]        # default: raspisms reach kannel
#   PIGEON_TICK_MS=10 BENCH_TAG=tick10 bash bench/e2e.sh raspisms   # a variant, recorded as raspisms-tick10
#
# Reach `create` makes messages directly (no campaign for the scheduler to dispatch); its
# webhook is the same RaspiSMS `send_sms_status_change` one.
#
# About 30 s per run with the defaults.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$BENCH_DIR/systems.sh"

build
kannel_install

N="${BENCH_E2E_N:-20000}"
# Load and wait are each bounded: a system still short of the last final status after
# BENCH_E2E_WAIT s is measured over that time (`complete: false`), so its rate is the
# throughput it sustained.
TIMEOUT="${BENCH_E2E_TIMEOUT:-240}"
WAIT="${BENCH_E2E_WAIT:-60}"
SYSTEMS=("$@")
[ ${#SYSTEMS[@]} -gt 0 ] || SYSTEMS=(raspisms reach kannel)

final_count() { # SYSTEM
    case "$1" in
    kannel) kannel_received ;;
    *) pigeon_sql "SELECT COUNT(*) FROM messages WHERE direction = 'outbound'
                   AND status IN ('delivered', 'failed', 'undelivered', 'expired')" ;;
    esac
}

for system in "${SYSTEMS[@]}"; do
    for ((run = 1; run <= BENCH_RUNS; run++)); do
        dir="$BENCH_OUT/e2e-$system-$run"
        sink_start 900
        sys_start "$system" "$dir" 1
        case "$system" in
        raspisms | reach | astandes) pigeon_webhook send_sms_status_change "$SINK_URL/pigeon-hook" >/dev/null ;;
        esac
        cpu0=$(cpu_seconds "${SERVER_PIDS[@]}")
        t0=$(date +%s%3N)
        line=$(load "${REQ[@]}" -c 32 -n "$N" -d "$TIMEOUT" --start 10000000 --label "$system")
        accepted=$(jq -r .ok <<<"$line")
        # Wait (bounded) for every accepted message to be final and its webhook delivered.
        t_final="" t_hooks="" final=0 hooks=0
        deadline=$(($(date +%s) + WAIT))
        while [ "$(date +%s)" -lt "$deadline" ]; do
            now=$(date +%s%3N)
            final=$(final_count "$system")
            hooks=$(sink_stats | jq -r .total)
            if [ -z "$t_final" ] && [ "$final" -ge "$accepted" ]; then t_final=$now; fi
            if [ -z "$t_hooks" ] && [ "$hooks" -ge "$accepted" ]; then t_hooks=$now; fi
            [ -n "$t_final" ] && [ -n "$t_hooks" ] && break
            sleep 0.1
        done
        t_end=$(date +%s%3N)
        cpu1=$(cpu_seconds "${SERVER_PIDS[@]}")
        stats=$(sink_stats)
        # Pigeon records when each message became final (ms): use the last one, not the poll time.
        if [ "$system" != kannel ] && [ -n "$t_final" ]; then
            t_final=$(pigeon_sql "SELECT MAX(updated_at) FROM messages WHERE direction = 'outbound'")
        fi
        last_hook=$(jq -r '.last_unix_ms // empty' <<<"$stats")
        [ -n "$t_hooks" ] && [ -n "$last_hook" ] && t_hooks=$last_hook
        sys_stop "$system"
        sink_stop
        jq -c --argjson t0 "$t0" --argjson te "$t_end" --arg tf "$t_final" --arg th "$t_hooks" --argjson final "$final" \
            --argjson hooks "$hooks" --argjson n "$N" --argjson c0 "$cpu0" --argjson c1 "$cpu1" \
            --argjson sink "$stats" '
            {accept: ., n: $n, accepted: .ok, final: $final, webhooks: $hooks, sink: $sink,
             complete: ($tf != "" and $th != ""),
             final_s: (((if $tf == "" then $te else ($tf | tonumber) end) - $t0) / 1000),
             webhooks_s: (((if $th == "" then $te else ($th | tonumber) end) - $t0) / 1000),
             server_cpu_s: (($c1 - $c0) * 100 | round / 100)}
            | .msgs_per_s = (if .final_s then (.final / .final_s | round) else null end)
            | .webhooks_per_s = (if .webhooks_s then (.webhooks / .webhooks_s | round) else null end)
            | .accept_rate = .accept.rate' <<<"$line" | record e2e "$system${BENCH_TAG:+-$BENCH_TAG}" "$run" >/dev/null
        jq -r '"e2e \(.system) run \(.run): accepted \(.accepted) at \(.accept_rate)/s; final \(.final) in \(.final_s) s → \(.msgs_per_s)/s; webhooks \(.webhooks) in \(.webhooks_s) s → \(.webhooks_per_s)/s"' \
            <<<"$(tail -n 1 "$RESULTS")" >&2
    done
done
