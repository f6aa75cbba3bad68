#!/usr/bin/env bash
# Cluster mode under faults (README "Running several nameservers", "What each failure does"): the
# fault matrix of cmd/failoverdns/cluster_fault_test.go, RUNS times each, in
# a network namespace of its own: three real etcd members on 127.0.0.1-3,
# three failoverdns processes on 127.0.0.11-13, nodes as TCP listeners on
# 127.0.10.1-3 (checks every 200ms, fall 2, rise 2), session_ttl 2s,
# local_failover_after 3s, every instance queried every 10 ms.
#
# Scenarios: leader-killed (kill -9 of the leader instance, then a node
# failure), leader-cut-off and follower-cut-off (iptables between the
# instance's address and every etcd member; in the second a node dies while
# it is cut off), prober-isolated (the leader's prober cannot reach sems1),
# quorum-lost (two of three etcd members killed, then launched again). Each
# sends pin UPDATEs during the fault.
#
# Prints per scenario, beside the targets of issue 15: episodes where
# connected instances answer differently (count, longest, total, p99),
# convergence after a node failure (first and last instance: median, p95),
# leader change time (fault to the new leader's first beat), pins
# acknowledged vs served after heal, and answers that etcd never committed
# for the view and that were not flagged local. Saves everything to
# bench/results/cluster-<date>-etcd<version>.txt. Exit status 1 when a
# target is missed or a run fails an assertion, 2 when the setup fails.
#
# Usage: bench/cluster.sh          (as root: it makes network namespaces)
# Environment: RUNS=10, ETCD=/path/to/etcd (default: the etcd on PATH, i.e.
#   Debian's 3.4; ETCD=current builds the one pinned in bench/etcd/go.mod),
#   SCENARIOS=leader-killed,quorum-lost (default: all).
# Takes flock /tmp/bench.lock: timing wants the machine to itself.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-10}
ETCD_ARG=${ETCD:-}
ETCD=${ETCD:-$(command -v etcd || true)}
SCENARIOS=${SCENARIOS:-}

exec 9>/tmp/bench.lock
flock 9

if [ "$ETCD" = current ]; then
	mkdir -p bench/etcd/bin
	echo "building etcd from bench/etcd/go.mod"
	(cd bench/etcd && go build -o bin/etcd go.etcd.io/etcd/server/v3) || { echo "bench/cluster.sh: building etcd failed" >&2; exit 2; }
	ETCD=$PWD/bench/etcd/bin/etcd
fi
[ -n "$ETCD" ] && [ -x "$ETCD" ] || { echo "bench/cluster.sh: no etcd: apt-get install etcd-server, or ETCD=/path, or ETCD=current" >&2; exit 2; }
ETCD=$(cd "$(dirname "$ETCD")" && pwd)/$(basename "$ETCD")
ETCD_VERSION=$("$ETCD" --version | awk '/^etcd Version:/ {print $3}')
[ -n "$ETCD_VERSION" ] || { echo "bench/cluster.sh: $ETCD --version names no version" >&2; exit 2; }

# shellcheck source=bench/lib/common.sh
. bench/lib/common.sh
bench_init cluster "etcd$ETCD_VERSION"

echo "== bench/cluster.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load1 $(cut -d' ' -f1 /proc/loadavg)"
bench_revision
echo "etcd: $ETCD_VERSION ($ETCD)"
echo "runs per scenario: $RUNS; scenarios: ${SCENARIOS:-all}; session_ttl 2s, local_failover_after 3s, checks every 200ms fall 2 rise 2, queries every 10ms"
echo "command: RUNS=$RUNS${ETCD_ARG:+ ETCD=$ETCD_ARG}${SCENARIOS:+ SCENARIOS=$SCENARIOS} bench/cluster.sh"
echo

rc=0
FAILOVERDNS_CLUSTER_BENCH=1 FAILOVERDNS_BENCH_RUNS=$RUNS FAILOVERDNS_BENCH_ETCD=$ETCD \
	FAILOVERDNS_BENCH_SCENARIOS=$SCENARIOS FAILOVERDNS_BENCH_REPORT=$WORK/report.txt \
	go test -count=1 -v -timeout 3h -run '^TestClusterBench$' ./cmd/failoverdns >"$WORK/test.log" 2>&1 || rc=$?

if [ ! -s "$WORK/report.txt" ]; then
	tail -n 200 "$WORK/test.log"
	echo "bench/cluster.sh: the benchmark produced no report (go test exit $rc)" >&2
	exit 2
fi
cat "$WORK/report.txt"
echo
# The failed runs' assertions, so a FAIL is explained in the results file.
if grep -q -- '--- FAIL' "$WORK/test.log"; then
	echo "failed runs:"
	grep -E -- '--- FAIL|cluster_(fault|harness)_test.go:[0-9]+: ' "$WORK/test.log" | grep -v 'answered: \|leader change \|run figures' | sed 's/^ *netns.go:[0-9]*: │ */  /' | head -n 60
fi
if grep -q ': FAIL' "$WORK/report.txt" || [ "$rc" != 0 ]; then
	echo "verdict: FAIL"
	exit 1
fi
echo "verdict: PASS"
