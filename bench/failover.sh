#!/bin/sh
# Failover detection time, end to end: how long after the active node dies a
# DNS client gets the next node. 20 fresh instances with TCP checks on
# loopback (interval 200ms, timeout 150ms, fall 2); node 1's listener is
# closed at a random point of its probe cycle and the server is queried
# every 5ms until it answers node 2. See BenchmarkFailoverDetection in
# dnsserver/failover_bench_test.go.
#
# Usage: bench/failover.sh [extra go test flags, e.g. -race]
set -eu
cd "$(dirname "$0")/.."

out=$(go test -run '^$' -bench BenchmarkFailoverDetection -benchtime 1x -count 1 "$@" ./dnsserver 2>&1) || {
	printf '%s\n' "$out" >&2
	echo "bench/failover.sh: the benchmark failed" >&2
	exit 1
}
printf '%s\n' "$out"
printf '%s\n' "$out" | awk '
	/^BenchmarkFailoverDetection/ {
		for (i = 2; i <= NF; i++) {
			if ($i == "median-s") m = $(i - 1)
			if ($i == "p95-s") p = $(i - 1)
		}
	}
	END {
		if (m == "" || p == "") { print "bench/failover.sh: no median-s/p95-s in the output" > "/dev/stderr"; exit 1 }
		printf "failover detection: median %s s, p95 %s s\n", m, p
	}'
