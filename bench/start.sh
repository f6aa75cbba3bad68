#!/usr/bin/env bash
# Start time without [cluster]: how long `failoverdns` (the embedded demo,
# README's first command) takes from exec to answering keys.demo.test, for
#   default    go build ./cmd/failoverdns (no etcd client);
#   cluster    go build -tags cluster (README "Running several nameservers":
#              links the etcd client, gRPC and etcd's protobuf);
#   before     the commit before the etcd client came in (BEFORE, default
#              df50419~1), the reference for the cluster issue's "no slower
#              start".
# ROUNDS rounds, each running every binary once in a rotating order
# (bench/start/main.go); prints min, quartiles and median of each, and each
# binary's package-init total from GODEBUG=inittrace=1 (median of 9).
# Output is saved to bench/results/start-<date>.txt.
#
# Usage: bench/start.sh        Tunables: ROUNDS=40 BEFORE=df50419~1
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-40}
BEFORE=${BEFORE:-df50419~1}

# shellcheck source=bench/lib/common.sh
. bench/lib/common.sh
bench_init start

for port in 5353 5380; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		die "127.0.0.1:$port is in use (a demo running?); the demo needs it"
	fi
done

echo "# start.sh $(date -u +%FT%TZ) on $(nproc) CPUs, ROUNDS=$ROUNDS"
bench_revision
go build -o "$WORK/default" ./cmd/failoverdns
go build -tags cluster -o "$WORK/cluster" ./cmd/failoverdns
go build -o "$WORK/measure" ./bench/start
bins=("default=$WORK/default" "cluster=$WORK/cluster")
if git rev-parse -q --verify "$BEFORE^{commit}" >/dev/null; then
	git worktree add -q --detach "$WORK/before-src" "$BEFORE"
	(cd "$WORK/before-src" && go build -o "$WORK/before" ./cmd/failoverdns)
	git worktree remove --force "$WORK/before-src"
	bins+=("before=$WORK/before")
	echo "before = $(git rev-parse --short "$BEFORE")"
else
	echo "before: $BEFORE is not in this checkout; skipped"
fi
for b in default cluster before; do
	[ -x "$WORK/$b" ] || continue
	printf '%-10s binary %5.1f MB, package init median of 9: ' "$b" "$(echo "$(stat -c %s "$WORK/$b") / 1048576" | bc -l)"
	for _ in $(seq 9); do
		GODEBUG=inittrace=1 "$WORK/$b" version 2>&1 >/dev/null | awk '{s += $5} END {printf "%.2f\n", s}'
	done | sort -n | sed -n 5p | tr -d '\n'
	echo " ms"
done
echo "exec -> first answer for keys.demo.test (ms):"
flock /tmp/bench.lock "$WORK/measure" -rounds "$ROUNDS" -addr 127.0.0.1:5353 -name keys.demo.test. "${bins[@]}"
