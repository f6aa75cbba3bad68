#!/usr/bin/env bash
# Reload at scale, on the real binary: 10,000 services over 30,000 nodes
# (checks "none": nothing is probed) in one zone with 1,000 static records,
# the config written by zones/reload_bench_test.go (TestWriteReloadConfig).
#
# Starts failoverdns with it, keeps dnsperf querying service names and the
# SOA at a fixed rate the whole time, and reloads RELOADS times for each of
# SIGHUP and POST /reload and each of two kinds of change: "zone" (the zone's
# serial bumped, config.toml untouched) and "config" (that and one service's
# ttl changed in config.toml, so the whole config is decoded again):
#   SIGHUP: the time between the server's own "SIGHUP: reloading" and
#           "reloaded" log lines (JSON log timestamps), and from kill(1) to the
#           "reloaded" line being seen (polled every 10ms);
#   POST:   the HTTP response time (curl time_total).
# After each reload the SOA serial and the service's ttl must be the new
# ones. The queries must all be answered NOERROR: dnsperf's lost queries and
# other rcodes are failures.
# PASS when every reload took <= 1s and no query failed. Output is saved to
# bench/results/reload-<date>.txt; exit status 1 on FAIL, 2 on setup failure.
#
# Everything runs on 127.0.0.1; every process is stopped on exit and bounded
# with timeout(1).
#
# Usage: bench/reload.sh
# Tunables (environment): RELOADS=5 QPS=2000 DNS_PORT=25363 HTTP_PORT=25364
set -euo pipefail
cd "$(dirname "$0")/.."

RELOADS=${RELOADS:-5}
QPS=${QPS:-2000}
DNS_PORT=${DNS_PORT:-25363}
HTTP_PORT=${HTTP_PORT:-25364}
LIFETIME=$((RELOADS * 4 * 40 + 300))

# shellcheck source=bench/lib/common.sh
. bench/lib/common.sh
bench_init reload

need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}"
	timeout 600 apt-get update -qq || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
fi

echo "== reload at scale, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r), load1 $(cut -d' ' -f1 /proc/loadavg); shared"
bench_revision

go build -o "$WORK/failoverdns" ./cmd/failoverdns || die "go build failed"
mkdir -p "$WORK/cfg"
FAILOVERDNS_RELOAD_DIR="$WORK/cfg" FAILOVERDNS_RELOAD_LISTEN="127.0.0.1:$DNS_PORT" FAILOVERDNS_RELOAD_HTTP="127.0.0.1:$HTTP_PORT" \
	timeout 300 go test -count=1 -run '^TestWriteReloadConfig$' ./zones >"$WORK/gen.log" 2>&1 || die "generating the config: $(cat "$WORK/gen.log")"
CFG="$WORK/cfg/config.toml"
ZONE="$WORK/cfg/svc.test.zone"
echo "config: $(grep -c '^\[\[service\]\]' "$CFG") services, $(grep -c '^\[\[node\]\]' "$CFG") nodes, $(grep -c '^\[\[location\]\]' "$CFG") locations; $(wc -l <"$CFG") lines, $(($(wc -c <"$CFG") / 1024)) KiB; zone $(wc -l <"$ZONE") lines"

t0=$(date +%s%N)
timeout 120 "$WORK/failoverdns" check -config "$CFG" >"$WORK/check.log" 2>&1 || die "check: $(tail -5 "$WORK/check.log")"
echo "failoverdns check: $((($(date +%s%N) - t0) / 1000000)) ms"

# --- start ------------------------------------------------------------------
t0=$(date +%s%N)
timeout "$LIFETIME" "$WORK/failoverdns" -config "$CFG" -log-format json >"$WORK/log" 2>&1 &
PIDS+=($!)
FO_PID=""
for _ in $(seq 50); do
	FO_PID=$(cat "/proc/${PIDS[0]}/task/${PIDS[0]}/children" 2>/dev/null | awk '{print $1}')
	[ -n "$FO_PID" ] && break
	sleep 0.1
done
[ -n "$FO_PID" ] || die "failoverdns did not start"
ok=""
for _ in $(seq 600); do # at most 60s
	if [ "$(dig @127.0.0.1 -p "$DNS_PORT" s09999.svc.test A +short +time=1 +tries=1 2>/dev/null)" = 100.64.117.45 ]; then
		ok=1
		break
	fi
	sleep 0.1
done
[ -n "$ok" ] || { tail -20 "$WORK/log"; die "failoverdns does not answer s09999.svc.test"; }
echo "start to first answer: $((($(date +%s%N) - t0) / 1000000)) ms; VmRSS $(awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$FO_PID/status")"
loc=$(dig @127.0.0.1 -p "$DNS_PORT" s00020.svc.test A +short +subnet=10.1.2.0/24 +time=1 +tries=1)
[ "$loc" = 100.64.0.61 ] || die "s00020.svc.test from east: got [$loc], want 100.64.0.61"

# --- queries in the background ----------------------------------------------
awk 'BEGIN {
	srand(7)
	for (i = 0; i < 20000; i++) {
		if (i % 20 == 19) { print "svc.test SOA"; continue }
		printf "s%05d.svc.test A\n", int(rand() * 10000)
	}
}' >"$WORK/queries"
QUERY_SECONDS=$((RELOADS * 4 * 3 + 20))
timeout $((QUERY_SECONDS + 30)) dnsperf -s 127.0.0.1 -p "$DNS_PORT" -d "$WORK/queries" -l "$QUERY_SECONDS" -Q "$QPS" -c 2 -T 1 -t 2 >"$WORK/dnsperf.log" 2>&1 &
PIDS+=($!)
DP_PID=$!
sleep 2

# --- reloads ----------------------------------------------------------------
# Two kinds of change before each reload:
#   zone:   the zone's serial only; config.toml is byte for byte the same
#           (the server may skip decoding an unchanged config);
#   config: the zone's serial and service s00000's ttl in config.toml, so
#           the whole config is decoded and validated again.
serial=1
ttl=30
bump() { # kind
	serial=$((serial + 1))
	sed -i "s/^@ IN SOA ns1 hostmaster.svc.test. [0-9]* /@ IN SOA ns1 hostmaster.svc.test. $serial /" "$ZONE"
	if [ "$1" = config ]; then
		ttl=$((ttl + 1))
		# the first "ttl = " line is service s00000's
		sed -i "0,/^ttl = [0-9]*$/s//ttl = $ttl/" "$CFG"
	fi
}
check_applied() {
	local got
	got=$(dig @127.0.0.1 -p "$DNS_PORT" svc.test SOA +short +time=1 +tries=1 | awk '{print $3}')
	[ "$got" = "$serial" ] || die "after the reload the SOA serial is [$got], want $serial"
	got=$(dig @127.0.0.1 -p "$DNS_PORT" s00000.svc.test A +noall +answer +time=1 +tries=1 | awk '{print $2; exit}')
	[ "$got" = "$ttl" ] || die "after the reload s00000.svc.test has ttl [$got], want $ttl"
}
ms_between() { # two RFC 3339 timestamps with fractions -> milliseconds
	python3 -c 'import sys, datetime as d
f = lambda s: d.datetime.fromisoformat(s.replace("Z", "+00:00"))
print("%.1f" % ((f(sys.argv[2]) - f(sys.argv[1])).total_seconds() * 1000))' "$1" "$2"
}

cpu_ticks() { sed 's/^.*) //' "/proc/$FO_PID/stat" | awk '{print $12 + $13}'; }
HZ=$(getconf CLK_TCK)
cpu_since() { awk -v d=$(($(cpu_ticks) - $1)) -v hz="$HZ" 'BEGIN {printf "%.0f", d / hz * 1000}'; }
rss() { # VmRSS, and the Go heap in use from /metrics
	local heap
	heap=$(timeout 10 curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk '$1 == "go_memstats_heap_inuse_bytes" {printf "%.0f MB", $2 / 1048576}')
	echo "$(awk '/VmRSS/ {printf "%.0f MB", $2/1024}' "/proc/$FO_PID/status") (Go heap in use ${heap:-?})"
}

# hung WHY: the server did not finish a reload; show whether it still
# answers, then its goroutines (SIGQUIT makes the Go runtime print them and
# exit), and fail.
hung() {
	echo "reload.sh: $1"
	echo "  DNS: $(dig @127.0.0.1 -p "$DNS_PORT" s00001.svc.test A +short +time=1 +tries=1 2>&1 | tail -1)"
	local code
	code=$(timeout 3 curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/healthz" 2>/dev/null || true)
	[ "${code:-000}" = 000 ] && code="no answer within 2s"
	echo "  /healthz: $code"
	local lines
	lines=$(wc -l <"$WORK/log")
	kill -QUIT "$FO_PID" 2>/dev/null
	sleep 2
	echo "  goroutines (SIGQUIT): the running and the stopping-the-world ones, then a count by state:"
	tail -n +$((lines + 1)) "$WORK/log" | awk '
		/^goroutine / {
			st = $0; sub(/^[^[]*\[/, "", st); sub(/\].*$/, "", st); sub(/, [0-9]+ minutes/, "", st)
			count[st]++
			show = (st ~ /^(running|stopping the world)/); n = 0
		}
		show && n < 10 && !/^\t\/usr\/local\/go/ && !/^$/ { print "    " $0; n++ }
		END { for (s in count) printf "    %5d %s\n", count[s], s }'
	die "the server hung during a reload (see above)"
}

declare -A T # T[method kind] = times in ms
ALL=()
reload_sighup() { # kind n
	local lines c0 t0 seen new a b inside wall
	lines=$(wc -l <"$WORK/log")
	c0=$(cpu_ticks)
	t0=$(date +%s%N)
	kill -HUP "$FO_PID"
	seen=""
	while [ $(($(date +%s%N) - t0)) -lt 30000000000 ]; do # at most 30s
		# no grep -q: under pipefail an early exit would fail tail with SIGPIPE
		if tail -n +$((lines + 1)) "$WORK/log" | grep -E '"msg":"(reloaded|reload failed)' >/dev/null; then
			seen=$(date +%s%N)
			break
		fi
		sleep 0.01
	done
	if [ -z "$seen" ]; then
		hung "no \"reloaded\" line within 30s of SIGHUP"
	fi
	new=$(tail -n +$((lines + 1)) "$WORK/log")
	if grep -q '"msg":"reload failed' <<<"$new"; then die "reload failed: $new"; fi
	a=$(grep -m1 '"msg":"SIGHUP: reloading"' <<<"$new" | sed 's/.*"time":"\([^"]*\)".*/\1/')
	b=$(grep -m1 '"msg":"reloaded"' <<<"$new" | sed 's/.*"time":"\([^"]*\)".*/\1/')
	inside=$(ms_between "$a" "$b")
	wall=$(awk -v d=$((seen - t0)) 'BEGIN {printf "%.1f", d / 1e6}')
	check_applied
	printf 'SIGHUP %-6s #%d: reloading -> reloaded %7.1f ms in the log; kill -> line seen %7.1f ms; cpu %5s ms; VmRSS %s\n' \
		"$1" "$2" "$inside" "$wall" "$(cpu_since "$c0")" "$(rss)"
	T["SIGHUP $1"]+="$wall "
	ALL+=("$wall")
}
reload_post() { # kind n
	local c0 r code secs ms
	c0=$(cpu_ticks)
	r=$(timeout 35 curl -s -m 30 -o "$WORK/post.out" -w '%{http_code} %{time_total}' -X POST "http://127.0.0.1:$HTTP_PORT/reload") || hung "POST /reload: no answer within 30s"
	code=${r% *}
	secs=${r#* }
	[ "$code" = 200 ] || die "POST /reload: $code $(cat "$WORK/post.out")"
	check_applied
	ms=$(awk -v s="$secs" 'BEGIN {printf "%.1f", s * 1000}')
	printf 'POST   %-6s #%d: 200 in %7.1f ms; cpu %5s ms; VmRSS %s\n' "$1" "$2" "$ms" "$(cpu_since "$c0")" "$(rss)"
	T["POST $1"]+="$ms "
	ALL+=("$ms")
}

echo "(cpu: the server's utime+stime during the reload, which includes serving ~$QPS queries/s; on a busy shared machine wall time can exceed it by far)"
echo
for i in $(seq "$RELOADS"); do
	for kind in zone config; do
		bump "$kind"
		reload_sighup "$kind" "$i"
		sleep 1
		bump "$kind"
		reload_post "$kind" "$i"
		sleep 1
	done
done
echo "server after the reloads: VmRSS $(rss), VmHWM $(awk '/VmHWM/ {printf "%.1f MB", $2/1024}' "/proc/$FO_PID/status")"
timeout 10 curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk '$1 ~ /^go_memstats_(heap_(alloc|inuse|idle|released|sys)|sys)_bytes$/ {printf "  %s %.1f MB\n", $1, $2 / 1048576}'

# --- queries' verdict -------------------------------------------------------
for _ in $(seq $((QUERY_SECONDS + 40))); do kill -0 "$DP_PID" 2>/dev/null || break; sleep 1; done
wait "$DP_PID" || die "dnsperf failed: $(tail -5 "$WORK/dnsperf.log")"
sent=$(awk '/Queries sent:/ {print $3}' "$WORK/dnsperf.log")
completed=$(awk '/Queries completed:/ {print $3}' "$WORK/dnsperf.log")
lost=$(awk '/Queries lost:/ {print $3}' "$WORK/dnsperf.log")
codes=$(awk -F: '/Response codes:/ {print $2}' "$WORK/dnsperf.log" | sed 's/^ *//')
noerror=$(awk '/Response codes:/ {for (i = 1; i <= NF; i++) if ($i == "NOERROR") print $(i + 1)}' "$WORK/dnsperf.log")
failed=$((lost + completed - ${noerror:-0}))
echo
echo "queries during the reloads: $QPS/s for ${QUERY_SECONDS}s: sent $sent, completed $completed, lost $lost; rcodes: $codes"
grep -E 'Average Latency|Latency StdDev' "$WORK/dnsperf.log" | sed 's/^ */  /'

median() { printf '%s\n' $1 | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo
for k in "SIGHUP zone" "SIGHUP config" "POST zone" "POST config"; do
	printf '%-14s median %7.1f ms, max %7.1f ms\n' "$k:" "$(median "${T[$k]}")" "$(printf '%s\n' ${T[$k]} | sort -g | tail -1)"
done
max=$(printf '%s\n' "${ALL[@]}" | sort -g | tail -1)
echo
fail=0
if awk -v m="$max" 'BEGIN {exit !(m <= 1000)}'; then v=PASS; else v=FAIL; fail=1; fi
echo "$v  reload of 10,000 services / 30,000 nodes: max ${max} ms over ${#ALL[@]} reloads, config edited or not (want <= 1000 ms)"
if [ "$failed" -eq 0 ]; then v=PASS; else v=FAIL; fail=1; fi
echo "$v  queries failed during the reloads: $failed of $sent (want 0)"
echo
echo "saved to $OUT"
exit "$fail"
