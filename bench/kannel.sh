#!/usr/bin/env bash
# Kannel 1.4.5 (Debian `kannel` + `kannel-extras`) as the benchmark peer: bearerbox with the
# store file, smsbox with sendsms, and kannel-extras' fakesmsc as the SMSC, all on 127.0.0.1.
#
#   bash bench/kannel.sh install       # apt-get install -y kannel kannel-extras, if missing
#   bash bench/kannel.sh smoke         # start, send one SMS with a DLR, check fakesmsc got it, stop
#
# Sourced by the other scripts for kannel_install / kannel_start DIR / kannel_stop.

if [ -z "${BENCH_DIR:-}" ]; then
    # shellcheck source=bench/lib.sh
    source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

KANNEL_ADMIN_PORT=13100
KANNEL_BOX_PORT=13101
KANNEL_SMSC_PORT=13110
KANNEL_SENDSMS_PORT=13113
KANNEL_URL="http://127.0.0.1:$KANNEL_SENDSMS_PORT"
FAKESMSC=/usr/lib/kannel/test/fakesmsc
KANNEL_PIDS=()
KANNEL_DIR=""

kannel_install() {
    if command -v bearerbox >/dev/null 2>&1 && command -v smsbox >/dev/null 2>&1 && [ -x "$FAKESMSC" ]; then
        return 0
    fi
    log "installing Kannel (Debian kannel, kannel-extras)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq kannel kannel-extras >&2
    # The package's init script may start a system Kannel; the benchmark runs its own.
    if [ -x /etc/init.d/kannel ]; then /etc/init.d/kannel stop >/dev/null 2>&1 || true; fi
}

kannel_version() {
    dpkg-query -W -f '${Version}' kannel 2>/dev/null || echo unknown
}

# kannel_config DIR: the configuration, with the store file and loopback-only binds. The fake
# SMSC port has no bind option in Kannel; `connect-allow-ip` limits it to 127.0.0.1.
kannel_config() {
    local dir=$1
    cat >"$dir/kannel.conf" <<EOF
group = core
admin-port = $KANNEL_ADMIN_PORT
admin-interface = 127.0.0.1
admin-password = bench
admin-allow-ip = "127.0.0.1"
smsbox-port = $KANNEL_BOX_PORT
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
log-file = "$dir/bearerbox.log"
log-level = ${KANNEL_LOG_LEVEL:-2}
store-type = file
store-location = "$dir/kannel.store"
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = FAKE
host = 127.0.0.1
port = $KANNEL_SMSC_PORT
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = $KANNEL_BOX_PORT
sendsms-port = $KANNEL_SENDSMS_PORT
sendsms-interface = 127.0.0.1
log-file = "$dir/smsbox.log"
log-level = ${KANNEL_LOG_LEVEL:-2}

group = sendsms-user
username = bench
password = bench
max-messages = 1

group = sms-service
keyword = default
catch-all = true
text = "ok"
EOF
}

# kannel_start DIR: bearerbox, then fakesmsc (its stdout: one line per SMS received, in
# DIR/fakesmsc.log), then smsbox; returns when sendsms answers.
kannel_start() {
    KANNEL_DIR=$1
    rm -rf "$KANNEL_DIR"
    mkdir -p "$KANNEL_DIR"
    kannel_config "$KANNEL_DIR"
    local p
    for p in $KANNEL_ADMIN_PORT $KANNEL_BOX_PORT $KANNEL_SMSC_PORT $KANNEL_SENDSMS_PORT; do port_free "$p"; done
    bearerbox -v 2 "$KANNEL_DIR/kannel.conf" >"$KANNEL_DIR/bearerbox.out" 2>&1 &
    KANNEL_PIDS+=($!)
    STARTED_PIDS+=($!)
    wait_http "http://127.0.0.1:$KANNEL_ADMIN_PORT/status.txt?password=bench" 20
    "$FAKESMSC" -H 127.0.0.1 -r "$KANNEL_SMSC_PORT" -i 0 -m 0 "1 2 text nop" >"$KANNEL_DIR/fakesmsc.log" 2>&1 &
    KANNEL_PIDS+=($!)
    STARTED_PIDS+=($!)
    smsbox -v 2 "$KANNEL_DIR/kannel.conf" >"$KANNEL_DIR/smsbox.out" 2>&1 &
    KANNEL_PIDS+=($!)
    STARTED_PIDS+=($!)
    wait_http "$KANNEL_URL/" 20
    # The SMSC link must be online before the load starts.
    local i
    for ((i = 0; i < 100; i++)); do
        curl -s "http://127.0.0.1:$KANNEL_ADMIN_PORT/status.txt?password=bench" | grep -q 'FAKE.*online' && return 0
        sleep 0.1
    done
    log "Kannel's fake SMSC did not come online"
    return 1
}

kannel_received() { # SMS fakesmsc has received so far
    grep -c 'Got message' "$KANNEL_DIR/fakesmsc.log" 2>/dev/null || true
}

kannel_pids() { echo "${KANNEL_PIDS[@]}"; }

kannel_stop() {
    local i pid
    # smsbox first, then bearerbox (it dumps its store), then the SMSC.
    for ((i = ${#KANNEL_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${KANNEL_PIDS[$i]}
        stop_pid "$pid" 15
        forget_pid "$pid"
    done
    KANNEL_PIDS=()
}

kannel_smoke() {
    kannel_install
    kannel_start "$BENCH_OUT/kannel-smoke"
    sink_start 60
    local dlr
    dlr=$(jq -rn --arg u "$SINK_URL/kannel-dlr?type=%d" '$u|@uri')
    curl -s -i "$KANNEL_URL/cgi-bin/sendsms?username=bench&password=bench&from=%2B33600000000&to=%2B33612345678&text=$TEXT&dlr-mask=8&dlr-url=$dlr"
    echo
    sleep 2
    echo "fakesmsc received: $(kannel_received)"
    echo "sink: $(sink_stats)"
    sink_stop
    kannel_stop
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case "${1:-smoke}" in
    install) kannel_install ;;
    smoke) [ -x "$SINK" ] || build; kannel_smoke ;;
    *) echo "usage: $0 install|smoke" >&2; exit 2 ;;
    esac
fi
