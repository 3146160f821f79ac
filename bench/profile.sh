#!/usr/bin/env bash
# Where Pigeon's time goes at accept saturation: starts SYSTEM (default raspisms) as accept.sh
# does, loads it closed-loop for 12 s and records 8 s of it with `perf record -g` (perf must be
# installed; Debian: linux-perf), then prints the hottest symbols (self time, and children)
# and a per-thread split of Pigeon's CPU.
#
#   bash bench/profile.sh [raspisms|reach|astandes]     # ≈ 40 s
#   PROFILE_RATE=1500 bash bench/profile.sh raspisms    # an open loop at that rate instead
#   PROFILE_DRAIN=1 bash bench/profile.sh reach          # 20,000 sends first (phone with delivery
#                                                        # reports, a webhook), then 8 s of the drain
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$BENCH_DIR/systems.sh"

build
command -v perf >/dev/null || { log "perf is not installed (apt-get install linux-perf)"; exit 1; }
system=${1:-raspisms}
dir="$BENCH_OUT/profile-$system"
if [ -n "${PROFILE_DRAIN:-}" ]; then
    sink_start 300
    sys_start "$system" "$dir" 1
    pigeon_webhook send_sms_status_change "$SINK_URL/pigeon-hook" >/dev/null
    load "${REQ[@]}" -c 32 -n 20000 -d 60 --start 10000000 >"$dir/load.json"
    cpu0=$(cpu_seconds "$PIGEON_PID")
    perf record ${PERF_OPTS:--F 499 -g} -p "$PIGEON_PID" -o "$dir/perf.data" -- sleep ${PERF_SECS:-8} 2>"$dir/perf-record.log" >/dev/null
    cpu1=$(cpu_seconds "$PIGEON_PID")
    echo "Pigeon CPU during 8 s of the drain: $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {print b - a}') s;" \
        "final: $(pigeon_sql "SELECT COUNT(*) FROM messages WHERE status = 'delivered'")"
    sys_stop "$system"
    sink_stop
else
sys_start "$system" "$dir" 0
load "${REQ[@]}" -c 16 -d 2 --start 20000000 >/dev/null
mode=(-c "$BENCH_CONNECTIONS")
[ -n "${PROFILE_RATE:-}" ] && mode=(--rate "$PROFILE_RATE" -c 128)
cpu0=$(cpu_seconds "$PIGEON_PID")
load "${REQ[@]}" "${mode[@]}" -d 12 --start 10000000 --label "$system" >"$dir/load.json" &
load_pid=$!
STARTED_PIDS+=("$load_pid")
sleep 2
perf record ${PERF_OPTS:--F 499 -g} -p "$PIGEON_PID" -o "$dir/perf.data" -- sleep ${PERF_SECS:-8} 2>"$dir/perf-record.log" >/dev/null
wait "$load_pid" || true
forget_pid "$load_pid"
cpu1=$(cpu_seconds "$PIGEON_PID")
echo "Pigeon CPU during the 12 s load: $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {print b - a}') s"
sys_stop "$system"
fi
jq -c . "$dir/load.json"
echo "--- hottest symbols, self time"
perf report -i "$dir/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9.]+%' | sed 's/ \+- \+- *$//' | cut -c1-150 | head -n 30
echo "--- hottest user-space symbols, with what they call (children)"
perf report -i "$dir/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9.]+%' | grep -v '\[k\]' | grep -v ' 0x' | sed 's/ \+- \+- *$//' | cut -c1-150 | head -n 30
echo "--- by thread and shared object"
perf report -i "$dir/perf.data" --no-children --sort comm,dso --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9.]+%' | sed 's/ \+- \+- *$//' | head -n 12
echo "(full report: perf report -i $dir/perf.data)"
