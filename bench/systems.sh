# The systems under test and the single-send request each takes (sourced). For each SYSTEM:
#   sys_start SYSTEM DIR [dlr]   start it fresh in DIR (Pigeon with a simulator phone, Kannel with
#                                fakesmsc) and set REQ (bench-load arguments for one send) and
#                                SERVER_PIDS (the processes whose CPU time is counted)
#   sys_stop SYSTEM
# SYSTEM: raspisms | reach | astandes (Pigeon's three send APIs), kannel, axum (the HTTP ceiling).

# shellcheck source=bench/kannel.sh
source "$BENCH_DIR/kannel.sh"

REQ=()
SERVER_PIDS=()
PHONE_ID=""
AGENT_PID=""
CEIL_PID=""

# The simulator phone: answers at once; with dlr=1 reports "delivered" at once too.
pigeon_sim_phone() { # dlr(0|1)
    PHONE_ID=$(pigeon_phone sim success_rate=1 delivered_rate=1 latency_ms=0 dlr_delay_ms=0 \
        "dlr=$1" seed=1 concurrency=64)
}

# A device for the Astandes API, paired with `pigeon agent --backend simulator` (sends, then
# "delivered" 50 ms later), connected before the load starts. Sets DEVICE_ID and AGENT_PID.
pigeon_astandes_device() {
    local dir=$1 auth="Authorization: tokenv1 $KEY" code i
    DEVICE_ID=$(curl -s -X POST "$P/api/v1/device" -H "$auth" -H 'Content-Type: application/json' \
        -d '{"phone": "+33600000001", "description": "bench"}' | jq -er '._id')
    code=$(curl -s -X POST "$P/api/v1/attach" -H "$auth" -H 'Content-Type: application/json' \
        -d "{\"device\": \"$DEVICE_ID\"}" | jq -er '.code')
    RUST_LOG=warn "$PIGEON_BIN" agent --server "$P" --pin "$code" --backend simulator --capacity 64 \
        --state "$dir/agent.json" >"$dir/agent.log" 2>&1 &
    AGENT_PID=$!
    STARTED_PIDS+=("$AGENT_PID")
    for ((i = 0; i < 200; i++)); do
        # The device's phone is "available" while its agent is connected.
        if [ "$(pigeon_sql "SELECT p.status FROM devices d JOIN phones p ON p.id = d.phone_id LIMIT 1" 2>/dev/null)" = available ] &&
            [ -s "$dir/agent.json" ]; then
            sleep 0.5
            return 0
        fi
        sleep 0.1
    done
    log "the Astandes agent did not connect (see $dir/agent.log)"
    return 1
}

sys_start() { # SYSTEM DIR [dlr: 0|1, default 0]
    local system=$1 dir=$2 dlr=${3:-0}
    SERVER_PIDS=()
    case "$system" in
    raspisms | reach | astandes)
        pigeon_start "$dir"
        SERVER_PIDS=("$PIGEON_PID")
        ;;
    esac
    case "$system" in
    raspisms)
        pigeon_sim_phone "$dlr"
        REQ=(--url "$P/api/scheduled/" -H "X-Api-Key: $KEY" --body "text=$TEXT&numbers=%2B336{n}")
        ;;
    reach)
        pigeon_sim_phone "$dlr"
        REQ=(--url "$P/rest/messaging/v1/create" -H "ApiUser: $EMAIL" -H "ApiKey: $KEY"
            --body "dest=%2B336{n}&src=%2B33600000000&body=$TEXT")
        ;;
    astandes)
        pigeon_astandes_device "$dir"
        SERVER_PIDS+=("$AGENT_PID")
        REQ=(--url "$P/api/v1/message" -H "Authorization: tokenv1 $KEY" -H 'Content-Type: application/json'
            --body "{\"device\": \"$DEVICE_ID\", \"phone\": \"+336{n}\", \"text\": \"Mon SMS d'exemple pour le benchmark\"}")
        ;;
    kannel)
        kannel_start "$dir"
        read -r -a SERVER_PIDS <<<"$(kannel_pids)"
        local extra=""
        if [ "$dlr" = 1 ]; then
            extra="&dlr-mask=8&dlr-url=$(jq -rn --arg u "$SINK_URL/kannel-dlr?id={n}&type=%d" '$u|@uri' | sed 's/%7Bn%7D/{n}/')"
        fi
        REQ=(--url "$KANNEL_URL/cgi-bin/sendsms?username=bench&password=bench&from=%2B33600000000&to=%2B336{n}&text=$TEXT$extra")
        ;;
    axum)
        port_free "$CEILING_PORT"
        "$CEIL_HTTP" --listen "127.0.0.1:$CEILING_PORT" --duration 900 >"$dir.ceiling.json" 2>/dev/null &
        CEIL_PID=$!
        STARTED_PIDS+=("$CEIL_PID")
        SERVER_PIDS=("$CEIL_PID")
        wait_http "http://127.0.0.1:$CEILING_PORT/" 10
        REQ=(--url "http://127.0.0.1:$CEILING_PORT/api/scheduled/" -H "X-Api-Key: $KEY"
            --body "text=$TEXT&numbers=%2B336{n}")
        ;;
    *)
        log "unknown system $system"
        return 1
        ;;
    esac
}

sys_stop() { # SYSTEM
    case "$1" in
    raspisms | reach | astandes)
        if [ -n "$AGENT_PID" ]; then
            stop_pid "$AGENT_PID" 5
            forget_pid "$AGENT_PID"
            AGENT_PID=""
        fi
        pigeon_stop
        ;;
    kannel) kannel_stop ;;
    axum)
        stop_pid "$CEIL_PID" 5
        forget_pid "$CEIL_PID"
        ;;
    esac
}

# CPU time (user + system, in seconds) used so far by the given processes.
cpu_seconds() {
    local total=0 pid ticks hz
    hz=$(getconf CLK_TCK)
    for pid in "$@"; do
        ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + ticks))
    done
    awk -v t="$total" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}'
}
