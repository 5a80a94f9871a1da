#!/usr/bin/env bash
# bench/daemon/run.sh: muster against pm2 (and OxMgr) as process managers, side by side in one
# run on this machine: memory of the tools' own processes, `list` latency, start until the port
# answers, kill -9 until a replacement answers, failed requests during reloads under wrk, a log
# burst; and, with OxMgr as a third tool, `list` at 1, 10 and 100 apps and the CPU of each
# tool's processes over a minute with 100 idle apps. muster and pm2 cases alternate (ABBA) so
# drift hits both alike. See bench/README.md ("Daemon: muster against pm2") for every figure.
#
#   bench/daemon/run.sh            full run, 6-8 minutes (100 idle apps per tool at the top)
#   bench/daemon/run.sh --quick    smoke run, about 2.5 minutes: 10 apps, fewer repetitions, 4 s wrk runs, 20k lines
#   bench/daemon/run.sh --only list,idle    the three-tool phases alone, about 3 minutes
#
# Options: --apps N (top of the memory, list and idle ladders; default 100), --only PHASE,...
# (memory, start, stop, kill, reload, burst, list, idle; default all), --idle-secs S (the idle
# window; default 60), --no-build, --keep (keep the work directory: logs, raw results), --json
# (the raw results as JSON on stdout after the table).
# Environment: MUSTER (a prebuilt muster to use instead of building this tree, e.g. when it is
# mid-edit), PM2_DIR (where pm2 is installed with npm if missing; default /tmp/pm2-bench),
# OXMGR (a prebuilt oxmgr), OXMGR_DIR (where OxMgr is built if missing: from its source in
# OXMGR_DIR/src when there, else `cargo install oxmgr --root OXMGR_DIR`; default /tmp/oxmgr-bench),
# BENCH_PORT (first port tried; default 19700).
#
# pm2 runs from its own npm folder and OxMgr from its own scratch folder, each as a black box
# (its CLI only), with its home (PM2_HOME, OXMGR_HOME) in the work directory; nothing of either
# is copied here. Everything listens on 127.0.0.1; every wait is bounded; every tool's daemon
# and apps are stopped on exit, failure or Ctrl-C (trap).
set -euo pipefail

CMDLINE="bench/daemon/run.sh${*:+ $*}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
APPS_DIR=$HERE/apps
PROBE=$HERE/lib/probe.js

APPS=100 LIST_RUNS=20 START_REPS=5 STOP_REPS=3 KILL_REPS=5 RELOAD_ROUNDS=2 RELOAD_SECS=10
BURST_LINES=200000 BURST_TIMEOUT=120 SETTLE=3
BUILD=1 KEEP=0 JSON=0 ONLY=memory,start,stop,kill,reload,burst,list,idle IDLE_SECS=60
PM2_DIR=${PM2_DIR:-/tmp/pm2-bench}
OXMGR_DIR=${OXMGR_DIR:-/tmp/oxmgr-bench}
OXMGR_PREBUILT=${OXMGR:-}
MUSTER_PREBUILT=${MUSTER:-}
PORT_NEXT=${BENCH_PORT:-19700}

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --quick)
      APPS=10 LIST_RUNS=5 START_REPS=2 STOP_REPS=1 KILL_REPS=2 RELOAD_ROUNDS=1 RELOAD_SECS=4
      BURST_LINES=20000 BURST_TIMEOUT=30 SETTLE=1
      ;;
    --apps) APPS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --idle-secs) IDLE_SECS=$2; shift ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    --json) JSON=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[ "$APPS" -ge 2 ] || { echo "run.sh: --apps must be at least 2" >&2; exit 2; }
[ "$IDLE_SECS" -ge 10 ] || { echo "run.sh: --idle-secs must be at least 10" >&2; exit 2; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }

for tool in node npm wrk timeout; do
  command -v "$tool" >/dev/null || {
    echo "run.sh: $tool is missing (wrk, hyperfine: apt-get update && apt-get install -y wrk hyperfine)" >&2
    exit 2
  }
done
HYPERFINE=$(command -v hyperfine || true)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/muster-bench-daemon.XXXXXX")
MH=$WORK/muster-home  # MUSTER_HOME
PH=$WORK/pm2-home     # PM2_HOME
OH=$WORK/oxmgr-home   # OXMGR_HOME
RESULTS=$WORK/results.tsv
LOG=$WORK/run.log
mkdir -p "$MH" "$PH" "$WORK/bin"
: >"$RESULTS"
MUSTER=
PM2=
OXMGR=
OX_ADDR= OX_API=
WRK_PID=

T_START=$EPOCHREALTIME
say() { printf '[%6.1fs] %s\n' "$(awk -v a="$EPOCHREALTIME" -v b="$T_START" 'BEGIN { print a - b }')" "$*" >&2; }
record() { printf '%s\t%s\n' "$1" "$2" >>"$RESULTS"; }

# ---------------------------------------------------------------------------------------------
# Cleanup: each tool's own `kill` (bounded), then SIGKILL, by pid, to anything still carrying
# this run's MUSTER_HOME or PM2_HOME in its environment (a hung daemon, an orphaned worker).

sweep() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$$" ] && continue
    if grep -qasF -e "MUSTER_HOME=$MH" -e "PM2_HOME=$PH" -e "OXMGR_HOME=$OH" "$d/environ" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [ -n "$WRK_PID" ] && kill -KILL "$WRK_PID" 2>/dev/null
  if [ -n "$MUSTER" ] && [ -e "$MH/daemon.sock" ]; then
    MUSTER_HOME=$MH timeout 60 "$MUSTER" kill >>"$LOG" 2>&1
  fi
  if [ -n "$PM2" ] && [ -e "$PH/pm2.pid" ]; then
    PM2_HOME=$PH timeout 60 "$PM2" kill >>"$LOG" 2>&1
  fi
  if [ -n "$OXMGR" ] && [ -n "$OX_ADDR" ]; then
    ox daemon stop >>"$LOG" 2>&1
  fi
  sweep
  sleep 0.2
  sweep
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
    say "work directory (logs, raw results): $WORK"
    [ "$rc" != 0 ] && [ -s "$LOG" ] && { say "--- last lines of $LOG:"; tail -n 20 "$LOG" >&2; }
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The tools, each with its own home, every call bounded.
m() { MUSTER_HOME=$MH timeout "${TMO:-120}" "$MUSTER" "$@"; }
p2() { PM2_HOME=$PH timeout "${TMO:-120}" "$PM2" "$@"; }
ox() {
  OXMGR_HOME=$OH OXMGR_DAEMON_ADDR=$OX_ADDR OXMGR_API_ADDR=$OX_API timeout "${TMO:-120}" "$OXMGR" "$@"
}
probe() { MUSTER_HOME=$MH PM2_HOME=$PH timeout 300 node "$PROBE" "$@"; }
# tool TOOL ARGS...: the same call to either tool, output to the log.
tool() {
  local t=$1
  shift
  printf '\n[%s] %s %s\n' "$(date +%T.%N | cut -c1-12)" "$t" "$*" >>"$LOG"
  if [ "$t" = muster ]; then m "$@" >>"$LOG" 2>&1; else p2 "$@" >>"$LOG" 2>&1; fi
}
# ABBA: which tool goes first in repetition N.
order() { if [ $(($1 % 2)) = 0 ]; then echo "muster pm2"; else echo "pm2 muster"; fi; }

# ms_since T0: milliseconds since T0 (an $EPOCHREALTIME).
ms_since() { awk -v a="$EPOCHREALTIME" -v b="$1" 'BEGIN { printf "%.1f", (a - b) * 1000 }'; }

next_port() {
  PORT_PICK=$(node "$PROBE" free-port "$PORT_NEXT")
  PORT_NEXT=$((PORT_PICK + 1))
}

# ---------------------------------------------------------------------------------------------
# muster (built from this tree, then copied: a rebuild by someone else mid-run cannot swap the
# binary under the daemon) and pm2 (npm, in its own folder).

MUSTER_NOTE="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
[ -n "$(cd "$ROOT" && git status --porcelain -- crates 2>/dev/null)" ] && MUSTER_NOTE+=" + uncommitted crates/ changes"
if [ -n "$MUSTER_PREBUILT" ]; then
  SRC=$MUSTER_PREBUILT
  MUSTER_NOTE="prebuilt: $SRC"
else
  # As ./install.sh builds it: statically linked, non-PIE (scripts/build-static.sh).
  SRC=${CARGO_TARGET_DIR:-$ROOT/target}/static/muster
  if [ "$BUILD" = 1 ]; then
    say "== scripts/build-static.sh"
    if ! "$ROOT/scripts/build-static.sh" >&2; then
      say "run.sh: building muster failed (another edit in progress?). Point MUSTER=/path/to/muster"
      say "        at a build, or use --no-build for target/static/muster as it is."
      exit 1
    fi
  else
    MUSTER_NOTE+=", --no-build"
  fi
fi
[ -x "$SRC" ] || { say "run.sh: no muster binary at $SRC"; exit 2; }
cp "$SRC" "$WORK/bin/muster"
# The CLI starts the daemon, and the daemon each app's supervisor, from beside itself.
for b in muster-daemon muster-supervisor; do
  [ -x "$(dirname "$SRC")/$b" ] && cp "$(dirname "$SRC")/$b" "$WORK/bin/"
done
MUSTER=$WORK/bin/muster

if [ ! -x "$PM2_DIR/node_modules/.bin/pm2" ]; then
  say "== npm install pm2@latest --prefix $PM2_DIR"
  mkdir -p "$PM2_DIR"
  timeout 600 npm install pm2@latest --prefix "$PM2_DIR" --no-audit --no-fund --loglevel=error >&2
fi
PM2=$PM2_DIR/node_modules/.bin/pm2
[ -x "$PM2" ] || { say "run.sh: no pm2 at $PM2"; exit 2; }
PM2_VERSION=$(node -p "require('$PM2_DIR/node_modules/pm2/package.json').version")

# OxMgr (MIT), only for the list and idle phases: built from its public source in its own
# scratch folder (never copied into this repository), then copied into the work directory.
if want list || want idle; then
  if [ -n "$OXMGR_PREBUILT" ]; then
    OX_SRC=$OXMGR_PREBUILT
  elif [ -f "$OXMGR_DIR/src/Cargo.toml" ]; then
    OX_SRC=$OXMGR_DIR/target/release/oxmgr
    if [ ! -x "$OX_SRC" ]; then
      say "== cargo build --release --locked (OxMgr, in $OXMGR_DIR/src)"
      (cd "$OXMGR_DIR/src" && CARGO_TARGET_DIR=$OXMGR_DIR/target timeout 1800 cargo build --release --locked) >&2
    fi
  else
    OX_SRC=$OXMGR_DIR/bin/oxmgr
    if [ ! -x "$OX_SRC" ]; then
      say "== cargo install --locked oxmgr --root $OXMGR_DIR"
      timeout 1800 cargo install --locked oxmgr --root "$OXMGR_DIR" >&2
    fi
  fi
  [ -x "$OX_SRC" ] || { say "run.sh: no oxmgr at $OX_SRC"; exit 2; }
  cp "$OX_SRC" "$WORK/bin/oxmgr"
  OXMGR=$WORK/bin/oxmgr
  next_port
  OX_ADDR=127.0.0.1:$PORT_PICK
  next_port
  OX_API=127.0.0.1:$PORT_PICK
  record meta.oxmgr "$("$OXMGR" --version 2>/dev/null | head -n 1) ($OX_SRC)"
fi

CLK_TCK=$(getconf CLK_TCK)
record meta.cmdline "$CMDLINE"
record meta.muster "$MUSTER_NOTE"
record meta.pm2 "pm2 $PM2_VERSION ($PM2_DIR)"
record meta.node "$(node --version)"
if [ -n "$HYPERFINE" ]; then
  record meta.timer "$("$HYPERFINE" --version) -N"
else
  record meta.timer "lib/probe.js time-cmd (hyperfine is not installed)"
fi
record meta.uptime_before "$(uptime)"
record meta.apps "$APPS"
record meta.burst_lines "$BURST_LINES"
say "== $(uptime)"
say "== work directory: $WORK (MUSTER_HOME=$MH, PM2_HOME=$PH)"

# ---------------------------------------------------------------------------------------------
# Measuring the tools' own processes.

# Process ids of a tool's own processes: muster's daemon and supervisors, pm2's God daemon.
own_pids() {
  if [ "$1" = muster ]; then
    m ping --json | node "$PROBE" muster-daemon-pid
    m list --json | node "$PROBE" muster-pids
  else
    cat "$PH/pm2.pid"
  fi
}

# mem_of PIDS...: "RSS PSS PSS_ANON" in kB, summed from /proc/<pid>/smaps_rollup.
mem_of() {
  local rss=0 pss=0 anon=0 p k v
  for p in "$@"; do
    [ -r "/proc/$p/smaps_rollup" ] || { say "run.sh: process $p is gone"; return 1; }
    while read -r k v _; do
      case $k in
        Rss:) rss=$((rss + v)) ;;
        Pss:) pss=$((pss + v)) ;;
        Pss_Anon:) anon=$((anon + v)) ;;
      esac
    done <"/proc/$p/smaps_rollup"
  done
  echo "$rss $pss $anon"
}

# cpu_ms PIDS...: utime+stime of the processes (all their threads), in ms.
cpu_ms() {
  local t=0 p s
  for p in "$@"; do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    t=$((t + ${12} + ${13}))
  done
  echo $((t * 1000 / CLK_TCK))
}

# measure_mem TOOL N: records the tool's RSS, PSS and anonymous PSS with N apps running, and the
# PSS of the N apps' own processes.
measure_mem() {
  local t=$1 n=$2 pids count apids apss=
  pids=$(own_pids "$t" | tr '\n' ' ')
  count=$(wc -w <<<"$pids")
  if [ "$t" = muster ]; then
    apids=$(m list --json | node "$PROBE" worker-pids muster)
  else
    apids=$(p2 jlist | node "$PROBE" worker-pids pm2)
  fi
  sleep 0.5 # the list that named the pids is done
  read -r rss pss anon < <(mem_of $pids)
  record "mem.$t.$n.rss" "$rss"
  record "mem.$t.$n.pss" "$pss"
  record "mem.$t.$n.anon" "$anon"
  record "mem.$t.$n.procs" "$count"
  if [ "$n" -gt 0 ]; then
    read -r _ apss _ < <(mem_of $apids)
    record "mem.$t.$n.apps_pss" "$apss"
  fi
  say "   $t, $n apps: $count processes, RSS $rss kB, PSS $pss kB (anon $anon kB); apps' own PSS ${apss:-0} kB"
}

# time_cmd KEY ARGV...: median wall time of the command (ms), LIST_RUNS runs after 2 warm-ups.
time_cmd() {
  local key=$1 ms
  shift
  if [ -n "$HYPERFINE" ]; then
    MUSTER_HOME=$MH PM2_HOME=$PH timeout 600 "$HYPERFINE" -N --style none --runs "$LIST_RUNS" \
      --warmup 2 --export-json "$WORK/hf.json" -- "$*" >>"$LOG" 2>&1
    read -r ms min < <(node -p "const r = require('$WORK/hf.json').results[0];
      (r.median * 1000).toFixed(3) + ' ' + (r.min * 1000).toFixed(3)")
  else
    read -r ms min < <(probe time-cmd "$LIST_RUNS" 2 -- "$@" |
      node -p "const r = JSON.parse(require('fs').readFileSync(0)); r.median_ms.toFixed(3) + ' ' + r.min_ms.toFixed(3)")
  fi
  record "$key" "$ms"
  record "$key.min" "$min"
  say "   $key: median $ms ms, min $min ms"
}

# wait_online TOOL N: until N apps (muster) / processes (pm2) are online; 180 s at most.
wait_online() {
  local t=$1 want=$2 i n
  for ((i = 0; i < 360; i++)); do
    if [ "$t" = muster ]; then
      n=$(m list --json | node "$PROBE" count-online muster)
    else
      n=$(p2 jlist | node "$PROBE" count-online pm2)
    fi
    [ "$n" -ge "$want" ] && return 0
    sleep 0.5
  done
  say "run.sh: $t has $n of $want apps online after 180 s"
  return 1
}

# ecosystem FILE FROM TO: a pm2-style JSON ecosystem file (both tools read it) with the idle
# apps idle-FROM..idle-TO, fork mode, default settings.
ecosystem() {
  node -e '
    const [file, from, to, script] = process.argv.slice(1);
    const apps = [];
    for (let i = Number(from); i <= Number(to); i++)
      apps.push({ name: "idle-" + String(i).padStart(3, "0"), script });
    require("fs").writeFileSync(file, JSON.stringify({ apps }, null, 1));
  ' "$1" "$2" "$3" "$APPS_DIR/idle.js"
}

# ---------------------------------------------------------------------------------------------
# 1 + 2. Memory ladder (idle, 1, 10, APPS idle apps) with list latency at 1 and APPS.

if want memory; then
  say "== memory and list latency"
  m list >>"$LOG" 2>&1 # starts muster's daemon
  p2 ping >>"$LOG" 2>&1 # starts pm2's God daemon
  sleep "$SETTLE"
  for t in $(order 0); do measure_mem "$t" 0; done

  prev=0
  step=0
  for n in 1 10 "$APPS"; do
    [ "$n" -gt "$prev" ] || continue
    step=$((step + 1))
    ecosystem "$WORK/eco-$n.json" $((prev + 1)) "$n"
    for t in $(order "$step"); do
      t0=$EPOCHREALTIME
      TMO=600 tool "$t" start "$WORK/eco-$n.json"
      wait_online "$t" "$n"
      record "startmany.$t.$n" "$(ms_since "$t0")"
    done
    sleep "$SETTLE"
    for t in $(order "$step"); do measure_mem "$t" "$n"; done
    if [ "$n" = 1 ] || [ "$n" = "$APPS" ]; then
      for t in $(order "$step"); do
        if [ "$t" = muster ]; then
          time_cmd "list.muster.list.$n" "$MUSTER" list
          time_cmd "list.muster.json.$n" "$MUSTER" list --json
        else
          time_cmd "list.pm2.jlist.$n" "$PM2" jlist
          time_cmd "list.pm2.ls.$n" "$PM2" ls
        fi
      done
    fi
    prev=$n
  done
  say "== deleting the idle apps"
  for t in $(order "$step"); do
    t0=$EPOCHREALTIME
    TMO=900 tool "$t" delete all
    record "deletemany.$t" "$(ms_since "$t0")"
  done
fi

# ---------------------------------------------------------------------------------------------
# 3. start -i 2 until the port answers.

if want start; then
  say "== start -i 2 until the port answers 200"
  for ((r = 0; r < START_REPS; r++)); do
    for t in $(order "$r"); do
      next_port
      if [ "$t" = muster ]; then
        cmd=("$MUSTER" start "$APPS_DIR/hello.js" -i 2 --name hello-start -- "$PORT_PICK")
      else
        cmd=("$PM2" start "$APPS_DIR/hello.js" -i 2 --name hello-start -- "$PORT_PICK")
      fi
      out=$(probe start-until-200 "$PORT_PICK" 30000 "$LOG" -- "${cmd[@]}")
      record "start.$t.to200" "$(node -p "($out).to200_ms.toFixed(1)")"
      record "start.$t.cli" "$(node -p "($out).cli_ms.toFixed(1)")"
      say "   $t: $out"
      tool "$t" delete hello-start
    done
  done
fi

# ---------------------------------------------------------------------------------------------
# 3b. stop: one idle fork-mode app (default settings), until the CLI returns.

if want stop; then
  say "== stop one idle app (fork mode, default kill_timeout)"
  for ((r = 0; r < STOP_REPS; r++)); do
    for t in $(order "$r"); do
      tool "$t" start "$APPS_DIR/idle.js" --name idle-stop
      wait_online "$t" 1
      sleep 1.2 # past min_uptime
      t0=$EPOCHREALTIME
      tool "$t" stop idle-stop
      record "stop.$t" "$(ms_since "$t0")"
      tool "$t" delete idle-stop
    done
  done
  say "   muster: $(grep -P '^stop.muster\t' "$RESULTS" | cut -f2 | tr '\n' ' ')ms; pm2: $(grep -P '^stop.pm2\t' "$RESULTS" | cut -f2 | tr '\n' ' ')ms"
fi

# ---------------------------------------------------------------------------------------------
# 4. kill -9 the worker of a 1-instance app until a new pid answers: fork mode, and cluster
# mode with one worker (-i 1).

if want kill; then
  say "== kill -9 until a replacement answers"
  declare -A KPORT
  for t in muster pm2; do
    for mode in fork cluster; do
      next_port
      KPORT[$t.$mode]=$PORT_PICK
      if [ "$mode" = fork ]; then
        tool "$t" start "$APPS_DIR/hello.js" --name "hello-$mode" -- "$PORT_PICK"
      else
        tool "$t" start "$APPS_DIR/hello.js" -i 1 --name "hello-$mode" -- "$PORT_PICK"
      fi
      probe wait-200 "$PORT_PICK" 30000 >/dev/null
    done
  done
  sleep 1.5 # past both tools' min_uptime: the first kill is not an unstable start
  for ((r = 0; r < KILL_REPS; r++)); do
    for mode in fork cluster; do
      for t in $(order "$r"); do
        out=$(probe kill-until-new "${KPORT[$t.$mode]}" 30000)
        record "kill.$t.$mode" "$(node -p "($out).ms.toFixed(1)")"
        say "   $t $mode: $out"
      done
    done
    sleep 1.5 # the replacements live past min_uptime (1 s in both) before the next kill
  done
  for t in muster pm2; do
    for mode in fork cluster; do tool "$t" delete "hello-$mode"; done
  done
fi

# ---------------------------------------------------------------------------------------------
# 5. Two reloads of a 2-worker app while wrk runs.

# worker_pids TOOL NAME
worker_pids() {
  if [ "$1" = muster ]; then m list --json | node "$PROBE" muster-app "$2" pids; else p2 jlist | node "$PROBE" pm2-app "$2" pids; fi
}

if want reload; then
  say "== reload x2 under wrk (${RELOAD_SECS} s, 1 thread, 16 connections; keep-alive, then Connection: close)"
  for ((r = 0; r < RELOAD_ROUNDS; r++)); do
    for conn in keepalive close; do
      for t in $(order "$r"); do
        next_port
        port=$PORT_PICK
        tool "$t" start "$APPS_DIR/hello.js" -i 2 --name hello-reload -- "$port"
        probe wait-200 "$port" 30000 >/dev/null
        sleep 1
        before=$(worker_pids "$t" hello-reload)
        w=$WORK/wrk.$t.$conn.$r.txt
        hdr=()
        [ "$conn" = close ] && hdr=(-H "Connection: close")
        wrk -t1 -c16 -d"${RELOAD_SECS}s" --timeout 2s "${hdr[@]}" "http://127.0.0.1:$port/" >"$w" 2>&1 &
        WRK_PID=$!
        t0=$EPOCHREALTIME
        reload_ms=()
        for at in 0.2 0.6; do # the two reloads start 20 % and 60 % into the wrk run
          sleep "$(awk -v t0="$t0" -v d="$RELOAD_SECS" -v at="$at" -v now="$EPOCHREALTIME" \
            'BEGIN { s = t0 + d * at - now; printf "%.3f", (s > 0 ? s : 0) }')"
          r0=$EPOCHREALTIME
          tool "$t" reload hello-reload || say "   $t: reload failed (exit $?)"
          reload_ms+=("$(ms_since "$r0")")
        done
        timeout $((RELOAD_SECS + 30)) tail --pid="$WRK_PID" -f /dev/null || true
        wait "$WRK_PID" || true
        WRK_PID=
        after=$(worker_pids "$t" hello-reload)
        # "Socket errors: connect A, read B, write C, timeout D" (absent when all are 0) and
        # "Non-2xx or 3xx responses: N" (absent when 0).
        read -r e_conn e_read e_write e_tmo < <(sed -nE \
          's/.*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+).*/\1 \2 \3 \4/p' "$w") || true
        non2xx=$(sed -nE 's/.*Non-2xx or 3xx responses: ([0-9]+).*/\1/p' "$w")
        reqs=$(sed -nE 's/^ *([0-9]+) requests in.*/\1/p' "$w")
        [ -n "$reqs" ] || { say "run.sh: wrk gave no result:"; cat "$w" >&2; exit 1; }
        failed=$((${e_conn:-0} + ${e_read:-0} + ${e_write:-0} + ${e_tmo:-0} + ${non2xx:-0}))
        replaced=no
        if [ -n "$after" ] && [ -z "$(comm -12 <(tr ' ' '\n' <<<"$before" | sort) <(tr ' ' '\n' <<<"$after" | sort))" ]; then
          replaced=yes
        fi
        record "reload.$t.$conn.failed" "$failed"
        record "reload.$t.$conn.requests" "$reqs"
        record "reload.$t.$conn.replaced" "$replaced"
        for x in "${reload_ms[@]}"; do record "reload.$t.cmd_ms" "$x"; done
        say "   $t, $conn: $reqs requests; socket errors connect ${e_conn:-0} read ${e_read:-0} write ${e_write:-0} timeout ${e_tmo:-0}; non-2xx ${non2xx:-0}; reloads took ${reload_ms[*]} ms; workers $before -> $after (all replaced: $replaced)"
        tool "$t" delete hello-reload
      done
    done
  done
fi

# ---------------------------------------------------------------------------------------------
# 6. Log burst: BURST_LINES lines as fast as console.log goes; lines that reach the out log, and
# the CPU time of the tool's own processes meanwhile.

if want burst; then
  say "== log burst ($BURST_LINES lines)"
  for t in $(order 1); do
    go=$WORK/go-$t
    tool "$t" start "$APPS_DIR/burst.js" --name burst -- "$BURST_LINES" "$go"
    sleep 1
    if [ "$t" = muster ]; then
      pids="$(m ping --json | node "$PROBE" muster-daemon-pid) $(m list --json | node "$PROBE" muster-app burst supervisor)"
      out_log=$(m list --json | node "$PROBE" muster-app burst out_log)
    else
      pids=$(cat "$PH/pm2.pid")
      out_log=$(p2 jlist | node "$PROBE" pm2-app burst out_log)
    fi
    sleep 0.5
    c0=$(cpu_ms $pids)
    out=$(probe count-lines "$out_log" "$BURST_LINES" $((BURST_TIMEOUT * 1000)) "$go")
    c1=$(cpu_ms $pids)
    lines=$(node -p "($out).lines")
    record "burst.$t.lines" "$lines"
    record "burst.$t.lost" "$((BURST_LINES > lines ? BURST_LINES - lines : 0))"
    record "burst.$t.cpu_ms" "$((c1 - c0))"
    record "burst.$t.drain_ms" "$(node -p "($out).last_growth_ms.toFixed(0)")"
    say "   $t: $lines lines in $out_log; $((c1 - c0)) ms CPU in pids $pids; $out"
    tool "$t" delete burst
  done
fi

# ---------------------------------------------------------------------------------------------
# 7 + 8. Three tools side by side: `list` at 1, 10 and APPS apps, then the CPU of each tool's
# own processes over IDLE_SECS with APPS idle apps. The apps are `/bin/sleep`, so that only the
# managers are measured; the three tools hold their apps at the same time.

# tool_pids TOOL: the tool's own processes: everything carrying its home in its environment
# except the apps (`sleep`) and this script's helpers (timeout, hyperfine, node, bash).
tool_pids() {
  local var d pid comm
  case $1 in
    muster) var="MUSTER_HOME=$MH" ;;
    pm2) var="PM2_HOME=$PH" ;;
    oxmgr) var="OXMGR_HOME=$OH" ;;
  esac
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    comm=$(cat "$d/comm" 2>/dev/null) || continue
    case $comm in sleep | timeout | hyperfine | bash) continue ;; esac
    [ "$1" != pm2 ] && [ "$comm" = node ] && continue
    if grep -qasF -e "$var" "$d/environ" 2>/dev/null; then echo "$pid"; fi
  done
  return 0
}

# run_stat PIDS...: "CPU_MS RUN_US SWITCHES": utime+stime of the processes (clock ticks, every
# thread, dead ones included), and from every live thread's /proc/.../schedstat the time on a
# CPU (ns precision, in µs) and the number of times it was scheduled in (its wake-ups).
run_stat() {
  local p t run=0 n=0 a b _
  for p in "$@"; do
    for t in /proc/"$p"/task/*/schedstat; do
      read -r a _ b <"$t" 2>/dev/null || continue
      run=$((run + a / 1000))
      n=$((n + b))
    done
  done
  echo "$(cpu_ms "$@") $run $n"
}

# sleep_apps TOOL FROM TO: starts idle-FROM..idle-TO as `/bin/sleep` apps.
sleep_apps() {
  local t=$1 from=$2 to=$3 i
  if [ "$t" = oxmgr ]; then
    for ((i = from; i <= to; i++)); do
      tool_ox start "/bin/sleep $((1 << 30))" --name "$(printf 'idle-%03d' "$i")"
    done
    return
  fi
  node -e '
    const [file, from, to] = process.argv.slice(1);
    const apps = [];
    for (let i = Number(from); i <= Number(to); i++)
      apps.push({ name: "idle-" + String(i).padStart(3, "0"), script: "/bin/sleep",
        args: String(1 << 30), interpreter: "none" });
    require("fs").writeFileSync(file, JSON.stringify({ apps }, null, 1));
  ' "$WORK/sleep-$from.json" "$from" "$to"
  TMO=600 tool "$t" start "$WORK/sleep-$from.json"
}
tool_ox() {
  printf '\n[%s] oxmgr %s\n' "$(date +%T.%N | cut -c1-12)" "$*" >>"$LOG"
  ox "$@" >>"$LOG" 2>&1
}
wait_online3() {
  local t=$1 want=$2 i n
  [ "$t" != oxmgr ] && { wait_online "$t" "$want"; return; }
  for ((i = 0; i < 360; i++)); do
    n=$(ox list --json | node "$PROBE" count-online oxmgr)
    [ "$n" -ge "$want" ] && return 0
    sleep 0.5
  done
  say "run.sh: oxmgr has $n of $want apps online after 180 s"
  return 1
}

if want list || want idle; then
  say "== three tools: list at 1, 10, $APPS apps; idle CPU at $APPS apps"
  [ -n "$(m list --json | node "$PROBE" worker-pids muster)" ] && { say "run.sh: muster still has apps"; exit 1; }
  ox list >>"$LOG" 2>&1 # starts OxMgr's daemon
  m list >>"$LOG" 2>&1
  p2 ping >>"$LOG" 2>&1
  record meta.oxmgr_home "$OH"
  prev=0
  for n in 1 10 "$APPS"; do
    [ "$n" -gt "$prev" ] || continue
    for t in muster oxmgr pm2; do
      t0=$EPOCHREALTIME
      sleep_apps "$t" $((prev + 1)) "$n"
      wait_online3 "$t" "$n"
      record "sleepmany.$t.$n" "$(ms_since "$t0")"
    done
    prev=$n
    sleep "$SETTLE"
    if want list; then
      # Rotated per step, so that no tool always goes first.
      case $n in 1) order3="muster oxmgr pm2" ;; 10) order3="oxmgr pm2 muster" ;; *) order3="pm2 muster oxmgr" ;; esac
      for t in $order3; do
        case $t in
          muster)
            time_cmd "list3.muster.$n" "$MUSTER" list
            time_cmd "list3.muster_json.$n" "$MUSTER" list --json
            ;;
          oxmgr)
            OXMGR_DAEMON_ADDR=$OX_ADDR OXMGR_API_ADDR=$OX_API OXMGR_HOME=$OH time_cmd "list3.oxmgr.$n" "$OXMGR" list
            OXMGR_DAEMON_ADDR=$OX_ADDR OXMGR_API_ADDR=$OX_API OXMGR_HOME=$OH time_cmd "list3.oxmgr_json.$n" "$OXMGR" list --json
            ;;
          pm2)
            time_cmd "list3.pm2.$n" "$PM2" ls
            time_cmd "list3.pm2_json.$n" "$PM2" jlist
            ;;
        esac
      done
    fi
  done
  if want idle; then
    say "   settling 10 s, then $IDLE_SECS s with nothing asked of any tool"
    sleep 10
    declare -A IPIDS S0
    for t in muster oxmgr pm2; do
      IPIDS[$t]=$(tool_pids "$t" | tr '\n' ' ')
      record "idle.$t.procs" "$(wc -w <<<"${IPIDS[$t]}")"
    done
    for t in muster oxmgr pm2; do S0[$t]=$(run_stat ${IPIDS[$t]}); done
    t0=$EPOCHREALTIME
    sleep "$IDLE_SECS"
    secs=$(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { print a - b }')
    for t in muster oxmgr pm2; do
      read -r c1 r1 w1 < <(run_stat ${IPIDS[$t]})
      read -r c0 r0 w0 <<<"${S0[$t]}"
      # Per minute, whatever the window.
      record "idle.$t.cpu_ms" "$(awk -v d=$((c1 - c0)) -v s="$secs" 'BEGIN { printf "%.1f", d * 60 / s }')"
      record "idle.$t.run_ms" "$(awk -v d=$((r1 - r0)) -v s="$secs" 'BEGIN { printf "%.2f", d / 1000 * 60 / s }')"
      record "idle.$t.wakeups" "$(awk -v d=$((w1 - w0)) -v s="$secs" 'BEGIN { printf "%.0f", d * 60 / s }')"
      say "   $t: $(wc -w <<<"${IPIDS[$t]}") processes: $((c1 - c0)) ms CPU (ticks), $(((r1 - r0) / 1000)) ms on CPU (schedstat), $((w1 - w0)) wake-ups in ${secs} s"
    done
    record idle.secs "$secs"
  fi
  say "== deleting the sleep apps"
  TMO=900 tool muster delete all
  TMO=900 tool pm2 delete all
  for ((i = 1; i <= prev; i++)); do tool_ox delete "$(printf 'idle-%03d' "$i")"; done
fi

record meta.uptime_after "$(uptime)"
say "== $(uptime)"
node "$HERE/lib/report.js" "$RESULTS" $([ "$JSON" = 1 ] && echo --json)
