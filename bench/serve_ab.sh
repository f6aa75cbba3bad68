#!/usr/bin/env bash
# BenchmarkServe, before and after: the fast path's work per query at BASE
# (default 013b4ea, the commit before issue 14's query plan) and at the work
# tree, as interleaved rounds (one -count 1 run of each binary per round,
# the order alternating), so that a shared machine's slow minutes hit both.
# Prints benchstat's medians and the after/before ratio per benchmark, then
# instructions per query under callgrind (valgrind): a count that does not
# depend on the machine's load, from two run lengths' difference.
# Output is saved to bench/results/serve_ab-<date>.txt.
#
# Usage: bench/serve_ab.sh     Tunables: ROUNDS=10 (0: instructions only)
#                              BASE=013b4ea CALLGRIND=1
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-10}
BASE=${BASE:-013b4ea}
CALLGRIND=${CALLGRIND:-1}

# shellcheck source=bench/lib/common.sh
. bench/lib/common.sh
bench_init serve_ab

command -v benchstat >/dev/null || GOBIN="$WORK" go install golang.org/x/perf/cmd/benchstat@latest
PATH="$WORK:$PATH"
if [ "$CALLGRIND" = 1 ] && ! command -v valgrind >/dev/null; then
	die "valgrind is missing: apt-get install -y valgrind (or CALLGRIND=0)"
fi

echo "# serve_ab.sh $(date -u +%FT%TZ), ROUNDS=$ROUNDS, before = $(git rev-parse --short "$BASE")"
bench_revision
bench_machine
git worktree add -q --detach "$WORK/base-src" "$BASE"
(cd "$WORK/base-src" && go test -c -o "$WORK/before.test" ./dnsserver)
git worktree remove --force "$WORK/base-src"
go test -c -o "$WORK/after.test" ./dnsserver

run() { # binary: one round of every BenchmarkServe
	(cd dnsserver && "$WORK/$1.test" -test.run '^$' -test.bench '^BenchmarkServe' -test.benchmem -test.count 1) | grep -E '^(Benchmark|goos|goarch|pkg|cpu)'
}
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then order="before after"; else order="after before"; fi
	for b in $order; do run "$b" >>"$WORK/$b.txt"; done
	echo "round $r done, load1 $(cut -d' ' -f1 /proc/loadavg)"
done
if [ "$ROUNDS" -gt 0 ]; then
	echo
	benchstat "before=$WORK/before.txt" "after=$WORK/after.txt"
fi

if [ "$CALLGRIND" = 1 ]; then
	echo
	echo "instructions per query (callgrind; (I(120000 ops) - I(20000 ops)) / 100000):"
	# ir BINARY BENCH OPS: total instructions. Go's preemption signal
	# trips an assertion in callgrind's signal handling: it is turned off.
	ir() {
		local v
		v=$(cd dnsserver && GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$WORK/$1.test" -test.run '^$' -test.bench "^$2\$" -test.benchtime "$3x" -test.cpu 1 2>&1 | awk '/Collected :/{print $4}')
		[ -n "$v" ] || die "callgrind failed on $1 $2"
		echo "$v"
	}
	for bench in BenchmarkServeService BenchmarkServeStatic BenchmarkServeNXDOMAIN BenchmarkServeECS10kSubnets; do
		line="  $(printf '%-28s' "$bench")"
		for b in before after; do
			a=$(ir "$b" "$bench" 20000)
			z=$(ir "$b" "$bench" 120000)
			n=$(((z - a) / 100000))
			line+=" $b $n"
			eval "ir_$b=$n"
		done
		# shellcheck disable=SC2154
		echo "$line  ratio $(echo "scale=3; $ir_after / $ir_before" | bc)"
	done
fi
echo
echo "saved to $OUT"
