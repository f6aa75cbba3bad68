#!/usr/bin/env bash
# Static zones at scale, failoverdns against Knot DNS in the same run: one
# zone of N A records ("hNNNNNNN IN A 10.x.y.z", an SOA, an NS and its glue)
# for each N in SIZES, and for each server:
#   load:   the time from starting the server to the last name answering
#           with its address (dig polled every 20ms), and its VmRSS then;
#   reload: the zone's serial bumped, then SIGHUP (failoverdns) or
#           `knotc zone-reload` (Knot); the peak RSS from the reload until
#           the new serial is answered (VmHWM, reset just before through
#           /proc/PID/clear_refs), and VmRSS 3s later.
# failoverdns `check` (parse and validate, no serving) is timed too, as the
# issue measured it.
# Verdicts per N: failoverdns's time and RSS <= 1.0x Knot's, and its reload
# peak <= 2x its own steady RSS. Exit status 1 when one fails, 2 on setup
# failure. Output is saved to bench/results/zone_scale-<date>.txt.
#
# Everything listens on 127.0.0.1 only; every process is bounded with
# timeout(1) and stopped on exit. Knot gets its own config, storage and
# rundir in the temporary folder.
#
# Usage: bench/zone_scale.sh
# Tunables (environment): SIZES="100000 1000000" DNS_PORT=25463 KNOT_PORT=25464
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-100000 1000000}
DNS_PORT=${DNS_PORT:-25463}
KNOT_PORT=${KNOT_PORT:-25464}

# shellcheck source=bench/lib/common.sh
. bench/lib/common.sh
bench_init zone_scale

need=()
command -v knotd >/dev/null || need+=(knot)
command -v dig >/dev/null || need+=(bind9-dnsutils)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}"
	timeout 600 apt-get update -qq || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
fi
KNOTD=$(command -v knotd || echo /usr/sbin/knotd)
KNOTC=$(command -v knotc || echo /usr/sbin/knotc)

echo "== static zones at scale, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), kernel $(uname -r), load1 $(cut -d' ' -f1 /proc/loadavg); shared"
bench_revision
echo "knot: $("$KNOTD" --version | head -1)"

go build -o "$WORK/failoverdns" ./cmd/failoverdns || die "go build failed"

now_ns() { date +%s%N; }
ms_since() { echo $((($(now_ns) - $1) / 1000000)); }
mb() { awk -v k="$1" 'BEGIN {printf "%.0f MB", k / 1024}'; }
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

# child_of PID: the process timeout(1) started
child_of() {
	local c=""
	for _ in $(seq 100); do
		c=$(awk '{print $1}' "/proc/$1/task/$1/children" 2>/dev/null || true)
		[ -n "$c" ] && break
		sleep 0.05
	done
	[ -n "$c" ] || die "no process under $1"
	echo "$c"
}

# wait_answer PORT NAME WANT SECONDS: poll until NAME A answers WANT
wait_answer() {
	local end=$(($(now_ns) + $4 * 1000000000))
	while [ "$(now_ns)" -lt "$end" ]; do
		if [ "$(dig @127.0.0.1 -p "$1" "$2" A +short +time=1 +tries=1 2>/dev/null)" = "$3" ]; then
			return 0
		fi
		sleep 0.02
	done
	return 1
}

# wait_serial PORT SERIAL SECONDS
wait_serial() {
	local end=$(($(now_ns) + $3 * 1000000000))
	while [ "$(now_ns)" -lt "$end" ]; do
		if [ "$(dig @127.0.0.1 -p "$1" zs.test SOA +short +time=1 +tries=1 2>/dev/null | awk '{print $3}')" = "$2" ]; then
			return 0
		fi
		sleep 0.02
	done
	return 1
}

# reset_hwm PID: VmHWM starts again from the current RSS (Linux 4.0+)
reset_hwm() { echo 5 >"/proc/$1/clear_refs"; }

# gen N FILE SERIAL
gen() {
	awk -v n="$1" -v serial="$3" 'BEGIN {
		print "$ORIGIN zs.test."
		print "$TTL 3600"
		print "@ IN SOA ns1.zs.test. hostmaster.zs.test. " serial " 7200 3600 1209600 300"
		print "@ IN NS ns1.zs.test."
		print "ns1 IN A 192.0.2.1"
		for (i = 0; i < n; i++)
			printf "h%07d IN A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256
	}' >"$2"
}
last_name() { printf 'h%07d.zs.test.' $(($1 - 1)); }
last_addr() { local i=$(($1 - 1)); echo "10.$((i / 65536 % 256)).$((i / 256 % 256)).$((i % 256))"; }
bump_serial() { sed -i "3s/hostmaster.zs.test. [0-9]* /hostmaster.zs.test. $2 /" "$1"; }

declare -A R # R[server N what]

# started WHO LABEL N PORT LOG CMD...: runs CMD (under timeout(1)) with its
# output in LOG, waits until the last name answers on PORT, and keeps the
# time that took and the server's RSS then and 3 s later. The server's pid
# is left in SERVER, timeout(1)'s in JOB.
started() {
	local who=$1 label=$2 n=$3 port=$4 log=$5 t0
	shift 5
	t0=$(now_ns)
	timeout 900 "$@" >"$log" 2>&1 &
	JOB=$!
	PIDS+=("$JOB")
	SERVER=$(child_of "$JOB")
	wait_answer "$port" "$(last_name "$n")" "$(last_addr "$n")" 300 || { tail -5 "$log"; die "$label does not answer $(last_name "$n")"; }
	R[$who $n load]=$(ms_since "$t0")
	R[$who $n rss]=$(status_kb "$SERVER" VmRSS)
	sleep 3 # the post-start collection and scavenging
	R[$who $n rss3]=$(status_kb "$SERVER" VmRSS)
	echo "  $label: last name answers after ${R[$who $n load]} ms, VmRSS $(mb "${R[$who $n rss]}") then, $(mb "${R[$who $n rss3]}") 3s later"
}

# reloaded WHO LABEL N PORT ZONEFILE CMD...: gives ZONEFILE serial 2, runs
# CMD (which makes SERVER reload) and waits for serial 2 on PORT; keeps the
# time that took, SERVER's RSS peak during the reload (VmHWM, reset before
# it) and its RSS 3 s later.
reloaded() {
	local who=$1 label=$2 n=$3 port=$4 zone=$5 t0 hwm
	shift 5
	bump_serial "$zone" 2
	reset_hwm "$SERVER"
	t0=$(now_ns)
	"$@" >"$WORK/reload.log" 2>&1 || die "$label: $* failed: $(cat "$WORK/reload.log")"
	wait_serial "$port" 2 300 || die "$label did not reload"
	R[$who $n reload]=$(ms_since "$t0")
	hwm=$(status_kb "$SERVER" VmHWM)
	sleep 3
	R[$who $n peak]=$(($(status_kb "$SERVER" VmHWM) > hwm ? $(status_kb "$SERVER" VmHWM) : hwm))
	R[$who $n after]=$(status_kb "$SERVER" VmRSS)
	echo "  $label reload: new serial after ${R[$who $n reload]} ms, peak RSS $(mb "${R[$who $n peak]}"), VmRSS $(mb "${R[$who $n after]}") 3s later"
}

run_failoverdns() { # N
	local n=$1 dir="$WORK/fo-$1" t0
	mkdir -p "$dir"
	gen "$n" "$dir/zs.test.zone" 1
	cat >"$dir/config.toml" <<EOF
[server]
listen = ["127.0.0.1:$DNS_PORT"]
http = ""
state_dir = "$dir/state"

[[zone]]
origin = "zs.test."
file = "zs.test.zone"
EOF
	t0=$(now_ns)
	/usr/bin/time -f '%e s, max RSS %M KB' -o "$dir/check.time" timeout 300 "$WORK/failoverdns" check -config "$dir/config.toml" >"$dir/check.log" 2>&1 || die "check: $(tail -3 "$dir/check.log")"
	echo "  failoverdns check: $(ms_since "$t0") ms ($(cat "$dir/check.time"))"
	R[fo $n check]=$(ms_since "$t0")

	started fo failoverdns "$n" "$DNS_PORT" "$dir/log" "$WORK/failoverdns" -config "$dir/config.toml" -log-format json
	reloaded fo failoverdns "$n" "$DNS_PORT" "$dir/zs.test.zone" kill -HUP "$SERVER"
	kill -TERM "$SERVER"
	wait "$JOB" 2>/dev/null || true
	rm -rf "$dir"
}

run_knot() { # N
	local n=$1 dir="$WORK/knot-$1"
	mkdir -p "$dir/storage" "$dir/run"
	gen "$n" "$dir/storage/zs.test.zone" 1
	cat >"$dir/knot.conf" <<EOF
server:
    rundir: "$dir/run"
    listen: 127.0.0.1@$KNOT_PORT
    background-workers: 1
database:
    storage: "$dir/storage"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "$dir/storage"
    file: "%s.zone"
    journal-content: none
    zonefile-sync: -1
    zonefile-load: whole
    semantic-checks: off
zone:
  - domain: zs.test.
EOF
	started knot knot "$n" "$KNOT_PORT" "$dir/log" "$KNOTD" -c "$dir/knot.conf"
	reloaded knot knot "$n" "$KNOT_PORT" "$dir/storage/zs.test.zone" timeout 60 "$KNOTC" -c "$dir/knot.conf" zone-reload zs.test.
	timeout 30 "$KNOTC" -c "$dir/knot.conf" stop >/dev/null 2>&1 || kill -TERM "$SERVER"
	wait "$JOB" 2>/dev/null || true
	rm -rf "$dir"
}

for n in $SIZES; do
	echo
	echo "-- $n A records"
	run_failoverdns "$n"
	run_knot "$n"
done

echo
printf '%-9s %-12s %10s %10s %12s %12s\n' records server "last answer" "RSS" "reload peak" "peak/steady"
fail=0
for n in $SIZES; do
	for s in fo knot; do
		name=failoverdns
		[ "$s" = knot ] && name=knot
		printf '%-9s %-12s %8s ms %10s %12s %11sx\n' "$n" "$name" "${R[$s $n load]}" "$(mb "${R[$s $n rss3]}")" "$(mb "${R[$s $n peak]}")" \
			"$(awk -v p="${R[$s $n peak]}" -v r="${R[$s $n rss3]}" 'BEGIN {printf "%.2f", p / r}')"
	done
done
echo "(RSS: VmRSS 3s after the last name answered; peak/steady: reload peak over that)"
echo
verdict() { # ok text
	if [ "$1" = 1 ]; then echo "PASS  $2"; else echo "FAIL  $2"; fail=1; fi
}
for n in $SIZES; do
	verdict "$(awk -v a="${R[fo $n load]}" -v b="${R[knot $n load]}" 'BEGIN {print (a <= b) ? 1 : 0}')" \
		"$n records: time to the last answer $(awk -v a="${R[fo $n load]}" -v b="${R[knot $n load]}" 'BEGIN {printf "%.2fx", a / b}') Knot's (${R[fo $n load]} ms vs ${R[knot $n load]} ms; want <= 1.0x)"
	verdict "$(awk -v a="${R[fo $n rss3]}" -v b="${R[knot $n rss3]}" 'BEGIN {print (a <= b) ? 1 : 0}')" \
		"$n records: RSS $(awk -v a="${R[fo $n rss3]}" -v b="${R[knot $n rss3]}" 'BEGIN {printf "%.2fx", a / b}') Knot's ($(mb "${R[fo $n rss3]}") vs $(mb "${R[knot $n rss3]}"); want <= 1.0x)"
	verdict "$(awk -v p="${R[fo $n peak]}" -v r="${R[fo $n rss3]}" 'BEGIN {print (p <= 2 * r) ? 1 : 0}')" \
		"$n records: reload peak $(awk -v p="${R[fo $n peak]}" -v r="${R[fo $n rss3]}" 'BEGIN {printf "%.2fx", p / r}') the steady RSS ($(mb "${R[fo $n peak]}") vs $(mb "${R[fo $n rss3]}"); want <= 2x)"
done
echo
echo "saved to $OUT"
exit "$fail"
