# Shared set-up for the bench scripts: source it from the repository root,
# then call bench_init NAME [SUFFIX]. It tees all output to
# bench/results/NAME-<date>[-SUFFIX].txt, makes WORK (a temporary folder) and PIDS (the
# jobs to stop), and on exit stops every process below those jobs and removes
# WORK. die prints "NAME.sh: message" and exits 2.

# descendants PID...: those pids and every process below them
descendants() {
	local p
	for p in "$@"; do
		echo "$p"
		# shellcheck disable=SC2046
		[ -r "/proc/$p/task/$p/children" ] && descendants $(cat "/proc/$p/task/$p/children")
	done
}

bench_cleanup() {
	local rc=$?
	set +e
	# Servers run under timeout(1), which forwards TERM; a server that is
	# hung may ignore it, so everything below our jobs is collected first
	# and KILLed after 5s.
	local all pid
	# shellcheck disable=SC2207
	all=($(descendants "${PIDS[@]}"))
	for pid in "${all[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for _ in $(seq 50); do
		local alive=0
		for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	rm -rf "$WORK"
	exit "$rc"
}

bench_init() {
	BENCH_NAME=$1
	mkdir -p bench/results
	OUT="bench/results/$BENCH_NAME-$(date +%Y-%m-%d)${2:+-$2}.txt"
	exec > >(tee "$OUT") 2>&1
	WORK=$(mktemp -d "/tmp/failoverdns-$BENCH_NAME.XXXXXX")
	PIDS=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

die() {
	echo "$BENCH_NAME.sh: $*" >&2
	exit 2
}

# bench_revision prints the failoverdns line of a results header: the commit
# and whether the work tree differs from it. bench/results is left out: the
# results file being written is in it.
bench_revision() {
	local dirty=""
	git diff --quiet HEAD -- . ':(exclude)bench/results' 2>/dev/null || dirty=" +uncommitted changes in the work tree"
	echo "failoverdns: $(git rev-parse --short HEAD 2>/dev/null)$dirty, $(go version | cut -d' ' -f3)"
}

# bench_machine prints the machine line of a results header: cores, CPU,
# kernel and the load when the run starts (the machine is shared).
bench_machine() {
	echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r), load1 $(cut -d' ' -f1 /proc/loadavg); shared"
}
