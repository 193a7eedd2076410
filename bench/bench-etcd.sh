#!/usr/bin/env bash
# bench-etcd.sh: Chainfire (centra) against etcd on etcd's own load generator.
#
# Runs etcd's tools/benchmark v3.5.17 against Debian's etcd and against centra,
# interleaved (for every repetition and case: etcd, then centra, each on fresh
# data directories on loopback), and prints one markdown table of medians on
# stdout. Progress goes to stderr. See docs/performance.md for the method.
#
# Knobs (environment):
#   REPS=3           repetitions per case (medians are reported)
#   CASES="..."      space-separated case names (default: all, see CASE_LIST)
#   SCALE=1          multiplies every case's request total
#   CENTRA_BIN=bin/centra
#   BENCH_TOOL=      a prebuilt tools/benchmark binary; default: built once
#                    into $BENCH_CACHE from a throw-away module
#   BENCH_CACHE=~/.cache/centra-bench
#   WORK=            scratch dir for data dirs and logs (default: mktemp -d);
#                    kept when KEEP=1
#   PROFILE=         a directory: save a 10 s CPU profile of centra's leader
#                    (from /debug/pprof, enabled with --network-enable-pprof) per case
#                    and repetition into it
set -euo pipefail

REPS=${REPS:-3}
SCALE=${SCALE:-1}
CENTRA_BIN=${CENTRA_BIN:-bin/centra}
BENCH_CACHE=${BENCH_CACHE:-$HOME/.cache/centra-bench}
BENCH_VERSION=v3.5.17
PROFILE=${PROFILE:-}

# name|nodes|request total|benchmark arguments (key 8 B, value 256 B, random
# keys in a 100k key space, as in issue 13). "@leader" targets the leader,
# "@all" every member.
CASE_LIST=(
	"put-1|1|4000|@leader put --clients=1 --conns=1"
	"put-100|1|40000|@leader put --clients=100 --conns=10"
	"put-1000|1|60000|@leader put --clients=1000 --conns=100"
	"range-l-1|1|6000|@leader range bench-key --consistency=l --clients=1 --conns=1"
	"range-l-100|1|60000|@leader range bench-key --consistency=l --clients=100 --conns=10"
	"range-s-100|1|60000|@leader range bench-key --consistency=s --clients=100 --conns=10"
	"put3-1|3|2000|@leader put --clients=1 --conns=1"
	"put3-100|3|30000|@leader put --clients=100 --conns=10"
	"put3-1000|3|50000|@leader put --clients=1000 --conns=100"
	"range3-l-100|3|50000|@all range bench-key --consistency=l --clients=100 --conns=10"
)
PUT_ARGS="--key-size=8 --val-size=256 --key-space-size=100000 --sequential-keys=false"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -x $CENTRA_BIN ]] || die "$CENTRA_BIN not found; run make build (or set CENTRA_BIN)"
CENTRA_BIN=$(realpath "$CENTRA_BIN")
# centra refuses unknown CENTRA_* variables: keep the knob out of its
# environment.
export -n CENTRA_BIN

# --- tools ------------------------------------------------------------------

install_etcd() {
	if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
		return
	fi
	log "installing Debian's etcd-server and etcd-client"
	local sudo=""
	[[ $(id -u) -eq 0 ]] || sudo=sudo
	$sudo apt-get install -y etcd-server etcd-client >&2 || {
		$sudo apt-get update >&2 && $sudo apt-get install -y etcd-server etcd-client >&2
	}
	# Debian's package starts a system etcd on 2379; the benchmark uses its
	# own ports, so it is left alone.
}

# build_tool builds etcd's benchmark in a throw-away module: `go install`
# refuses the module because of its replace directives.
build_tool() {
	if [[ -n ${BENCH_TOOL:-} ]]; then
		return
	fi
	BENCH_TOOL=$BENCH_CACHE/benchmark-$BENCH_VERSION
	[[ -x $BENCH_TOOL ]] && return
	log "building etcd tools/benchmark $BENCH_VERSION into $BENCH_TOOL"
	mkdir -p "$BENCH_CACHE"
	local mod
	mod=$(mktemp -d)
	(
		cd "$mod"
		go mod init benchtool >/dev/null 2>&1
		GOFLAGS=-mod=mod go get "go.etcd.io/etcd/v3/tools/benchmark@$BENCH_VERSION" >&2
		GOFLAGS=-mod=mod go build -o "$BENCH_TOOL" go.etcd.io/etcd/v3/tools/benchmark >&2
	)
	rm -rf "$mod"
}

install_etcd
build_tool

# --- processes --------------------------------------------------------------

WORK=${WORK:-$(mktemp -d /tmp/centra-bench.XXXXXX)}
mkdir -p "$WORK"
PIDS=()
ENDPOINTS=()

cleanup() {
	stop_cluster
	if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$WORK"; else log "kept $WORK"; fi
}
trap cleanup EXIT

# free_port prints a loopback port nobody listens on, below Linux's
# ephemeral range (32768-60999 by default): a port there may be taken as the
# local end of an outgoing connection between the check and the bind.
free_port() {
	local p
	while :; do
		p=$((10000 + RANDOM % 22000))
		if ! ss -Hltn "sport = :$p" | grep -q .; then
			echo "$p"
			return
		fi
	done
}

stop_cluster() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	PIDS=()
	ENDPOINTS=()
}

# start_cluster SYSTEM NODES: fresh data dirs, sets PIDS and ENDPOINTS.
start_cluster() {
	local sys=$1 n=$2 i dir
	local -a api peer
	for ((i = 1; i <= n; i++)); do
		api[i]=$(free_port)
		peer[i]=$(free_port)
	done
	local members=""
	for ((i = 1; i <= n; i++)); do
		if [[ $sys == etcd ]]; then
			members+="${members:+,}n$i=http://127.0.0.1:${peer[i]}"
		else
			members+="${members:+,}$i=127.0.0.1:${peer[i]}"
		fi
	done
	for ((i = 1; i <= n; i++)); do
		dir=$WORK/$sys-$i
		rm -rf "$dir"
		mkdir -p "$dir"
		if [[ $sys == etcd ]]; then
			etcd --name "n$i" --data-dir "$dir/data" \
				--listen-client-urls "http://127.0.0.1:${api[i]}" --advertise-client-urls "http://127.0.0.1:${api[i]}" \
				--listen-peer-urls "http://127.0.0.1:${peer[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${peer[i]}" \
				--initial-cluster "$members" --initial-cluster-state new \
				--logger zap --log-level warn >"$dir/log" 2>&1 &
		else
			local pprof=()
			[[ -n $PROFILE ]] && pprof=(--network-enable-pprof)
			"$CENTRA_BIN" serve --node-id "$i" --node-role control_plane \
				--cluster-initial-members "$members" \
				--network-api-addr "127.0.0.1:${api[i]}" --network-raft-addr "127.0.0.1:${peer[i]}" \
				--network-gossip-addr 127.0.0.1:0 --storage-data-dir "$dir/data" \
				--log-level warn "${pprof[@]}" >"$dir/log" 2>&1 &
		fi
		PIDS[i]=$!
		ENDPOINTS[i]=127.0.0.1:${api[i]}
	done
	local deadline=$((SECONDS + 60))
	for ((i = 1; i <= n; i++)); do
		until etcdctl --endpoints="${ENDPOINTS[i]}" --command-timeout=2s put bench-key bench-value >/dev/null 2>&1; do
			if ! kill -0 "${PIDS[i]}" 2>/dev/null || ((SECONDS >= deadline)); then
				log "$sys node $i exited or is not serving writes after 60s; its log ends with:"
				tail -5 "$WORK/$sys-$i/log" >&2
				stop_cluster
				return 1
			fi
			sleep 0.2
		done
	done
}

# start_cluster_retry: a port picked as free may be taken by another
# process meanwhile; try again on new ports.
start_cluster_retry() {
	start_cluster "$@" || start_cluster "$@" || die "$1 did not start twice; see the log lines above"
}

# leader_index prints the index (1..n) of the leader in ENDPOINTS.
leader_index() {
	local i status
	for ((i = 1; i <= ${#ENDPOINTS[@]}; i++)); do
		status=$(etcdctl --endpoints="${ENDPOINTS[i]}" endpoint status -w json 2>/dev/null) || continue
		# [{"Endpoint":...,"Status":{"header":{...,"member_id":M,...},...,"leader":L,...}}]
		local member leader
		member=$(grep -o '"member_id":[0-9]*' <<<"$status" | head -1 | cut -d: -f2)
		leader=$(grep -o '"leader":[0-9]*' <<<"$status" | head -1 | cut -d: -f2)
		if [[ -n $member && $member == "$leader" ]]; then
			echo "$i"
			return
		fi
	done
	die "no leader found among ${ENDPOINTS[*]}"
}

# cpu_ticks PID: utime+stime in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mib() { awk '/^VmRSS/ {printf "%d", $2 / 1024}' "/proc/$1/status"; }
CLK_TCK=$(getconf CLK_TCK)

# --- one run ----------------------------------------------------------------

# children_seconds: sets CHILD_S to the CPU seconds (user+sys) of this
# shell's waited-for children, from the times builtin. Call it directly,
# not in $(...): a subshell's children are its own.
children_seconds() {
	times >"$WORK/times"
	CHILD_S=$(awk 'NR == 2 {
		s = 0
		for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] }
		printf "%.3f", s
	}' "$WORK/times")
}

# run_case SYSTEM CASE REP: prints "reqs p50ms p99ms cpu_us rss_mib
# client_cpu_us": leader CPU and the load generator's CPU per request.
run_case() {
	local sys=$1 spec=$2 rep=$3
	local name nodes total args target
	IFS='|' read -r name nodes total args <<<"$spec"
	total=$(awk -v t="$total" -v s="$SCALE" 'BEGIN {printf "%d", t * s}')
	target=${args%% *}
	args=${args#* }
	start_cluster_retry "$sys" "$nodes"
	local li eps
	li=$(leader_index)
	if [[ $target == @all ]]; then
		eps=$(
			IFS=,
			echo "${ENDPOINTS[*]}"
		)
	else
		eps=${ENDPOINTS[li]}
	fi
	local extra=""
	[[ $args == put* ]] && extra=$PUT_ARGS
	local lpid=${PIDS[li]} prof_pid=""
	if [[ -n $PROFILE && $sys == centra ]]; then
		mkdir -p "$PROFILE"
		curl -s -o "$PROFILE/$name-$rep.pprof" "http://${ENDPOINTS[li]}/debug/pprof/profile?seconds=10" &
		prof_pid=$!
	fi
	local t0 t1 out c0
	children_seconds
	c0=$CHILD_S
	t0=$(cpu_ticks "$lpid")
	# shellcheck disable=SC2086 # args are word lists
	out=$("$BENCH_TOOL" --endpoints="$eps" --total="$total" $args $extra 2>&1) || {
		log "$sys $name failed: $out"
		stop_cluster
		echo "0 0 0 0 0 0"
		return
	}
	t1=$(cpu_ticks "$lpid")
	children_seconds
	local rss
	rss=$(rss_mib "$lpid")
	[[ -n $prof_pid ]] && wait "$prof_pid"
	stop_cluster
	local reqs p50 p99
	reqs=$(awk '/Requests\/sec:/ {print $2}' <<<"$out")
	p50=$(awk '/ 50% in / {printf "%.2f", $3 * 1000}' <<<"$out")
	p99=$(awk '/ 99% in / {printf "%.2f", $3 * 1000}' <<<"$out")
	local cpu
	cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$total" 'BEGIN {printf "%d", d * 1e6 / hz / n}')
	local client
	client=$(awk -v a="$c0" -v b="$CHILD_S" -v n="$total" 'BEGIN {printf "%d", (b - a) * 1e6 / n}')
	echo "${reqs:-0} ${p50:-0} ${p99:-0} $cpu ${rss:-0} $client"
}

median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# --- main -------------------------------------------------------------------

selected=()
for spec in "${CASE_LIST[@]}"; do
	name=${spec%%|*}
	if [[ -z ${CASES:-} || " $CASES " == *" $name "* ]]; then
		selected+=("$spec")
	fi
done
((${#selected[@]} > 0)) || die "CASES=\"$CASES\" matches no case; known: $(printf '%s ' "${CASE_LIST[@]%%|*}")"

RESULTS=$WORK/results
: >"$RESULTS"
for ((rep = 1; rep <= REPS; rep++)); do
	for spec in "${selected[@]}"; do
		name=${spec%%|*}
		for sys in etcd centra; do
			log "rep $rep/$REPS $name $sys"
			r=$(run_case "$sys" "$spec" "$rep")
			log "  $sys $name: req/s p50ms p99ms cpu_us/req rss_mib client_cpu_us/req = $r"
			echo "$name $sys $r" >>"$RESULTS"
		done
	done
done

cpus=$(nproc)
model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
echo "Machine: $cpus CPUs ($model), $(uname -r); etcd $(etcd --version | awk '/etcd Version/ {print $3}'), centra $("$CENTRA_BIN" version 2>/dev/null | head -1 || echo '?'); REPS=$REPS SCALE=$SCALE; medians."
echo
echo "| case | etcd req/s | centra req/s | ratio | p50 ms etcd / centra | p99 ms etcd / centra | leader CPU µs/req etcd / centra | leader RSS MiB etcd / centra | client CPU µs/req etcd / centra |"
echo "|---|---|---|---|---|---|---|---|---|"
for spec in "${selected[@]}"; do
	name=${spec%%|*}
	declare -A m=()
	for sys in etcd centra; do
		for col in 3 4 5 6 7 8; do
			m[$sys$col]=$(awk -v n="$name" -v s="$sys" -v c="$col" '$1 == n && $2 == s {print $c}' "$RESULTS" | median)
		done
	done
	ratio=$(awk -v a="${m[etcd3]}" -v b="${m[centra3]}" 'BEGIN {if (a > 0) printf "%.2f", b / a; else print "-"}')
	printf '| %s | %.0f | %.0f | %s | %s / %s | %s / %s | %s / %s | %s / %s | %s / %s |\n' "$name" \
		"${m[etcd3]}" "${m[centra3]}" "$ratio" "${m[etcd4]}" "${m[centra4]}" "${m[etcd5]}" "${m[centra5]}" \
		"${m[etcd6]}" "${m[centra6]}" "${m[etcd7]}" "${m[centra7]}" "${m[etcd8]}" "${m[centra8]}"
	unset m
done
