#!/usr/bin/env bash
# Soak: failoverdns under a steady dnsperf load for SOAK_DURATION seconds
# (default 60) while, every few seconds, a backend is killed and restarted,
# a pin and an unpin are sent with nsupdate, and the config is reloaded with
# SIGHUP. A checker (TestSoakChecker in dnsserver/soak_test.go) queries
# from 127.0.0.1 and from 127.0.99.5 (location emea) all along and
# validates every answer. Prints counts, RSS and goroutines, and a final
# PASS/FAIL line. Everything is on loopback: nodes on 127.0.10.1-3.
#
# Usage: bench/soak.sh [results-file]
#   SOAK_DURATION=60 SOAK_QPS=2000 SOAK_PERIOD=3 bench/soak.sh
set -euo pipefail
OUT=${1:-}
case $OUT in "" | /*) ;; *) OUT=$PWD/$OUT ;; esac
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DUR=${SOAK_DURATION:-60}
QPS=${SOAK_QPS:-2000}
PERIOD=${SOAK_PERIOD:-3} # seconds between chaos steps

if [ -n "$OUT" ] && [ -z "${SOAK_TEED:-}" ]; then
	# Run again with the output also in $OUT; this shell waits for both.
	mkdir -p "$(dirname "$OUT")"
	set +e
	SOAK_TEED=1 "$ROOT/bench/soak.sh" 2>&1 | tee "$OUT"
	exit "${PIPESTATUS[0]}"
fi

WORK=$(mktemp -d /tmp/failoverdns-soak.XXXXXX)
SERVER_PID=""
BG_PIDS=()

# Every process this script starts is killed on exit, by its PID, and
# reaped: the server, dnsperf, the checker and the backends (whose PIDs are
# kept in $WORK/sems*.pid as they are restarted).
cleanup() {
	set +e
	local pids=("${BG_PIDS[@]}") f
	for f in "$WORK"/sems*.pid; do [ -f "$f" ] && pids+=("$(cat "$f")"); done
	[ -n "$SERVER_PID" ] && pids+=("$SERVER_PID")
	[ "${#pids[@]}" -gt 0 ] || { rm -rf "$WORK"; return; }
	kill "${pids[@]}" 2>/dev/null
	sleep 0.2
	kill -9 "${pids[@]}" 2>/dev/null
	# Reap only these: a bare wait would also wait for the tee of the
	# results file, which ends only when this script does.
	for f in "${pids[@]}"; do wait "$f" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# --- tools --------------------------------------------------------------------
need() { # need <command> <debian package>
	command -v "$1" >/dev/null 2>&1 && return
	log "installing $2 (for $1)"
	if [ "$(id -u)" = 0 ]; then
		timeout 300 apt-get install -y -q "$2" >/dev/null 2>&1 ||
			{ timeout 120 apt-get update -q >/dev/null 2>&1 && timeout 300 apt-get install -y -q "$2" >/dev/null 2>&1; } || true
	fi
	command -v "$1" >/dev/null 2>&1 || { echo "soak: $1 is missing and could not be installed (apt-get install $2)"; echo "FAIL"; exit 1; }
}
need go golang-go
need dnsperf dnsperf
need nsupdate bind9-dnsutils
need curl curl

free_port() {
	python3 -c 'import socket
s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]
u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(("127.0.0.1",p)); print(p)' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

# --- build ----------------------------------------------------------------------
log "building failoverdns and the checker"
timeout 300 go build -o "$WORK/failoverdns" ./cmd/failoverdns
timeout 300 go test -c -o "$WORK/checker" ./dnsserver

# --- backends -------------------------------------------------------------------
declare -A NODE_IP=([sems1]=127.0.10.1 [sems2]=127.0.10.2 [sems3]=127.0.10.3)
declare -A NODE_PORT
for n in sems1 sems2 sems3; do NODE_PORT[$n]=$(free_port); done

backend_up() { # backend_up <node>: a TCP listener on the node's check port (TestSoakBackend)
	local n=$1
	FAILOVERDNS_SOAK=1 SOAK_BACKEND="${NODE_IP[$n]}:${NODE_PORT[$n]}" \
		"$WORK/checker" -test.run '^TestSoakBackend$' -test.count=1 >/dev/null 2>&1 &
	echo $! >"$WORK/$n.pid"
}
backend_down() {
	local n=$1
	[ -f "$WORK/$n.pid" ] || return 0
	kill "$(cat "$WORK/$n.pid")" 2>/dev/null || true
	wait "$(cat "$WORK/$n.pid")" 2>/dev/null || true
	rm -f "$WORK/$n.pid"
}
for n in sems1 sems2 sems3; do backend_up "$n"; done

# --- config ---------------------------------------------------------------------
DNS_PORT=$(free_port)
HTTP_PORT=$(free_port)
SECRET=$(printf 'failoverdns-soak-admin-secret-32' | base64)
cat >"$WORK/soak.test.zone" <<EOF
\$ORIGIN soak.test.
\$TTL 300
@    IN SOA ns1.soak.test. hostmaster.soak.test. 2026112101 3600 600 1209600 60
     IN NS  ns1.soak.test.
ns1  IN A   127.0.0.1
EOF
write_config() { # write_config <ttl>: atomically, so a reload never reads half a file
	{
		printf '[server]\nlisten = ["127.0.0.1:%s"]\nhttp = "127.0.0.1:%s"\nstate_dir = "%s/state"\nadmin_nets = ["127.0.0.1/32"]\n\n' "$DNS_PORT" "$HTTP_PORT" "$WORK"
		printf '[[tsig]]\nname = "soak."\nalgorithm = "hmac-sha256"\nsecret = "%s"\n\n' "$SECRET"
		printf '[[zone]]\norigin = "soak.test."\nfile = "soak.test.zone"\n\n'
		for n in sems1 sems2 sems3; do
			printf '[[node]]\nname = "%s"\naddress = "%s"\n[node.check]\ntype = "tcp"\nport = %s\ninterval = "200ms"\ntimeout = "500ms"\nrise = 2\nfall = 2\n\n' "$n" "${NODE_IP[$n]}" "${NODE_PORT[$n]}"
		done
		printf '[[location]]\nname = "emea"\nsubnets = ["127.0.99.0/24"]\n\n'
		printf '[[service]]\nname = "keys.soak.test."\nttl = %s\npolicy = "failover"\nnodes = ["sems1", "sems2", "sems3"]\nfailback = "auto"\nfailback_after = "1s"\nwhen_all_down = "keep"\n[service.locations]\nemea = ["sems2", "sems3"]\n' "$1"
	} >"$WORK/soak.toml.tmp"
	mv "$WORK/soak.toml.tmp" "$WORK/soak.toml"
}
write_config 5
"$WORK/failoverdns" check -config "$WORK/soak.toml" >/dev/null

metrics() { curl -s --max-time 5 "http://127.0.0.1:$HTTP_PORT/metrics"; }
metric_sum() { # metric_sum <regexp on the series>: the sum of matching samples
	metrics | awk -v re="$1" '$0 !~ /^#/ && $1 ~ re { s += $2 } END { printf "%d\n", s }'
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0; }
goroutines() { metric_sum '^go_goroutines$'; }

# --- start ----------------------------------------------------------------------
"$WORK/failoverdns" -config "$WORK/soak.toml" -log-format json 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 200); do
	if dig +short +time=1 +tries=1 -p "$DNS_PORT" @127.0.0.1 keys.soak.test A 2>/dev/null | grep -q '^127\.0\.10\.'; then break; fi
	kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; echo "FAIL: the server did not start"; exit 1; }
	sleep 0.05
done
log "failoverdns pid $SERVER_PID on 127.0.0.1:$DNS_PORT, http 127.0.0.1:$HTTP_PORT; nodes ${NODE_IP[sems1]}:${NODE_PORT[sems1]} ${NODE_IP[sems2]}:${NODE_PORT[sems2]} ${NODE_IP[sems3]}:${NODE_PORT[sems3]}"
sleep 1 # let the first probes settle before the baseline
RSS_START=$(rss_kb)
G_START=$(goroutines)
log "baseline: RSS ${RSS_START} kB, goroutines $G_START"

# --- load -----------------------------------------------------------------------
printf 'keys.soak.test A\n' >"$WORK/queries.txt"
timeout $((DUR + 30)) dnsperf -s 127.0.0.1 -p "$DNS_PORT" -d "$WORK/queries.txt" -Q "$QPS" -l "$DUR" -c 4 -t 2 >"$WORK/dnsperf.out" 2>&1 &
DNSPERF_PID=$!
BG_PIDS+=("$DNSPERF_PID")

FAILOVERDNS_SOAK=1 SOAK_ADDR="127.0.0.1:$DNS_PORT" SOAK_NAME=keys.soak.test. SOAK_DURATION="${DUR}s" \
	SOAK_NODES=127.0.10.1,127.0.10.2,127.0.10.3 \
	SOAK_SOURCES='127.0.0.1=127.0.10.1,127.0.10.2,127.0.10.3;127.0.99.5=127.0.10.2,127.0.10.3' \
	timeout $((DUR + 60)) "$WORK/checker" -test.run '^TestSoakChecker$' -test.count=1 -test.v >"$WORK/checker.out" 2>&1 &
CHECKER_PID=$!
BG_PIDS+=("$CHECKER_PID")

nsup() { # nsup <update line>: one signed UPDATE; prints ok or fail
	if printf 'server 127.0.0.1 %s\nzone soak.test\n%s\nsend\n' "$DNS_PORT" "$1" |
		timeout 10 nsupdate -t 5 -y "hmac-sha256:soak.:$SECRET" >>"$WORK/nsupdate.out" 2>&1; then
		echo ok
	else
		echo fail
	fi
}

# The chaos loop runs here, in the script itself (so every backend it
# restarts stays this shell's child and is reaped): every PERIOD seconds one
# backend goes down and, half a period later, comes back (one at a time, so
# some node is always up); a pin is set with the kill and removed with the
# restart (alternately service-wide to sems2 and for emea to sems3, both in
# emea's order); and the config is reloaded by SIGHUP with another TTL.
# RSS is sampled at 10 s, the middle and the end.
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
T0=$(now_ms)
HALF=$((PERIOD * 500))
STOP_CHAOS=$(((DUR - 2) * 1000))
i=0 phase=down next=0 RSS_10="" RSS_MID="" RSS_TREND=()
while kill -0 "$DNSPERF_PID" 2>/dev/null; do
	el=$(($(now_ms) - T0))
	if [ -z "$RSS_10" ] && [ "$el" -ge 10000 ]; then RSS_10=$(rss_kb); log "t=10s RSS ${RSS_10} kB"; fi
	if [ -z "$RSS_MID" ] && [ "$el" -ge $((DUR * 500)) ]; then RSS_MID=$(rss_kb); log "t=$((DUR / 2))s RSS ${RSS_MID} kB"; fi
	if [ "$el" -ge $((${#RSS_TREND[@]} * 10000)) ]; then RSS_TREND+=("$(rss_kb)"); fi
	if [ "$el" -ge "$next" ]; then
		n=sems$((i % 3 + 1))
		if [ $((i % 2)) = 0 ]; then pin='_pin.keys.soak.test' node=sems2; else pin='_pin.emea._loc.keys.soak.test' node=sems3; fi
		if [ "$phase" = down ] && [ "$el" -lt "$STOP_CHAOS" ]; then
			backend_down "$n"
			echo "kill $n" >>"$WORK/chaos.out"
			echo "pin $(nsup "update add $pin 0 TXT \"$node\"")" >>"$WORK/chaos.out"
			phase=up next=$((next + HALF))
		elif [ "$phase" = up ]; then
			backend_up "$n"
			echo "restart $n" >>"$WORK/chaos.out"
			echo "unpin $(nsup "update delete $pin TXT")" >>"$WORK/chaos.out"
			ttl=$((5 + i % 2))
			write_config "$ttl"
			kill -HUP "$SERVER_PID"
			echo "reload ttl=$ttl" >>"$WORK/chaos.out"
			phase=down next=$((next + HALF)) i=$((i + 1))
		fi
	fi
	sleep 0.05
done
wait "$DNSPERF_PID" || true
RSS_END=$(rss_kb)
: "${RSS_10:=$RSS_END}" "${RSS_MID:=$RSS_END}"
log "t=$((($(now_ms) - T0) / 1000))s (dnsperf done) RSS ${RSS_END} kB"
wait "$CHECKER_PID" && CHECKER_RC=0 || CHECKER_RC=$?
BG_PIDS=()

# Load has stopped: every backend is up again (the loop stops killing
# 2 s before the end and always restarts), no pin is left. Goroutines must come back near baseline
# (TCP connections close after tcp_idle_timeout, 10 s by default).
G_END=$(goroutines)
for _ in $(seq 1 100); do
	[ "$G_END" -le $((G_START + 10)) ] && break
	sleep 0.25
	G_END=$(goroutines)
done

# --- report -------------------------------------------------------------------
dp() { awk -v k="$1" 'index($0, k) { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) { print $i; exit } }' "$WORK/dnsperf.out"; }
DP_SENT=$(dp "Queries sent:")
DP_DONE=$(dp "Queries completed:")
DP_LOST=$(dp "Queries lost:")
DP_QPS=$(awk '/Queries per second:/ { print $4 }' "$WORK/dnsperf.out")
DP_CODES=$(awk -F: '/Response codes:/ { sub(/^ +/, "", $2); print $2 }' "$WORK/dnsperf.out")
SERVFAIL=$(metric_sum '^failoverdns_queries_total[{].*rcode="SERVFAIL"')
QUERIES=$(metric_sum '^failoverdns_queries_total[{]')
RELOAD_OK=$(metric_sum '^failoverdns_reloads_total[{].*outcome="success"')
RELOAD_BAD=$(metric_sum '^failoverdns_reloads_total[{].*outcome="failure"')
ACTIVE_CHANGES=$(metric_sum '^failoverdns_active_changes_total[{]')
CHECKED=$(awk '/^soak-checker: total checked/ { print $4 }' "$WORK/checker.out")
CHECK_FAILED=$(awk '/^soak-checker: total checked/ { print $6 }' "$WORK/checker.out")
KILLS=$(grep -c '^kill ' "$WORK/chaos.out" || true)
RELOADS=$(grep -c '^reload ' "$WORK/chaos.out" || true)
UPD_OK=$(grep -Ec '^(un)?pin ok' "$WORK/chaos.out" || true)
UPD_BAD=$(grep -Ec '^(un)?pin fail' "$WORK/chaos.out" || true)
SERVER_ALIVE=yes
kill -0 "$SERVER_PID" 2>/dev/null || SERVER_ALIVE=no
# A clean shutdown after the soak: SIGTERM, exit 0 within 10 s.
SERVER_EXIT=dead
if [ "$SERVER_ALIVE" = yes ]; then
	kill -TERM "$SERVER_PID"
	for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$SERVER_PID" 2>/dev/null; then
		SERVER_EXIT="still running 10 s after SIGTERM"
	else
		wait "$SERVER_PID" && SERVER_EXIT=0 || SERVER_EXIT=$?
		SERVER_PID=""
	fi
fi

echo
echo "== failoverdns soak, $(date -u +%Y-%m-%dT%H:%M:%SZ), ${DUR}s at ${QPS} qps, chaos every ${PERIOD}s, $(nproc) CPUs, $(go version | awk '{ print $3 }'), source $(git rev-parse --short HEAD 2>/dev/null || echo 'not a git tree')"
echo "chaos: backend kills+restarts $KILLS, pin/unpin UPDATEs ok $UPD_OK failed $UPD_BAD, SIGHUP reloads $RELOADS (server: success $RELOAD_OK, failure $RELOAD_BAD), active node changes $ACTIVE_CHANGES"
grep '^soak-checker:' "$WORK/checker.out" | sed 's/^/  /' || true
echo "checker: queries checked ${CHECKED:-0}, failures ${CHECK_FAILED:-?} (exit $CHECKER_RC)"
echo "dnsperf: sent ${DP_SENT:-?}, completed ${DP_DONE:-?}, lost ${DP_LOST:-?}, ${DP_QPS:-?} qps; response codes: ${DP_CODES:-?}"
echo "server: queries answered (metrics) $QUERIES, SERVFAIL $SERVFAIL"
echo "RSS kB: start $RSS_START, 10s $RSS_10, middle $RSS_MID, end $RSS_END (every 10 s: ${RSS_TREND[*]} $RSS_END)"
echo "goroutines: start $G_START, end $G_END (after load stopped)"
echo "shutdown: SIGTERM exit status $SERVER_EXIT"

FAIL=()
[ "$SERVER_ALIVE" = yes ] || FAIL+=("the server died")
[ "$SERVER_EXIT" = 0 ] || [ "$SERVER_ALIVE" = no ] || FAIL+=("shutdown after the soak: $SERVER_EXIT")
[ "${CHECKED:-0}" -gt 0 ] || FAIL+=("the checker checked nothing")
[ "${CHECK_FAILED:-1}" = 0 ] && [ "$CHECKER_RC" = 0 ] || FAIL+=("checker failures: ${CHECK_FAILED:-?}")
[ "${DP_DONE:-0}" -gt 0 ] || FAIL+=("dnsperf completed no query")
[ "${DP_LOST:-1}" = 0 ] || FAIL+=("dnsperf lost ${DP_LOST:-?} queries")
[ "$SERVFAIL" = 0 ] || FAIL+=("$SERVFAIL SERVFAIL answers")
[ "$UPD_BAD" = 0 ] || FAIL+=("$UPD_BAD pin UPDATEs failed")
[ "$RELOAD_BAD" = 0 ] || FAIL+=("$RELOAD_BAD reloads failed")
[ "$KILLS" -gt 0 ] && [ "$RELOADS" -gt 0 ] || FAIL+=("the chaos loop did nothing")
if [ "$RSS_10" -gt 0 ] && [ $((RSS_END * 100)) -gt $((RSS_10 * 150)) ]; then
	FAIL+=("RSS grew more than 50% from the 10 s mark: $RSS_10 -> $RSS_END kB")
fi
[ "$G_END" -le $((G_START + 10)) ] || FAIL+=("goroutines $G_END after load, baseline $G_START (+10 allowed)")

if [ "${#FAIL[@]}" -gt 0 ]; then
	echo "--- server log (errors and warnings, last 40):"
	grep -E '"level":"(ERROR|WARN)"' "$WORK/server.log" | tail -40 || true
	echo "--- nsupdate output (last 20):"
	tail -20 "$WORK/nsupdate.out" 2>/dev/null || true
	printf 'FAIL: %s\n' "$(IFS=';'; echo "${FAIL[*]}")"
	exit 1
fi
echo "PASS"
