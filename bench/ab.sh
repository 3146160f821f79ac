#!/usr/bin/env bash
# A/B measurements of one Pigeon build (PIGEON_BIN), one run each, to alternate with another:
#   bash bench/ab.sh sat SYSTEM          closed loop, 64 connections, AB_SECS (10) s after 2 s of
#                                        warm-up: accepted/s, p50, p99, server CPU s
#   bash bench/ab.sh open SYSTEM RATE    open loop at RATE/s for AB_SECS s: p50, p99, server CPU ms
#                                        and context switches per message, and the CPU seconds of
#                                        each thread (by name) of the server's first process
#   bash bench/ab.sh work                60,000 RaspiSMS sends after 2,000 of warm-up, then until
#                                        all are sent: server CPU ms per message, total s
#   bash bench/ab.sh bulk                bulk.sh's `now` load (1,000 numbers per request, 4
#                                        connections, a simulator phone) for AB_SECS s:
#                                        recipients/s, p50, p99, messages sent meanwhile, and the
#                                        CPU seconds of each thread
# SYSTEM: raspisms | reach | astandes | kannel. One line per run on stdout, e.g.
#   for i in 1 2; do for b in /tmp/a /tmp/b; do PIGEON_BIN=$b bash bench/ab.sh open raspisms 11000; done; done
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$BENCH_DIR/systems.sh"

BENCH_NO_BUILD=${BENCH_NO_BUILD:-1} build
what=${1:?sat, open, work or bulk}
system=${2:-raspisms}
SECS="${AB_SECS:-10}"
label=$(basename "${PIGEON_BIN:-pigeon}")

thread_cpu() { # PID: "name<TAB>ticks" per thread name, summed
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s\t%s\n' "$(cat "$t/comm")" "$(awk '{print $14 + $15}' "$t/stat")"
    done | awk -F'\t' '{a[$1] += $2} END {for (k in a) print k "\t" a[k]}' | sort
}

thread_delta() { # BEFORE AFTER (thread_cpu's) → "name=seconds " per thread name
    join -t $'\t' <(echo "$1") <(echo "$2") |
        awk -F'\t' -v hz="$(getconf CLK_TCK)" '{printf "%s=%.2f ", $1, ($3 - $2) / hz}'
}

context_switches() { # PID...: voluntary and involuntary switches of all their threads
    local p
    for p in "$@"; do cat /proc/"$p"/task/*/status; done 2>/dev/null |
        awk '/ctxt_switches/ {s += $2} END {print s + 0}'
}

summary() { # load JSON → "rate … p50 … p99 …"
    jq -r '"rate \(.rate | floor) p50 \(.p50_ms) p99 \(.p99_ms) errors \(.errors)"' <<<"$1"
}

case "$what" in
sat)
    sys_start "$system" "$BENCH_OUT/ab-$system" 0 >/dev/null
    load "${REQ[@]}" -c 16 -d 2 --start 20000000 >/dev/null
    c0=$(cpu_seconds "${SERVER_PIDS[@]}")
    out=$(load "${REQ[@]}" -c 64 -d "$SECS")
    c1=$(cpu_seconds "${SERVER_PIDS[@]}")
    echo "$label $system sat $(summary "$out") cpu_s $(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.2f", b - a}')"
    sys_stop "$system"
    ;;
open)
    rate=${3:?open needs a RATE}
    sys_start "$system" "$BENCH_OUT/ab-$system" 0 >/dev/null
    load "${REQ[@]}" -c 16 -d 2 --start 20000000 >/dev/null
    before=$(thread_cpu "${SERVER_PIDS[0]}")
    s0=$(context_switches "${SERVER_PIDS[@]}")
    c0=$(cpu_seconds "${SERVER_PIDS[@]}")
    out=$(load "${REQ[@]}" --rate "$rate" -c 128 -d "$SECS")
    c1=$(cpu_seconds "${SERVER_PIDS[@]}")
    s1=$(context_switches "${SERVER_PIDS[@]}")
    after=$(thread_cpu "${SERVER_PIDS[0]}")
    threads=$(thread_delta "$before" "$after")
    per_msg=$(awk -v ok="$(jq -r .ok <<<"$out")" -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN {print b - a}')" \
        -v s=$((s1 - s0)) 'BEGIN {printf "cpu_ms_per_msg %.4f switches_per_msg %.2f", c * 1000 / ok, s / ok}')
    echo "$label $system open $rate $(summary "$out") $per_msg thread_cpu_s $threads"
    sys_stop "$system"
    ;;
work)
    sys_start raspisms "$BENCH_OUT/ab-work" 0 >/dev/null
    load "${REQ[@]}" -c 16 -n 2000 -d 10 --start 20000000 >/dev/null
    sleep 1
    sent_sql="SELECT COUNT(*) FROM messages WHERE status IN ('sent', 'delivered')"
    base=$(pigeon_sql "$sent_sql")
    c0=$(cpu_seconds "${SERVER_PIDS[@]}")
    t0=$(date +%s%3N)
    load "${REQ[@]}" -c 64 -n 60000 -d 60 >/dev/null
    for ((i = 0; i < 600; i++)); do
        done_now=$(($(pigeon_sql "$sent_sql") - base))
        [ "$done_now" -ge 60000 ] && break
        sleep 0.1
    done
    c1=$(cpu_seconds "${SERVER_PIDS[@]}")
    t1=$(date +%s%3N)
    echo "$label work cpu_ms_per_msg $(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.4f", (b - a) * 1000 / 60000}')" \
        "total_s $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) / 1000}') sent $done_now"
    sys_stop raspisms
    ;;
bulk)
    body=$(bulk_body now)
    pigeon_start "$BENCH_OUT/ab-bulk"
    pigeon_sim_phone 1 >/dev/null
    before=$(thread_cpu "$PIGEON_PID")
    out=$(load --url "$P/api/scheduled/" -H "X-Api-Key: $KEY" --body "@$body" --pad 4 --start 1000 \
        -c 4 -d "$SECS" --timeout 30)
    after=$(thread_cpu "$PIGEON_PID")
    sent=$(pigeon_sql "SELECT COUNT(*) FROM messages WHERE status IN ('sent', 'delivered')")
    echo "$label bulk recipients_per_s $(jq -r '.rate * 1000 | floor' <<<"$out")" \
        "p50 $(jq -r .p50_ms <<<"$out") p99 $(jq -r .p99_ms <<<"$out") sent $sent" \
        "thread_cpu_s $(thread_delta "$before" "$after")"
    pigeon_stop
    ;;
*)
    echo "usage: bash bench/ab.sh sat SYSTEM | open SYSTEM RATE | work | bulk" >&2
    exit 2
    ;;
esac
