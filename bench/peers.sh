#!/usr/bin/env bash
# failoverdns against gdnsd and the floor on the same scenario, with dnsperf.
#
# The floor (bench/floor/floor.c, built here with gcc) is the kernel's floor
# for a UDP DNS responder: it does no DNS work, answering every query with
# its own question and one fixed A record (keys.example.test's 127.0.10.1),
# one SO_REUSEPORT socket per CPU it is given, one thread each,
# recvmmsg/sendmmsg in batches of 32. What a server spends per query above
# the floor is its own work; the floor is the least any server could spend.
#
# Both servers serve zone example.test (SOA, NS, glue, a few static records)
# and service keys.example.test over three nodes 127.0.10.1/2/3, first alive
# in order n1 n2 n3, with TCP checks (interval 2s, timeout 1s: gdnsd's
# smallest interval is 2s) against loopback backends this script starts, and
# one location 127.0.99.0/24 whose order is n2 n1 n3 (gdnsd: the geoip plugin
# with a nets-only map, each "datacenter" a single address, which is
# metafo's ordered first-alive over single addresses).
#
# $ROUNDS interleaved rounds; in each, per query mix, failoverdns, gdnsd
# and the floor one after another:
#   (a) saturation: dnsperf $SAT_FLAGS for $SAT_SECONDS: queries/s, latency
#   (b) CPU per query at a fixed offered load (dnsperf -Q $FIXED_QPS for
#       $FIXED_SECONDS): the server's utime+stime from /proc/PID/stat before
#       and after, divided by the queries completed
#   (c) the server's VmRSS (and VmHWM) after the round
# Each line also shows the server's CPU during the saturation run in cores
# (near the core count: the server is the limit; well below it: dnsperf,
# on the same cores, is) and "others": the CPU the rest of the machine
# (dnsperf and anything else) used during the fixed-load run, roughly
# (/proc/stat ticks), since a shared machine skews everything.
# Mixes: "svc" = 100% keys.example.test A; "mix" = 80% keys A, 10%
# example.test SOA, 10% nonexistent names (random labels).
#
# Prints the medians of the rounds, each server's CPU per query and
# saturation q/s as a ratio to the floor and to gdnsd, and a PASS/FAIL line
# per target of issue 19, per mix: CPU per query <= 1.1x the floor and
# <= 0.9x gdnsd (medians); failoverdns below gdnsd in CPU per query in at
# least 4 of 5 rounds (4/5 of ROUNDS, rounded up); saturation q/s not lower
# than the failoverdns median of the newest earlier bench/results/peers-*.txt
# with the same placement. Saves everything to
# bench/results/peers-<date>-<SUFFIX>.txt. Exit status 1 when a target
# fails, 2 when the setup fails.
#
# CPU placement (PIN=1, the default, with 2 or more CPUs): dnsperf runs on
# the last CPU and the servers on the others (taskset), the same for all.
# Left to the scheduler, the load generator and the server threads migrate
# onto each other's CPU and wake each other across CPUs, which adds CPU per
# query and ±15% run-to-run noise that has nothing to do with the server.
# Each server sees the CPUs it is given (on 2 CPUs: one) and sizes itself
# to them: failoverdns and the floor one UDP socket per CPU, gdnsd its
# default threads.
# PIN=0 leaves placement to the scheduler.
#
# Everything runs on 127.0.0.0/8. Every process started here is stopped on
# exit and has its lifetime bounded with timeout(1) besides.
#
# Usage: bench/peers.sh       (as root: installs dnsperf, gdnsd and gcc if missing)
# Tunables (environment): ROUNDS=3 SAT_SECONDS=10 SAT_FLAGS="-c 4 -q 100 -T 1"
#   FIXED_QPS=20000 FIXED_SECONDS=20 PIN=1 SUFFIX=pinned (PIN=0: unpinned)
#   FO_PORT=25353 GD_PORT=25354 FL_PORT=25355 BACKEND_PORT=25380 (below the ephemeral range)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SAT_SECONDS=${SAT_SECONDS:-10}
SAT_FLAGS=${SAT_FLAGS:--c 4 -q 100 -T 1}
FIXED_QPS=${FIXED_QPS:-20000}
FIXED_SECONDS=${FIXED_SECONDS:-20}
FO_PORT=${FO_PORT:-25353}
GD_PORT=${GD_PORT:-25354}
FL_PORT=${FL_PORT:-25355}
BACKEND_PORT=${BACKEND_PORT:-25380}
PIN=${PIN:-1}
if [ "$PIN" = 1 ]; then SUFFIX=${SUFFIX-pinned}; else SUFFIX=${SUFFIX-unpinned}; fi
# Upper bound on the lifetime of every process started here.
LIFETIME=$((ROUNDS * 3 * 2 * (SAT_SECONDS + FIXED_SECONDS + 20) + 300))

# shellcheck source=bench/lib/common.sh
. bench/lib/common.sh
bench_init peers "$SUFFIX"

# --- tools -----------------------------------------------------------------
need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v gdnsd >/dev/null || [ -x /usr/sbin/gdnsd ] || need+=(gdnsd)
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}"
	timeout 600 apt-get update -qq || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
fi
GDNSD=$(command -v gdnsd || echo /usr/sbin/gdnsd)
command -v python3 >/dev/null || die "python3 is needed for the loopback backends"
CLK_TCK=$(getconf CLK_TCK)

echo "== failoverdns vs gdnsd and the floor, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); shared: the load generator runs on the same cores"
bench_revision
echo "gdnsd: $("$GDNSD" -h 2>&1 | awk '/^gdnsd version/ {print $3; exit}'), dnsperf: $(dnsperf -h 2>&1 | awk '/^Version/ {print $2; exit}')"
NCPU=$(nproc)
SERVER_PIN=() LOAD_PIN=()
if [ "$PIN" = 1 ] && [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null; then
	SERVER_PIN=(taskset -c "0-$((NCPU - 2))")
	LOAD_PIN=(taskset -c "$((NCPU - 1))")
	PLACEMENT="placement: servers on CPUs 0-$((NCPU - 2)), dnsperf on CPU $((NCPU - 1))"
	echo "$PLACEMENT (PIN=0 to let the scheduler place them)"
else
	PLACEMENT="placement: left to the scheduler"
	echo "$PLACEMENT"
fi
echo "saturation: dnsperf $SAT_FLAGS -l $SAT_SECONDS; fixed load: dnsperf -Q $FIXED_QPS -l $FIXED_SECONDS -c 4 -T 1; rounds: $ROUNDS"

echo "building failoverdns"
go build -o "$WORK/failoverdns" ./cmd/failoverdns || die "go build failed"
echo "building the floor: $(gcc --version | head -1)"
gcc -O2 -Wall -pthread -o "$WORK/floor" bench/floor/floor.c || die "gcc bench/floor/floor.c failed"

# --- backends --------------------------------------------------------------
timeout "$LIFETIME" python3 bench/lib/accept.py "$LIFETIME" \
	127.0.10.1:"$BACKEND_PORT" 127.0.10.2:"$BACKEND_PORT" 127.0.10.3:"$BACKEND_PORT" >"$WORK/backends.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q ready "$WORK/backends.log" && break; sleep 0.1; done
grep -q ready "$WORK/backends.log" || die "backends did not start: $(cat "$WORK/backends.log")"

# --- the scenario ----------------------------------------------------------
ZONE_BODY='$TTL 3600
@     IN SOA ns1 hostmaster 2026112101 3600 600 1209600 30
@     IN NS  ns1
@     IN NS  ns2
ns1   IN A   127.0.0.53
ns2   IN A   127.0.0.54
www   IN A   192.0.2.80
mail  IN A   192.0.2.25
@     IN MX  10 mail
info  IN TXT "failoverdns benchmark zone"
ftp   IN CNAME www'

mkdir -p "$WORK/fo" "$WORK/gd/zones"
{ echo '$ORIGIN example.test.'; echo "$ZONE_BODY"; } >"$WORK/fo/example.test.zone"
{
	cat <<EOF
[server]
listen = ["127.0.0.1:$FO_PORT"]
http = ""
state_dir = "state"

[[zone]]
origin = "example.test."
file = "example.test.zone"
EOF
	for i in 1 2 3; do
		cat <<EOF

[[node]]
name = "n$i"
address = "127.0.10.$i"
[node.check]
type = "tcp"
port = $BACKEND_PORT
interval = "2s"
timeout = "1s"
rise = 2
fall = 3
EOF
	done
	cat <<EOF

[[location]]
name = "lab"
subnets = ["127.0.99.0/24"]

[[service]]
name = "keys.example.test."
ttl = 30
policy = "failover"
nodes = ["n1", "n2", "n3"]
failback = "auto"
failback_after = "10s"
when_all_down = "keep"
[service.locations]
lab = ["n2", "n1", "n3"]
EOF
} >"$WORK/fo/fo.toml"

{ echo "$ZONE_BODY"; echo 'keys  30 DYNA geoip!keys'; } >"$WORK/gd/zones/example.test"
cat >"$WORK/gd/config" <<EOF
options => {
  listen => [ 127.0.0.1:$GD_PORT ]
  zones_default_ttl => 3600
  run_dir => $WORK/gd/run
  state_dir => $WORK/gd/state
}
service_types => {
  keys_tcp => {
    plugin => tcp_connect
    port => $BACKEND_PORT
    interval => 2
    timeout => 1
    up_thresh => 2
    ok_thresh => 2
    down_thresh => 3
  }
}
plugins => {
  geoip => {
    maps => {
      keys_map => {
        datacenters => [ n1, n2, n3 ]
        nets => { 127.0.99.0/24 => [ n2, n1, n3 ] }
      }
    }
    resources => {
      keys => {
        map => keys_map
        service_types => keys_tcp
        dcmap => { n1 => 127.0.10.1, n2 => 127.0.10.2, n3 => 127.0.10.3 }
      }
    }
  }
}
EOF

"$WORK/failoverdns" check -config "$WORK/fo/fo.toml" >"$WORK/fo/check.log" 2>&1 || die "failoverdns check: $(cat "$WORK/fo/check.log")"
"$GDNSD" -c "$WORK/gd" checkconf >"$WORK/gd/check.log" 2>&1 || die "gdnsd checkconf: $(cat "$WORK/gd/check.log")"

# --- query files -----------------------------------------------------------
printf 'keys.example.test A\n' >"$WORK/q-svc"
awk 'BEGIN {
	srand(20261121)
	chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	for (i = 0; i < 10000; i++) {
		k = i % 10
		if (k < 8) { print "keys.example.test A"; continue }
		if (k == 8) { print "example.test SOA"; continue }
		label = ""
		for (j = 0; j < 12; j++) label = label substr(chars, int(rand() * 36) + 1, 1)
		print "nx-" label ".example.test A"
	}
}' >"$WORK/q-mix"

# --- servers ---------------------------------------------------------------
# child_of prints the pid of the one child of a timeout(1) wrapper.
child_of() {
	local c=""
	for _ in $(seq 50); do
		c=$(cat "/proc/$1/task/$1/children" 2>/dev/null | awk '{print $1}')
		[ -n "$c" ] && break
		sleep 0.1
	done
	echo "$c"
}

(cd "$WORK/fo" && exec timeout "$LIFETIME" "${SERVER_PIN[@]}" "$WORK/failoverdns" -config fo.toml) >"$WORK/fo/log" 2>&1 &
PIDS+=($!)
FO_PID=$(child_of $!)
timeout "$LIFETIME" "${SERVER_PIN[@]}" "$GDNSD" -c "$WORK/gd" start >"$WORK/gd/log" 2>&1 &
PIDS+=($!)
GD_PID=$(child_of $!)
timeout "$LIFETIME" "${SERVER_PIN[@]}" "$WORK/floor" "$FL_PORT" >"$WORK/floor.log" 2>&1 &
PIDS+=($!)
FL_PID=$(child_of $!)
[ -n "$FO_PID" ] && [ -n "$GD_PID" ] && [ -n "$FL_PID" ] || die "a server did not start"

# wait until a server answers keys.example.test A with exactly one record, n1,
# and the location gets n2 (ECS from 127.0.99.0/24), or the third argument
# (the floor: n1, the one record it has for everyone): at most 30s.
verify() { # name port [answer from the location]
	local a loc
	for _ in $(seq 60); do
		a=$(dig @127.0.0.1 -p "$2" keys.example.test A +short +time=1 +tries=1 2>/dev/null || true)
		loc=$(dig @127.0.0.1 -p "$2" keys.example.test A +short +subnet=127.0.99.7/32 +time=1 +tries=1 2>/dev/null || true)
		if [ "$a" = 127.0.10.1 ] && [ "$loc" = "${3:-127.0.10.2}" ]; then
			echo "verify $1: keys.example.test A -> $a (one record); from 127.0.99.0/24 (ECS) -> $loc"
			return 0
		fi
		sleep 0.5
	done
	echo "verify $1: FAILED: keys A -> [$a], from 127.0.99.0/24 -> [$loc]" >&2
	return 1
}
verify failoverdns "$FO_PORT" || { cat "$WORK/fo/log"; die "failoverdns does not answer as expected"; }
verify gdnsd "$GD_PORT" || { cat "$WORK/gd/log"; die "gdnsd does not answer as expected"; }
verify floor "$FL_PORT" 127.0.10.1 || { cat "$WORK/floor.log"; die "the floor does not answer as expected"; }
for p in "$FO_PORT" "$GD_PORT"; do
	for q in "example.test SOA" "nx-check.example.test A"; do
		set -- $q
		st=$(dig @127.0.0.1 -p "$p" "$1" "$2" +time=1 +tries=1 | awk '/status:/ {gsub(",", "", $6); print $6}')
		echo "verify port $p: $q -> $st"
	done
done

# --- measuring -------------------------------------------------------------
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# busy ticks of the whole machine (all CPUs): user nice system irq softirq steal
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
rss_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
field() { # file label: the first number after label
	awk -v l="$2" '(i = index($0, l)) { print substr($0, i + length(l)) + 0; exit }' "$1"
}

declare -A R # R[server,mix,metric] = space-separated values, one per round

run_one() { # server port pid mix round
	local s=$1 port=$2 pid=$3 mix=$4 round=$5 f="$WORK/dp-$1-$4-$5"
	# (a) saturation
	local s0 s1 sat_done sat_cores
	s0=$(cpu_ticks "$pid")
	# shellcheck disable=SC2086
	timeout $((SAT_SECONDS + 30)) "${LOAD_PIN[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/q-$mix" -l "$SAT_SECONDS" $SAT_FLAGS >"$f.sat" 2>&1 ||
		die "dnsperf failed: $(tail -5 "$f.sat")"
	local qps lat lost
	s1=$(cpu_ticks "$pid")
	qps=$(field "$f.sat" "Queries per second:")
	sat_done=$(field "$f.sat" "Queries completed:")
	# the server's own CPU meanwhile: near $(nproc) cores means the server
	# is the limit; well below, the load generator (on the same cores) is
	sat_cores=$(awk -v d=$((s1 - s0)) -v hz="$CLK_TCK" -v l="$SAT_SECONDS" 'BEGIN {printf "%.2f", d / hz / l}')
	lat=$(field "$f.sat" "Average Latency (s):")
	lost=$(field "$f.sat" "Queries lost:")
	# (b) CPU per query at a fixed offered load
	local t0 t1 done_q cpu_us
	t0=$(cpu_ticks "$pid")
	local b0 b1 w0 w1
	b0=$(busy_ticks)
	w0=$(date +%s%N)
	timeout $((FIXED_SECONDS + 30)) "${LOAD_PIN[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/q-$mix" -l "$FIXED_SECONDS" -Q "$FIXED_QPS" -c 4 -T 1 >"$f.fix" 2>&1 ||
		die "dnsperf failed: $(tail -5 "$f.fix")"
	t1=$(cpu_ticks "$pid")
	b1=$(busy_ticks)
	w1=$(date +%s%N)
	# what the rest of the machine (dnsperf and everything else) used meanwhile, in cores
	local others
	others=$(awk -v b=$((b1 - b0 - (t1 - t0))) -v hz="$CLK_TCK" -v w=$((w1 - w0)) 'BEGIN {printf "%.2f", b / hz / (w / 1e9)}')
	done_q=$(field "$f.fix" "Queries completed:")
	cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$done_q" 'BEGIN { printf "%.2f", (n > 0 ? d / hz * 1e6 / n : 0) }')
	# (c) memory
	local rss hwm
	rss=$(rss_kb "$pid" VmRSS)
	hwm=$(rss_kb "$pid" VmHWM)
	printf '%-12s round %d  %-3s  sat %7.0f q/s  avg %6.3f ms  lost %s  server %s cores | fixed %s q/s: %6d done, cpu %.2fs, %6.2f us/query | VmRSS %6.1f MB (HWM %.1f) | others %s cores, load1 %s\n' \
		"$s" "$round" "$mix" "$qps" "$(awk -v l="$lat" 'BEGIN {print l * 1000}')" "$lost" "$sat_cores" "$FIXED_QPS" "$done_q" \
		"$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN {print d / hz}')" "$cpu_us" \
		"$(awk -v k="$rss" 'BEGIN {print k / 1024}')" "$(awk -v k="$hwm" 'BEGIN {print k / 1024}')" "$others" "$(cut -d' ' -f1 /proc/loadavg)"
	R[$s,$mix,qps]+="$qps "
	R[$s,$mix,lat]+="$lat "
	R[$s,$mix,cpu]+="$cpu_us "
	R[$s,$mix,rss]+="$rss "
	R[$s,$mix,satcpu]+="$(awk -v d=$((s1 - s0)) -v hz="$CLK_TCK" -v n="$sat_done" 'BEGIN {printf "%.2f", (n > 0 ? d / hz * 1e6 / n : 0)}') "
}

median() { printf '%s\n' $1 | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo
for round in $(seq "$ROUNDS"); do
	for mix in svc mix; do
		run_one failoverdns "$FO_PORT" "$FO_PID" "$mix" "$round"
		run_one gdnsd "$GD_PORT" "$GD_PID" "$mix" "$round"
		run_one floor "$FL_PORT" "$FL_PID" "$mix" "$round"
	done
done

# all still answer correctly after the load
verify failoverdns "$FO_PORT" >/dev/null || die "failoverdns stopped answering correctly"
verify gdnsd "$GD_PORT" >/dev/null || die "gdnsd stopped answering correctly"
verify floor "$FL_PORT" 127.0.10.1 >/dev/null || die "the floor stopped answering correctly"

echo
echo "== medians of $ROUNDS rounds"
printf '%-5s %-12s %10s %11s %18s %17s %8s\n' mix server "sat q/s" "avg lat ms" "us/query at sat" "us/query at ${FIXED_QPS}" "RSS MB"
for mix in svc mix; do
	for s in failoverdns gdnsd floor; do
		printf '%-5s %-12s %10.0f %11.3f %18.2f %17.2f %8.1f\n' "$mix" "$s" \
			"$(median "${R[$s,$mix,qps]}")" "$(awk -v l="$(median "${R[$s,$mix,lat]}")" 'BEGIN {print l * 1000}')" \
			"$(median "${R[$s,$mix,satcpu]}")" "$(median "${R[$s,$mix,cpu]}")" "$(awk -v k="$(median "${R[$s,$mix,rss]}")" 'BEGIN {print k / 1024}')"
	done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
echo
echo "== ratios of the medians: CPU per query at $FIXED_QPS q/s (lower is better), saturation q/s (higher is better)"
printf '%-5s %-12s %10s %10s %10s %10s\n' mix server "cpu/floor" "cpu/gdnsd" "sat/floor" "sat/gdnsd"
for mix in svc mix; do
	for s in failoverdns gdnsd floor; do
		printf '%-5s %-12s %10s %10s %10s %10s\n' "$mix" "$s" \
			"$(ratio "$(median "${R[$s,$mix,cpu]}")" "$(median "${R[floor,$mix,cpu]}")")" \
			"$(ratio "$(median "${R[$s,$mix,cpu]}")" "$(median "${R[gdnsd,$mix,cpu]}")")" \
			"$(ratio "$(median "${R[$s,$mix,qps]}")" "$(median "${R[floor,$mix,qps]}")")" \
			"$(ratio "$(median "${R[$s,$mix,qps]}")" "$(median "${R[gdnsd,$mix,qps]}")")"
	done
done

# "before": the failoverdns saturation medians of the newest earlier result
# (by the time in its header) with the same placement on the same CPU model:
# a result from another machine compares machines, not code.
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
PREV="" prev_at=""
for f in bench/results/peers-*.txt; do
	if [ "$f" = "$OUT" ] || ! grep -q '^== medians' "$f" || ! grep -qF "$PLACEMENT" "$f" || ! grep -qF "machine: $NCPU cores ($CPU_MODEL)" "$f"; then continue; fi
	at=$(awk '/^== .*Z$/ {print $NF; exit}' "$f")
	if [[ "$at" > "$prev_at" ]]; then PREV=$f prev_at=$at; fi
done

fail=0
check() { # value op limit text: a PASS or FAIL line
	if awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {exit !(op == "<=" ? v <= l : v >= l)}'; then
		echo "PASS  $4"
	else
		echo "FAIL  $4"
		fail=1
	fi
}
want=$(((4 * ROUNDS + 4) / 5))
echo
echo "== issue 19's targets"
for mix in svc mix; do
	fo_cpu=$(median "${R[failoverdns,$mix,cpu]}")
	r=$(ratio "$fo_cpu" "$(median "${R[floor,$mix,cpu]}")")
	check "$r" "<=" 1.1 "$mix: CPU per query failoverdns/floor = $r (want <= 1.1)"
	r=$(ratio "$fo_cpu" "$(median "${R[gdnsd,$mix,cpu]}")")
	check "$r" "<=" 0.9 "$mix: CPU per query failoverdns/gdnsd = $r (want <= 0.9)"
	below=$(awk -v a="${R[failoverdns,$mix,cpu]}" -v b="${R[gdnsd,$mix,cpu]}" 'BEGIN {n = split(a, x); split(b, y); for (i = 1; i <= n; i++) c += (x[i] < y[i]); print c + 0}')
	check "$below" ">=" "$want" "$mix: failoverdns below gdnsd in CPU per query in $below of $ROUNDS rounds (want >= $want)"
	sat=$(median "${R[failoverdns,$mix,qps]}" | awk '{printf "%.0f", $1}')
	before=""
	[ -n "$PREV" ] && before=$(awk -v m="$mix" '/^== medians/ {t = 1} t && $1 == m && $2 == "failoverdns" {print $3; exit}' "$PREV")
	if [ -n "$before" ]; then
		r=$(ratio "$sat" "$before")
		check "$r" ">=" 1.0 "$mix: saturation q/s failoverdns = $sat, before $before ($PREV) = ${r}x (want >= 1.0)"
	else
		echo "----  $mix: saturation q/s failoverdns = $sat (no earlier result with this placement on this CPU to compare with)"
	fi
done
echo
echo "saved to $OUT"
exit "$fail"
