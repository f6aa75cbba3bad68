#!/usr/bin/env bash
# Cost against the size of the config, on the real binary: failoverdns with
# 0 (the empty server), 1, 1,000, 10,000 and 100,000 services over the same
# three nodes, and 10,000 services each with its own three nodes (30,000
# nodes). TCP checks against real loopback listeners, interval 200ms,
# timeout 150ms, rise 2, fall 2; services fail back after 1s.
#
# Per row (bench/lib/scale_row.py does the measuring):
#   start:     exec to the last service answering its first node;
#   RSS:       VmRSS 3s later, and per service above the empty server;
#   failover:  the first node's listener closes at the same points of the
#              probe cycle in every row (round r at (r + 0.5) / ROUNDS of 0.8
#              interval after a probe connected, before the earliest the
#              next probe may come; so rows differ by what the server does,
#              not by luck), then the first and the last
#              service are queried every 2ms until each answers the second
#              node; median of
#              ROUNDS rounds (the listener comes back in between, the
#              services fail back, and a round starts once the server's
#              log and event history have been quiet for a second);
#   publish:   from the health change to the new answers in force (the
#              server's "recomputed" log line, published_seconds);
#   recompute: the same line's seconds: deciding and publishing, then the
#              log lines, events and counters of the views that changed,
#              the same time as recompute_duration_seconds (not read from
#              /metrics: gathering 300,000 series costs seconds of CPU).
# With own nodes, the first and the last service's first nodes fail
# together, each its own service's only; those nodes and the ones they fail
# over to are probed every 200ms, the other 29,996 every OTHER_INTERVAL at
# 16 shared listeners (30,000 nodes every 200ms would be 150,000 connects a
# second: more than the 2-core machine has).
# Targets: failover at 100,000 services <= 1.2x the failover at 1 service;
# start <= 1.5s at 100,000; RSS <= 1.5 KB per service above the empty
# server. Output is saved to bench/results/scale-<date>.txt; exit status 1
# on FAIL, 2 on setup failure.
#
# Everything listens on 127.0.0.0/8 only; every process is stopped on exit.
#
# Usage: bench/scale.sh
# Tunables (environment): ROUNDS=5 ROWS="0 1 1000 10000 100000 10000own"
#   OTHER_INTERVAL=5s DNS_PORT=25563 HTTP_PORT=25564 CHECK_PORT=25565
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
ROWS=${ROWS:-0 1 1000 10000 100000 10000own}
OTHER_INTERVAL=${OTHER_INTERVAL:-5s}
DNS_PORT=${DNS_PORT:-25563}
HTTP_PORT=${HTTP_PORT:-25564}
CHECK_PORT=${CHECK_PORT:-25565}

# shellcheck source=bench/lib/common.sh
. bench/lib/common.sh
bench_init scale

echo "== cost against the size of the config, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
bench_machine
bench_revision

go build -o "$WORK/failoverdns" ./cmd/failoverdns || die "go build failed"

outs=()
for row in $ROWS; do
	n=${row%own}
	own=false
	[ "$row" != "$n" ] && own=true
	dir="$WORK/row-$row"
	mkdir -p "$dir"
	cat >"$dir/row.json" <<EOF
{"dir": "$dir", "services": $n, "own": $own, "dns_port": $DNS_PORT, "http_port": $HTTP_PORT,
 "check_port": $CHECK_PORT, "other_interval": "$OTHER_INTERVAL", "rounds": $ROUNDS}
EOF
	python3 bench/lib/scale_row.py config "$dir/row.json" || die "writing the config of row $row"
	nodes=$(grep -c '^\[\[node\]\]' "$dir/config.toml")
	echo
	echo "-- $n services, $nodes nodes$([ "$own" = true ] && echo ", each service its own three"): config $(($(wc -c <"$dir/config.toml") / 1024)) KiB"
	# shellcheck disable=SC2046
	timeout 1800 python3 bench/lib/accept.py 1800 $(python3 bench/lib/scale_row.py listeners "$dir/row.json") </dev/null >"$dir/accept.log" 2>&1 &
	PIDS+=($!)
	acc=$!
	for _ in $(seq 100); do grep -q ready "$dir/accept.log" 2>/dev/null && break; sleep 0.05; done
	grep -q ready "$dir/accept.log" 2>/dev/null || die "accept.py: $(cat "$dir/accept.log")"
	flock /tmp/bench.lock timeout 1200 python3 bench/lib/scale_row.py run "$dir/row.json" "$dir/out.json" -- \
		"$WORK/failoverdns" -config "$dir/config.toml" -log-format json ||
		{ tail -5 "$dir/log" 2>/dev/null; die "row $row failed"; }
	kill "$acc" 2>/dev/null || true
	wait "$acc" 2>/dev/null || true
	outs+=("$dir/out.json")
done

echo
fail=0
python3 bench/lib/scale_row.py report "${outs[@]}" || fail=1
echo
echo "saved to $OUT"
exit "$fail"
