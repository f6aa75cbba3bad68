#!/usr/bin/env bash
# Prober scale: 10,000 nodes with tcp checks every second for 60s against
# loopback listeners (100 ports on 127.0.30.1-4, in a child process so they
# are not measured), run by TestProberScale10k in health/scale_bench_test.go.
# Prints the prober's CPU seconds (getrusage, user and system), peak RSS
# (VmHWM), peak goroutines, failed probes, the steady-state probe rate, and
# the sockets left between prober and listeners (TIME_WAIT), with PASS/FAIL
# lines against <= 15 CPU seconds per 60s and <= 150 MB RSS.
#
# While it runs, this script also samples the whole machine's TIME_WAIT
# sockets and its CPU use by other processes, since a shared machine skews
# the figures. Output is saved to bench/results/probers-<date>.txt; exit
# status is the test's.
#
# Usage: bench/probers.sh
# Tunables (environment): FAILOVERDNS_SCALE_NODES=10000
#   FAILOVERDNS_SCALE_SECONDS=60 FAILOVERDNS_SCALE_PORTS=100
#   FAILOVERDNS_SCALE_INTERVAL=1s
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${FAILOVERDNS_SCALE_SECONDS:-60}

# shellcheck source=bench/lib/common.sh
. bench/lib/common.sh
bench_init probers

echo "== prober scale, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r), load1 $(cut -d' ' -f1 /proc/loadavg); shared"
bench_revision
echo "sysctl: tcp_tw_reuse=$(cat /proc/sys/net/ipv4/tcp_tw_reuse) ip_local_port_range=$(tr '\t' - </proc/sys/net/ipv4/ip_local_port_range) tcp_max_tw_buckets=$(cat /proc/sys/net/ipv4/tcp_max_tw_buckets) somaxconn=$(cat /proc/sys/net/core/somaxconn); ulimit -n $(ulimit -n)"

# Build the test binary first, so compiling is not measured as "others".
timeout 600 go test -c -o "$WORK/health.test" ./health || exit 2

# Machine-wide samples every 5s while the test runs: TIME_WAIT sockets to or
# from 127.0.30.0/24, and CPU used by everything but the test process tree.
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
tree_ticks() { # the test process and its child (the listeners)
	local t=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] && t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
	done
	echo "$t"
}
(
	cd "$WORK"
	FAILOVERDNS_SCALE=1 exec timeout $((SECONDS_RUN + 240)) ./health.test -test.run '^TestProberScale10k$' -test.v -test.count=1 -test.timeout $((SECONDS_RUN + 200))s
) &
PIDS+=($!)
TEST_WRAPPER=$!
sleep 1
TEST_PID=$(awk '{print $1}' "/proc/$TEST_WRAPPER/task/$TEST_WRAPPER/children" 2>/dev/null || true)
HZ=$(getconf CLK_TCK)
tw_peak=0
others_sum=0
others_n=0
for _ in $(seq $(((SECONDS_RUN + 240) / 5))); do
	kill -0 "$TEST_WRAPPER" 2>/dev/null || break
	kids=""
	[ -n "$TEST_PID" ] && kids=$(cat "/proc/$TEST_PID/task/$TEST_PID/children" 2>/dev/null || true)
	b0=$(busy_ticks)
	# shellcheck disable=SC2086
	p0=$(tree_ticks $TEST_PID $kids)
	sleep 5
	b1=$(busy_ticks)
	# shellcheck disable=SC2086
	p1=$(tree_ticks $TEST_PID $kids)
	tw=$(ss -Htan state time-wait '( dst 127.0.30.0/24 or src 127.0.30.0/24 )' 2>/dev/null | wc -l)
	[ "$tw" -gt "$tw_peak" ] && tw_peak=$tw
	o=$(awk -v d=$((b1 - b0 - (p1 - p0))) -v hz="$HZ" 'BEGIN {printf "%.2f", d / hz / 5}')
	others_sum=$(awk -v a="$others_sum" -v b="$o" 'BEGIN {print a + b}')
	others_n=$((others_n + 1))
done
rc=0
wait "$TEST_WRAPPER" || rc=$?
echo
echo "machine-wide, sampled every 5s by this script: peak TIME_WAIT sockets to/from 127.0.30.0/24: $tw_peak (ss); other processes used $(awk -v s="$others_sum" -v n="$others_n" 'BEGIN {printf "%.2f", n ? s / n : 0}') cores on average (of $(nproc))"
echo "saved to $OUT"
exit "$rc"
