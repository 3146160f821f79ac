#!/usr/bin/env bash
# Accept: single-message sends, each system started fresh for every run.
#   1. closed-loop saturation: BENCH_CONNECTIONS connections for BENCH_DURATION s, BENCH_RUNS runs
#      → the maximum accepted rate (median of the runs);
#   2. open loop at half that rate, BENCH_RUNS runs → p50/p99 latency there;
#   3. rising open-loop rates (25 %, 75 %, 100 % of the maximum), one run each.
# Pigeon's simulator phone and Kannel's fakesmsc receive what is accepted meanwhile (no delivery
# reports here: see e2e.sh).
#
#   bash bench/accept.sh [SYSTEM...]     # default: raspisms reach astandes kannel
#   PIGEON_DURABILITY=normal BENCH_TAG=normal bash bench/accept.sh raspisms
#                                        # a variant, recorded as raspisms-normal (run.sh runs this
#                                        # one: the process-crash-safe mode beside the default)
#
# About 2 minutes per system with the defaults.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$BENCH_DIR/systems.sh"

build
kannel_install

SYSTEMS=("$@")
[ ${#SYSTEMS[@]} -gt 0 ] || SYSTEMS=(raspisms reach astandes kannel)

# measure SYSTEM RUN PHASE [RATE]: one fresh run; records its JSON line.
measure() {
    local system=$1 run=$2 phase=$3 rate=${4:-} dir="$BENCH_OUT/accept-$1-$3-$2" mode_args cpu0 cpu1
    local label="$system${BENCH_TAG:+-$BENCH_TAG}"
    sys_start "$system" "$dir" 0
    # Warm-up: connections, caches, the first pages of the database.
    load "${REQ[@]}" -c 16 -d 2 --start 20000000 >/dev/null
    if [ -n "$rate" ]; then
        mode_args=(--rate "$rate" -c 128)
    else
        mode_args=(-c "$BENCH_CONNECTIONS")
    fi
    cpu0=$(cpu_seconds "${SERVER_PIDS[@]}")
    local line
    line=$(load "${REQ[@]}" "${mode_args[@]}" -d "$BENCH_DURATION" --start 10000000 --label "$system")
    cpu1=$(cpu_seconds "${SERVER_PIDS[@]}")
    local rss=0 pid
    for pid in "${SERVER_PIDS[@]}"; do rss=$((rss + $(rss_kb "$pid"))); done
    sys_stop "$system"
    jq -c --argjson c0 "$cpu0" --argjson c1 "$cpu1" --argjson rss "$rss" \
        '. + {server_cpu_s: (($c1 - $c0) * 100 | round / 100), server_rss_kb: $rss,
              cpu_ms_per_msg: (if .ok > 0 then (($c1 - $c0) * 1000 / .ok * 1000 | round / 1000) else null end)}' \
        <<<"$line" | record accept "$label" "$run" "phase=$phase" >/dev/null
    jq -r '"\(.system) \(.phase) run \(.run): \(.rate)/s ok=\(.ok) errors=\(.errors) p50=\(.p50_ms) p99=\(.p99_ms) ms, cpu \(.server_cpu_s) s"' \
        <<<"$(tail -n 1 "$RESULTS")" >&2
}

for system in "${SYSTEMS[@]}"; do
    log "accept: $system"
    for ((run = 1; run <= BENCH_RUNS; run++)); do measure "$system" "$run" saturation; done
    max=$(jq -r --arg s "$system${BENCH_TAG:+-$BENCH_TAG}" 'select(.scenario == "accept" and .system == $s and .phase == "saturation") | .rate' "$RESULTS" |
        tail -n "$BENCH_RUNS" | median)
    half=$(awk -v m="$max" 'BEGIN {printf "%d", m / 2}')
    log "accept: $system max ${max}/s; open loop at ${half}/s"
    for ((run = 1; run <= BENCH_RUNS; run++)); do measure "$system" "$run" half "$half"; done
    for pct in 25 75 100; do
        measure "$system" 1 "open$pct" "$(awk -v m="$max" -v p="$pct" 'BEGIN {printf "%d", m * p / 100}')"
    done
done
