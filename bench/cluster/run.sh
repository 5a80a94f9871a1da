#!/usr/bin/env bash
# bench/cluster/run.sh: hello-world HTTP with 2 workers, `muster cluster` (rr, shared,
# reuseport) against Node's own cluster primary (SCHED_RR, SCHED_NONE), all in one run on this
# machine, wrk on 127.0.0.1. See bench/README.md ("Cluster") for what every figure means.
#
#   bench/cluster/run.sh            3 interleaved rounds, 5 s per wrk run, 5 kills per system
#   bench/cluster/run.sh --quick    smoke run: 1 round, 1 s per wrk run, 1 kill
#
# Options: --rounds N, --duration S, --kills N (0: no kill test), --served N (kill -9 under
# load -> served again, per slot: -i 1 rr, muster without and with a warm spare and Node's
# primary; 0 skips it), --parts throughput,kills,served (which parts run; default all),
# --modes keepalive,close (which wrk modes the throughput part runs; default both),
# --cases A,B,... (a subset of muster-rr node-rr muster-shared node-none muster-reuseport
# floor-rr rust-rr rust-shared rust-reuseport; floor-rr is the hand-off's floor:
# crates/muster-cluster/examples/rr_floor.rs, a primary that only accepts, sendmsg's the handle
# and reads the reply, with the same workers), --no-build, --no-rust, --keep (keep the logs).
# Environment: BENCH_PORT (first port used, default 19100); MUSTER, HTTP_WORKER, RR_FLOOR: prebuilt
# binaries to use instead of building this tree (e.g. when it is mid-edit and does not build).
#
# Everything listens on 127.0.0.1; every wait is bounded; every process started here is
# stopped on exit, failure or Ctrl-C (trap).
set -euo pipefail

CMDLINE="bench/cluster/run.sh${*:+ $*}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

ROUNDS=3 DUR=5 WARM=1 KILLS=5 SERVED=7 CONNS=32 THREADS=2 WORKERS=2
BUILD=1 RUST=1 KEEP=0 QUICK=0 ONLY= PARTS=throughput,kills,served MODES=keepalive,close
PORT_NEXT=${BENCH_PORT:-19100}

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ROUNDS=1 DUR=1 WARM=0 KILLS=1 SERVED=1 ;;
    --served) SERVED=$2; shift ;;
    --parts) PARTS=$2; shift ;;
    --modes) MODES=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DUR=$2; shift ;;
    --kills) KILLS=$2; shift ;;
    --cases) ONLY=$2; shift ;;
    --no-build) BUILD=0 ;;
    --no-rust) RUST=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

part() { [[ ",$PARTS," == *",$1,"* ]]; }
for p in ${PARTS//,/ }; do
  case $p in throughput | kills | served) ;; *) echo "run.sh: --parts: no part $p" >&2; exit 2 ;; esac
done
for m in ${MODES//,/ }; do
  case $m in keepalive | close) ;; *) echo "run.sh: --modes: no mode $m (keepalive, close)" >&2; exit 2 ;; esac
done
mode_on() { [[ ",$MODES," == *",$1,"* ]]; }
part throughput || ROUNDS=0
part kills || KILLS=0
part served || SERVED=0

for tool in wrk node curl setsid timeout; do
  if ! command -v "$tool" >/dev/null; then
    hint=
    [ "$tool" = wrk ] && hint=" (apt-get update && apt-get install -y wrk)"
    echo "run.sh: $tool is missing$hint" >&2
    exit 2
  fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/muster-bench-cluster.XXXXXX")
SERVERS=()   # primary pids, each the leader of its own process group (setsid)
HELPERS=()   # line stampers
WRK_PID=

# ---------------------------------------------------------------------------------------------
# Cleanup: graceful stop (SIGTERM to the primary, bounded), then SIGKILL to its process group.

stop_server() {
  local pid=$1 i
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do # up to 6 s
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  # Whatever is left of the group (the primary if it hung, stray workers).
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  [ -n "$WRK_PID" ] && kill -KILL "$WRK_PID" 2>/dev/null || true
  for pid in "${SERVERS[@]}"; do stop_server "$pid"; done
  for pid in "${HELPERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
    echo "logs: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_server() { # pid: stopped, drop it from SERVERS
  local pid=$1 keep=() p
  for p in "${SERVERS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  SERVERS=("${keep[@]}")
}

# next_port: sets PORT_PICK to the next port nobody answers on (bounded: 100 tries).
next_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    PORT_PICK=$PORT_NEXT
    PORT_NEXT=$((PORT_NEXT + 1))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT_PICK") 2>/dev/null; then return 0; fi
  done
  echo "run.sh: no free port from ${BENCH_PORT:-19100} on" >&2
  return 1
}

# ---------------------------------------------------------------------------------------------
# Build.

# build WHAT CARGO-ARGS...: cargo build in the repository, or a clear error.
build() {
  local what=$1
  shift
  echo "== cargo build $*" >&2
  if ! (cd "$ROOT" && cargo build "$@") >&2; then
    echo "run.sh: building $what failed (another edit in progress?). Build elsewhere and point" >&2
    echo "        MUSTER=/path/to/muster (and HTTP_WORKER=/path/to/http_worker) at it, or --no-build." >&2
    return 1
  fi
}

MUSTER_NOTE="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
[ -n "$(cd "$ROOT" && git status --porcelain -- crates 2>/dev/null)" ] && MUSTER_NOTE+=", crates/ modified"
if [ -n "${MUSTER:-}" ]; then
  MUSTER_NOTE="prebuilt, MUSTER"
else
  MUSTER=$ROOT/target/release/muster
  if [ "$BUILD" = 1 ]; then build muster --release -p muster; else MUSTER_NOTE+=", --no-build"; fi
fi
[ -x "$MUSTER" ] || { echo "run.sh: no muster binary at $MUSTER" >&2; exit 2; }

RR_FLOOR=${RR_FLOOR:-}
if [ -z "$RR_FLOOR" ]; then
  if [ "$BUILD" = 1 ]; then build rr_floor --release -p muster-cluster --example rr_floor; fi
  RR_FLOOR=$ROOT/target/release/examples/rr_floor
fi

RUST_WORKER=
RUST_NOTE=
if [ "$RUST" = 0 ]; then
  RUST_NOTE="Rust fixture worker: skipped (--no-rust)"
elif [ -n "${HTTP_WORKER:-}" ]; then
  RUST_WORKER=$HTTP_WORKER
  [ -x "$RUST_WORKER" ] || { echo "run.sh: HTTP_WORKER=$RUST_WORKER is not executable" >&2; exit 2; }
elif [ ! -f "$ROOT/crates/muster-cluster/examples/http_worker.rs" ]; then
  RUST_NOTE="Rust fixture worker: skipped (crates/muster-cluster/examples/http_worker.rs does not exist)"
else
  if [ "$BUILD" = 1 ]; then
    build http_worker --release -p muster-cluster --example http_worker ||
      RUST_NOTE="Rust fixture worker: skipped (the example does not build)"
  fi
  if [ -z "$RUST_NOTE" ]; then
    if [ -x "$ROOT/target/release/examples/http_worker" ]; then
      RUST_WORKER=$ROOT/target/release/examples/http_worker
    else
      RUST_NOTE="Rust fixture worker: skipped (target/release/examples/http_worker not built)"
    fi
  fi
fi

CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------
# Servers. Each primary's stdout goes through a FIFO to a stamper that prefixes every line with
# the wall clock ($EPOCHREALTIME) when it arrived; kill -9 timings compare against that.

stamp() {
  local line
  while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}

# start_server CASE PORT: sets SPID (the primary) and SLOG (its stamped stdout).
start_server() {
  local case=$1 port=$2 fifo
  SLOG=$WORK/$case.$port.log
  fifo=$WORK/$case.$port.fifo
  mkfifo "$fifo"
  stamp <"$fifo" >"$SLOG" &
  HELPERS+=($!)
  case $case in
    muster-rr | muster-shared | muster-reuseport)
      PORT=$port setsid "$MUSTER" cluster --json -i "$WORKERS" --schedule "${case#muster-}" \
        -- node "$HERE/node/worker.js" >"$fifo" 2>"$SLOG.err" </dev/null &
      ;;
    node-rr | node-none)
      PORT=$port WORKERS=$WORKERS setsid node "$HERE/node/node-primary.js" "${case#node-}" \
        >"$fifo" 2>"$SLOG.err" </dev/null &
      ;;
    # Per slot, for the served-again probe: one worker answering its pid.
    muster-rr-1 | muster-rr-1-spare)
      local spares=0
      [ "$case" = muster-rr-1-spare ] && spares=1
      PORT=$port ANSWER_PID=1 setsid "$MUSTER" cluster --json -i 1 --spares "$spares" \
        --schedule rr -- node "$HERE/node/worker.js" >"$fifo" 2>"$SLOG.err" </dev/null &
      ;;
    node-rr-1)
      PORT=$port ANSWER_PID=1 WORKERS=1 setsid node "$HERE/node/node-primary.js" rr \
        >"$fifo" 2>"$SLOG.err" </dev/null &
      ;;
    floor-rr)
      PORT=$port WORKERS=$WORKERS setsid "$RR_FLOOR" node "$HERE/node/worker.js" \
        >"$fifo" 2>"$SLOG.err" </dev/null &
      ;;
    rust-rr | rust-shared | rust-reuseport)
      setsid "$MUSTER" cluster --json -i "$WORKERS" --schedule "${case#rust-}" --wait-ready \
        --listen "127.0.0.1:$port" -- "$RUST_WORKER" >"$fifo" 2>"$SLOG.err" </dev/null &
      ;;
    *) echo "run.sh: unknown case $case" >&2; exit 2 ;;
  esac
  SPID=$!
  SERVERS+=("$SPID")
}

# Lines in a log that say a worker listens (muster's JSON event, or node-primary.js's line).
count_listening() { grep -cE '"event":"listening"| listening ' "$1" 2>/dev/null || true; }
count_exit() { grep -cE '"event":"exit"| exit ' "$1" 2>/dev/null || true; }
count_ready() { grep -c '"event":"ready"' "$1" 2>/dev/null || true; }
count_spare() { grep -c '"event":"spare"' "$1" 2>/dev/null || true; }

# wait_up CASE PID LOG PORT [WORKERS]: the workers are up and the port answers (bounded: 20 s).
wait_up() {
  local case=$1 pid=$2 log=$3 port=$4 want=${5:-$WORKERS} i n r
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || { echo "run.sh: $case exited at start:" >&2; cat "$log" "$log.err" >&2; return 1; }
    case $case in
      node-* | floor-*) n=$(count_listening "$log") ;;
      muster-*) # Node workers: listening and ready, each
        n=$(count_listening "$log")
        r=$(count_ready "$log")
        [ "${r:-0}" -lt "${n:-0}" ] && n=$r
        ;;
      *) n=$(count_ready "$log") ;; # the Rust worker says `ready` once serving
    esac
    if [ "${n:-0}" -ge "$want" ] &&
      curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "run.sh: $case did not come up within 20 s:" >&2
  cat "$log" "$log.err" >&2
  return 1
}

children() { cat /proc/"$1"/task/*/children 2>/dev/null || true; }

# utime and stime of a process (all its threads), in clock ticks; "0 0" once it is gone.
proc_times() {
  local s
  s=$(cat /proc/"$1"/stat 2>/dev/null) || { echo "0 0"; return; }
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo "${12} ${13}"
}
# utime+stime of processes, in clock ticks.
sum_ticks() {
  local t=0 p u s
  for p in "$@"; do
    read -r u s <<<"$(proc_times "$p")"
    t=$((t + u + s))
  done
  echo "$t"
}
# Context switches (voluntary + involuntary) of every thread of a process: how often it slept
# and woke up.
ctxsw() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^(non)?voluntary_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}

# CPU time (user+sys, ms) of this shell's finished children: wrk's, when read around one run.
# `times` must run in this shell (a $(...) subshell would report its own children).
children_ms() {
  times >"$WORK/times"
  awk 'NR == 2 {
    t = 0
    for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2] }
    printf "%.0f\n", t * 1000
  }' "$WORK/times"
}

# run_wrk PORT MODE OUT [SECONDS]
run_wrk() {
  local port=$1 mode=$2 out=$3 secs=${4:-$DUR}
  local args=(-c "$CONNS" -t "$THREADS" -d "${secs}s")
  [ "$mode" = close ] && args+=(-H 'Connection: close')
  timeout -k 2 $((secs + 20)) wrk "${args[@]}" "http://127.0.0.1:$port/" >"$out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || { echo "run.sh: wrk failed:" >&2; cat "$out" >&2; WRK_PID=; return 1; }
  WRK_PID=
}

# measure ROUND CASE MODE PORT PRIMARY: one wrk run, with CPU of the primary and the workers.
measure() {
  local round=$1 case=$2 mode=$3 port=$4 pid=$5 out workers pu0 ps0 pu1 ps1 c0 c1 w0 w1 k0 k1
  out=$WORK/wrk.$round.$case.$mode
  # shellcheck disable=SC2207
  workers=($(children "$pid"))
  read -r pu0 ps0 <<<"$(proc_times "$pid")"
  c0=$(ctxsw "$pid")
  w0=$(sum_ticks "${workers[@]}")
  children_ms >"$WORK/k0"
  run_wrk "$port" "$mode" "$out"
  children_ms >"$WORK/k1"
  read -r pu1 ps1 <<<"$(proc_times "$pid")"
  c1=$(ctxsw "$pid")
  w1=$(sum_ticks "${workers[@]}")
  # wrk: "N requests in 5.01s", "Requests/sec: X", "Socket errors: connect a, read b, ...".
  awk -v round="$round" -v cas="$case" -v mode="$mode" -v tck="$CLK_TCK" \
    -v pt=$((pu1 + ps1 - pu0 - ps0)) -v pst=$((ps1 - ps0)) -v cs=$((c1 - c0)) \
    -v wt=$((w1 - w0)) -v nw=${#workers[@]} -v kt=$(($(<"$WORK/k1") - $(<"$WORK/k0"))) '
    / requests in / { reqs = $1; secs = $4; sub(/s,?$/, "", secs) }
    /^Requests\/sec:/ { rps = $2 }
    /Socket errors:/ { gsub(/,/, ""); errs = $4 + $6 + $8 + $10 }
    /Non-2xx/ { errs += $NF }
    END {
      printf "%s\t%s\t%s\t%.1f\t%d\t%s\t%d\t%.0f\t%.0f\t%d\t%.0f\t%d\t%d\n", round, cas, mode,
        rps, reqs, secs, errs, pt * 1000 / tck, wt * 1000 / tck, nw, pst * 1000 / tck, cs, kt
    }' "$out" >>"$WORK/results.tsv"
  tail -n 1 "$WORK/results.tsv" | awk -F'\t' '{ printf "   %-16s %-9s %9.0f req/s  primary %5d ms  workers %5d ms  wrk %5d ms  errors %d\n", $2, $3, $4, $8, $9, $13, $7 }' >&2
}

# ---------------------------------------------------------------------------------------------
# Throughput. Every case's server is started first and stays up (idle servers cost nothing),
# then each round runs one wrk slice per case and mode back to back: cases that are compared
# run seconds apart. Odd rounds go forward (keep-alive first), even rounds backward (close
# first), and each round starts one case further on, so that no case always runs at the same
# place: whichever case held the place at the end of an even round and the start of the next
# served keep-alive 15-25% slower from round 2 on, muster rr or Node's rr alike
# (results-2026-12-06.txt with muster-rr listed first, -order-first.txt with node-rr first).

CASES=(muster-rr node-rr muster-shared node-none muster-reuseport)
[ -x "$RR_FLOOR" ] && CASES+=(floor-rr)
[ -n "$RUST_WORKER" ] && CASES+=(rust-rr rust-shared rust-reuseport)
if [ -n "$ONLY" ]; then
  wanted=()
  for case in ${ONLY//,/ }; do
    found=
    for c in "${CASES[@]}"; do [ "$c" = "$case" ] && found=1; done
    [ -n "$found" ] || { echo "run.sh: --cases: no case $case here (${CASES[*]})" >&2; exit 2; }
    wanted+=("$case")
  done
  CASES=("${wanted[@]}")
fi
NCASES=${#CASES[@]}
declare -A TPID TPORT

LOAD_START=$(uptime)
[ "$ROUNDS" -gt 0 ] || CASES=()
[ "$ROUNDS" -gt 0 ] && echo "== throughput: $ROUNDS round(s), wrk -c $CONNS -t $THREADS -d ${DUR}s, $NCASES cases; load: $(uptime)" >&2
for case in "${CASES[@]}"; do
  next_port
  TPORT[$case]=$PORT_PICK
  start_server "$case" "$PORT_PICK"
  TPID[$case]=$SPID
  wait_up "$case" "$SPID" "$SLOG" "$PORT_PICK"
  if [ "$WARM" != 0 ]; then run_wrk "$PORT_PICK" keepalive "$WORK/warm.$case" "$WARM"; fi
done

printf 'round\tcase\tmode\trps\treqs\tsecs\terrors\tprimary_ms\tworkers_ms\tnworkers\tprimary_sys_ms\tprimary_cs\twrk_ms\n' >"$WORK/results.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
  echo "-- round $r/$ROUNDS ($(uptime | sed 's/.*load/load/'))" >&2
  if ((r % 2)); then modes=(keepalive close); else modes=(close keepalive); fi
  for m in "${!modes[@]}"; do mode_on "${modes[$m]}" || unset 'modes[m]'; done
  for mode in "${modes[@]}"; do
    for ((k = 0; k < NCASES; k++)); do
      if ((r % 2)); then i=$k; else i=$((NCASES - 1 - k)); fi
      case=${CASES[$(((i + r - 1) % NCASES))]}
      kill -0 "${TPID[$case]}" 2>/dev/null || { echo "run.sh: $case's primary died" >&2; exit 1; }
      measure "$r" "$case" "$mode" "${TPORT[$case]}" "${TPID[$case]}"
    done
  done
done
for case in "${CASES[@]}"; do
  stop_server "${TPID[$case]}"
  forget_server "${TPID[$case]}"
done

# ---------------------------------------------------------------------------------------------
# kill -9 → replacement listening. Every system runs at once on its own port (idle); each
# iteration kills one worker of each in turn and waits for the replacement's `listening`.

KSYS=()
if [ "$KILLS" -gt 0 ]; then
  for s in muster-rr node-rr muster-shared node-none muster-reuseport; do
    if [ -z "$ONLY" ] || [[ ",$ONLY," == *",$s,"* ]]; then KSYS+=("$s"); fi
  done
fi
declare -A KPID KLOG KPORT
printf 'system\titer\tms\texit_ms\n' >"$WORK/kills.tsv"
[ ${#KSYS[@]} -gt 0 ] && echo "== kill -9 -> replacement listening: $KILLS per system; load: $(uptime)" >&2
for s in "${KSYS[@]}"; do
  next_port
  KPORT[$s]=$PORT_PICK
  start_server "$s" "${KPORT[$s]}"
  KPID[$s]=$SPID
  KLOG[$s]=$SLOG
done
for s in "${KSYS[@]}"; do wait_up "$s" "${KPID[$s]}" "${KLOG[$s]}" "${KPORT[$s]}"; done
[ ${#KSYS[@]} -gt 0 ] && sleep 1.2 # muster restarts at once only after a stable run (min_uptime, 1 s)
for ((it = 1; it <= (${#KSYS[@]} ? KILLS : 0); it++)); do
  for s in "${KSYS[@]}"; do
    log=${KLOG[$s]}
    # shellcheck disable=SC2207
    kids=($(children "${KPID[$s]}"))
    [ ${#kids[@]} -ge 1 ] || { echo "run.sh: $s has no workers" >&2; exit 1; }
    before=$(count_listening "$log")
    before_exit=$(count_exit "$log")
    kill -KILL "${kids[0]}"
    t0=$EPOCHREALTIME
    got=
    for ((i = 0; i < 1000; i++)); do # up to 10 s
      if [ "$(count_listening "$log")" -gt "$before" ]; then got=1; break; fi
      sleep 0.01
    done
    [ -n "$got" ] || { echo "run.sh: $s: no replacement listening within 10 s" >&2; cat "$log" >&2; exit 1; }
    t1=$(grep -E '"event":"listening"| listening ' "$log" | sed -n "$((before + 1))p" | cut -d' ' -f1)
    te=$(grep -E '"event":"exit"| exit ' "$log" | sed -n "$((before_exit + 1))p" | cut -d' ' -f1)
    ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
    exit_ms=$(awk -v a="$t0" -v b="${te:-}" 'BEGIN { if (b == "") print "-"; else printf "%.1f", (b - a) * 1000 }')
    printf '%s\t%d\t%s\t%s\n' "$s" "$it" "$ms" "$exit_ms" >>"$WORK/kills.tsv"
    echo "   $s kill $it: listening after ${ms} ms (exit seen after ${exit_ms} ms)" >&2
  done
  sleep 1.2
done
for s in "${KSYS[@]}"; do
  stop_server "${KPID[$s]}"
  forget_server "${KPID[$s]}"
done

# ---------------------------------------------------------------------------------------------
# kill -9 under load -> served again, per slot (-i 1, rr): muster without spares, muster with
# one warm spare, Node's own primary. Each iteration runs node/served-again.js against each
# system in turn: 4 clients on fresh connections, the worker that answers SIGKILLed after
# 300 ms, timed to the first answer from another pid. Before each kill the system is back to
# full strength: its worker ready (and, with a spare, the spare warm again).

SSYS=()
[ "$SERVED" -gt 0 ] && SSYS=(muster-rr-1 muster-rr-1-spare node-rr-1)
declare -A SPID_ SLOG_ SPORT_
printf 'system\titer\tms\tvictim\tnew_pid\tfailed_inflight\tfailed_after\tok\tkill_at\tback_ms\tseen_ms\n' >"$WORK/served.tsv"
[ ${#SSYS[@]} -gt 0 ] && echo "== kill -9 under load -> served again (-i 1, rr): $SERVED per system; load: $(uptime)" >&2
for s in "${SSYS[@]}"; do
  next_port
  SPORT_[$s]=$PORT_PICK
  start_server "$s" "$PORT_PICK"
  SPID_[$s]=$SPID
  SLOG_[$s]=$SLOG
done
for s in "${SSYS[@]}"; do wait_up "$s" "${SPID_[$s]}" "${SLOG_[$s]}" "${SPORT_[$s]}" 1; done

# back_to_strength SYSTEM ITER: the iteration's worker is up (bounded: 10 s).
back_to_strength() {
  local s=$1 it=$2 log=${SLOG_[$1]} i
  for ((i = 0; i < 1000; i++)); do
    case $s in
      muster-rr-1) [ "$(count_ready "$log")" -ge "$it" ] && return 0 ;;
      muster-rr-1-spare) [ "$(count_ready "$log")" -ge "$it" ] && [ "$(count_spare "$log")" -ge "$it" ] && return 0 ;;
      node-rr-1) [ "$(count_listening "$log")" -ge "$it" ] && return 0 ;;
    esac
    sleep 0.01
  done
  echo "run.sh: $s did not get back to strength within 10 s" >&2
  cat "$log" >&2
  return 1
}

[ ${#SSYS[@]} -gt 0 ] && sleep 1.2 # past min_uptime: a stable run restarts (and refills) at once
for ((it = 1; it <= (${#SSYS[@]} ? SERVED : 0); it++)); do
  # Odd iterations forward, even ones backward: no system always goes first.
  if ((it % 2)); then order=("${SSYS[@]}"); else order=(node-rr-1 muster-rr-1-spare muster-rr-1); fi
  for s in "${order[@]}"; do
    back_to_strength "$s" "$it"
    # The primary's line that puts a worker back in service: muster's promote (spare) or ready
    # (replacement), Node's listening.
    case $s in
      muster-rr-1-spare) back_re='"event":"promote"' ;;
      muster-rr-1) back_re='"event":"ready"' ;;
      node-rr-1) back_re=' listening ' ;;
    esac
    nback=$(grep -c "$back_re" "${SLOG_[$s]}" || true)
    # The primary's line saying the worker died: muster's disconnect (its channel closed, the
    # earliest a parent can know: the kernel closes a killed process's descriptors after
    # tearing down its memory), Node's exit (its cluster primary emits no disconnect for a
    # killed worker).
    case $s in
      node-rr-1) seen_re=' exit ' ;;
      *) seen_re='"event":"disconnect"' ;;
    esac
    nseen=$(grep -cE "$seen_re" "${SLOG_[$s]}" || true)
    line=$(timeout -k 2 30 node "$HERE/node/served-again.js" "${SPORT_[$s]}" 4 300) ||
      { echo "run.sh: $s: not served again within 10 s ($line)" >&2; cat "${SLOG_[$s]}" >&2; exit 1; }
    kill_at=$(cut -f7 <<<"$line")
    back_ms=-
    for ((i = 0; i < 1000; i++)); do # up to 10 s for the line to arrive
      t_back=$(grep "$back_re" "${SLOG_[$s]}" | sed -n "$((nback + 1))p" | cut -d' ' -f1)
      if [ -n "$t_back" ]; then
        back_ms=$(awk -v a="$kill_at" -v b="$t_back" 'BEGIN { printf "%.2f", (b - a) * 1000 }')
        break
      fi
      sleep 0.01
    done
    seen_ms=-
    for ((i = 0; i < 1000; i++)); do # up to 10 s for the line to arrive
      t_seen=$({ grep -E "$seen_re" "${SLOG_[$s]}" || true; } | sed -n "$((nseen + 1))p" | cut -d' ' -f1)
      if [ -n "$t_seen" ]; then
        seen_ms=$(awk -v a="$kill_at" -v b="$t_seen" 'BEGIN { printf "%.2f", (b - a) * 1000 }')
        break
      fi
      sleep 0.01
    done
    printf '%s\t%d\t%s\t%s\t%s\n' "$s" "$it" "$line" "$back_ms" "$seen_ms" >>"$WORK/served.tsv"
    echo "   $s kill $it: served again after $(cut -f1 <<<"$line") ms, death seen (channel closed) after $seen_ms ms, back in service (primary) after $back_ms ms" >&2
  done
  sleep 1.2
done
for s in "${SSYS[@]}"; do
  stop_server "${SPID_[$s]}"
  forget_server "${SPID_[$s]}"
done

# ---------------------------------------------------------------------------------------------
# Report.

echo
echo "# muster cluster vs Node cluster: hello-world HTTP, $WORKERS workers, 127.0.0.1"
echo "command: $CMDLINE (rounds $ROUNDS, wrk -c $CONNS -t $THREADS -d ${DUR}s, kills $KILLS, served $SERVED)"
echo "muster: $MUSTER ($MUSTER_NOTE)"
[ -x "$RR_FLOOR" ] && echo "rr floor: $RR_FLOOR"
[ -n "$RUST_WORKER" ] && echo "http_worker: $RUST_WORKER"
echo "node $(node --version), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2), $(nproc) CPUs, CLK_TCK $CLK_TCK"
echo "load at the start: $LOAD_START"
echo "load at the end: $(uptime)"
[ -n "$RUST_NOTE" ] && echo "$RUST_NOTE"
echo
node "$HERE/report.js" "$WORK/results.tsv" "$WORK/kills.tsv" "$CONNS" "$WORK/served.tsv"
