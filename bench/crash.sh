#!/usr/bin/env bash
# Crash under load, on the release binary: many clients POST single messages (RaspiSMS
# `POST /api/scheduled/`, a fifth through Reach `create`, one in twenty deliberately invalid),
# each to its own number; Pigeon is killed with SIGKILL while they POST and sends are in flight,
# restarted on the same directory, and left to drain into a simulator phone (with delivery
# reports). Then, per request:
#   success answer → sent exactly once (its number and its message's idempotency key), as the
#                    message or scheduled SMS the answer named;
#   error answer   → never sent, nor stored;
#   no answer      → sent at most once (the counts of 0 and 1 are printed);
# and no number is sent twice, every message ends delivered, the database and the simulator's log
# agree. Prints the counts, the timings and PASS or FAIL (exit status 0 or 1).
#
#   bash bench/crash.sh [-n REQUESTS] [-c CONCURRENCY] [-k KILL_AFTER] [-s MIN_SENDS] [-r RATE]
#
#   -n  requests in all                                   (CRASH_REQUESTS, default 30000)
#   -c  concurrent clients                                (CRASH_CONCURRENCY, default 64)
#   -k  kill after this many success answers...           (CRASH_KILL_AFTER, default n/3)
#   -s  ...and this many sends accepted by the simulator  (CRASH_KILL_MIN_SENDS, default 200)
#   -r  requests per second, 0 for as fast as possible    (CRASH_RATE, default 0)
# Also CRASH_SIM_LATENCY_MS (20), CRASH_SIM_CONCURRENCY (32) for the simulator phone, and
# CRASH_DEADLINE_SECS (60 + n/50) for the kill's wait and for the drain, each.
#
# The work is done by the ignored test `crash_load::bigger_load_of_bench_crash_sh` in
# crates/pigeon/tests/it/crash_load.rs (the same checks as the integration test `crash_load`,
# which runs a small load on every `cargo test`), built and run with `--release`; the first build
# takes a few minutes. Everything listens on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while getopts "n:c:k:s:r:h" opt; do
    case $opt in
        n) export CRASH_REQUESTS=$OPTARG ;;
        c) export CRASH_CONCURRENCY=$OPTARG ;;
        k) export CRASH_KILL_AFTER=$OPTARG ;;
        s) export CRASH_KILL_MIN_SENDS=$OPTARG ;;
        r) export CRASH_RATE=$OPTARG ;;
        h) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

out=$(mktemp "${TMPDIR:-/tmp}/pigeon-crash.XXXXXX")
trap 'rm -f "$out"' EXIT
started=$(date +%s)
echo "crash.sh: building the release test binary and pigeon (cargo test --release)..."
status=0
cargo test --release -p pigeon --test it -- --ignored --exact \
    crash_load::bigger_load_of_bench_crash_sh --nocapture 2>&1 | tee "$out" || status=$?
echo
echo "=== summary ($(($(date +%s) - started)) s with the build) ==="
grep -E '^crash_load: ' "$out" | grep -v ': PASS' || true
if [ "$status" -eq 0 ] && grep -q 'crash_load: PASS' "$out"; then
    echo "PASS"
else
    grep -E 'crash_load: FAIL|panicked at' -A 20 "$out" | head -80 || true
    echo "FAIL"
    exit 1
fi
