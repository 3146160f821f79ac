#!/usr/bin/env bash
# THE one command: builds (release), installs Kannel if missing, runs every scenario on
# 127.0.0.1 — ceilings, accept (Pigeon's three APIs, its synchronous=NORMAL mode, and Kannel),
# bulk, end to end (Pigeon and Kannel), scale — and prints Pigeon's, Kannel's and the
# ceilings' figures side by side with the ratios and the targets. Raw JSON: bench/out/<date-time>/results.jsonl; the table:
# bench/out/<date-time>/summary.md (bench/out/latest points at the last run).
#
#   bash bench/run.sh            # about 25 minutes
#   bash bench/run.sh --quick    # 1 run per figure, 5 s loads, 5,000-message e2e, scale up to 100,000: ~7 minutes
#
# Environment knobs: see bench/lib.sh (BENCH_RUNS, BENCH_DURATION, PIGEON_BIN, ...), PIGEON_REV
# (what to call PIGEON_BIN in the report), plus
# BENCH_SCENARIOS (default "ceilings accept bulk e2e scale").
set -euo pipefail
QUICK=0
for a in "$@"; do
    case "$a" in
    --quick) QUICK=1 ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
    esac
done
if [ "$QUICK" = 1 ]; then
    export BENCH_RUNS="${BENCH_RUNS:-1}" BENCH_DURATION="${BENCH_DURATION:-5}" BENCH_E2E_N="${BENCH_E2E_N:-5000}"
    export SCALE_WINDOW="${SCALE_WINDOW:-15}"
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$BENCH_DIR/kannel.sh"

build
kannel_install
export BENCH_NO_BUILD=1 PIGEON_BIN
mkdir -p "$BENCH_DIR/out" && ln -sfn "$BENCH_OUT" "$BENCH_DIR/out/latest"

# Machine and code facts.
# PIGEON_REV describes the binary when PIGEON_BIN is given; otherwise the tree's HEAD, with the
# paths that differ from it (the benchmark's own files aside).
git_rev=${PIGEON_REV:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)}
if [ -z "${PIGEON_REV:-}" ]; then
    changed=$(git -C "$ROOT" status --short -- crates Cargo.toml Cargo.lock ':!crates/pigeon-bench' 2>/dev/null |
        awk '{print $2}' | tr '\n' ' ')
    [ -n "$changed" ] && git_rev="$git_rev with uncommitted changes in: $changed"
fi
disk_dev=$(df --output=source "$BENCH_OUT" | tail -n 1)
jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg git "$git_rev" --arg kannel "$(kannel_version)" \
    --arg rustc "$(rustc --version 2>/dev/null || echo unknown)" --arg nproc "$(nproc)" \
    --arg cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)" \
    --arg memory "$(free -h | awk '/^Mem:/ {print $2}') RAM" --arg kernel "$(uname -sr)" \
    --arg disk "$disk_dev, $(df -h --output=fstype,size "$BENCH_OUT" | tail -n 1 | xargs), rotational=$(cat /sys/block/"$(basename "$disk_dev")"/queue/rotational 2>/dev/null || echo '?')" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg commands "bash bench/run.sh $* (BENCH_RUNS=$BENCH_RUNS BENCH_DURATION=$BENCH_DURATION BENCH_CONNECTIONS=$BENCH_CONNECTIONS BENCH_THREADS=$BENCH_THREADS)" \
    '{date: $date, git: $git, kannel: $kannel, rustc: $rustc, nproc: $nproc, cpu: $cpu, memory: $memory,
      kernel: $kernel, disk: $disk, loadavg_start: $load, commands: $commands}' >"$BENCH_OUT/meta.json"

SCENARIOS="${BENCH_SCENARIOS:-ceilings accept bulk e2e scale}"
start=$(date +%s)
for s in $SCENARIOS; do
    log "== $s"
    case "$s" in
    scale) if [ "$QUICK" = 1 ]; then bash "$BENCH_DIR/scale.sh" --quick; else bash "$BENCH_DIR/scale.sh"; fi ;;
    # Beside the default (fsync'd before the answer), the process-crash-safe mode.
    accept)
        bash "$BENCH_DIR/accept.sh"
        PIGEON_DURABILITY=normal BENCH_TAG=normal bash "$BENCH_DIR/accept.sh" raspisms
        ;;
    *) bash "$BENCH_DIR/$s.sh" ;;
    esac
done
log "all scenarios in $(($(date +%s) - start)) s"
jq --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '. + {loadavg_end: $load}' "$BENCH_OUT/meta.json" >"$BENCH_OUT/meta.tmp" &&
    mv "$BENCH_OUT/meta.tmp" "$BENCH_OUT/meta.json"
# Scratch data (databases, logs) of each run; the JSON stays.
if [ "${BENCH_KEEP:-0}" != 1 ]; then
    find "$BENCH_OUT" -mindepth 1 -maxdepth 1 -type d ! -name bin -exec rm -rf {} +
    rm -rf "$BENCH_OUT/bin"
fi
python3 "$BENCH_DIR/report.py" "$BENCH_OUT"
