#!/usr/bin/env bash
# bench/footprint/run.sh: what muster's own processes cost, against pm2 and against the floors,
# side by side in one run on this machine. See bench/README.md ("Footprint") for the figures.
#
#   1. floors: PSS of an empty Rust program (floor-empty), of an empty current-thread tokio
#      runtime (floor-tokio; both linked as muster-supervisor is) and of /bin/sleep, with 20
#      and 100 copies running;
#   2. the smaps breakdown, by kind of mapping, of one supervisor and of the daemon;
#   3. PSS (+ page tables) of all muster processes and of all pm2 processes at 1, 10 and 100
#      idle apps (`/bin/sleep`, so that only the manager counts), and the idle daemon's RSS;
#   4. a log burst (bench/footprint/logs.sh): 1,000,000 lines from one fork-mode app, the CPU
#      of each tool's processes, lines lost and lines torn.
#
#   bench/footprint/run.sh [--no-build] [--counts "1 10 100"] [--burst N] [--burst-rounds N] [--no-burst]
#
# Environment: MUSTER_BIN (a directory holding a prebuilt muster, and muster-supervisor if that
# build has one, instead of building this tree: the "before" figures), PM2_DIR (where pm2 is
# installed with npm if missing; default /tmp/pm2-bench).
#
# pm2 is a black box: its CLI only, PM2_HOME in the work directory. Every process this script
# starts is killed on exit by pid (those carrying its MUSTER_HOME or PM2_HOME, and the floors).
set -euo pipefail

CMDLINE="bench/footprint/run.sh${*:+ $*}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
COUNTS="1 10 100"
BURST=1000000
BUILD=1
DO_BURST=1
BURST_ROUNDS=3
PM2_DIR=${PM2_DIR:-/tmp/pm2-bench}
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) BUILD=0 ;;
    --counts) COUNTS=$2; shift ;;
    --burst) BURST=$2; shift ;;
    --burst-rounds) BURST_ROUNDS=$2; shift ;;
    --no-burst) DO_BURST=0 ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/muster-footprint.XXXXXX")
MH=$WORK/mh PH=$WORK/ph BIN=$WORK/bin
mkdir -p "$MH" "$PH" "$BIN"
FLOOR_PIDS=()

sweep() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$$" ] && continue
    if grep -qasF -e "MUSTER_HOME=$MH" -e "PM2_HOME=$PH" "$d/environ" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  for p in "${FLOOR_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  [ -e "$MH/daemon.sock" ] && MUSTER_HOME=$MH timeout 60 "$BIN/muster" kill >/dev/null 2>&1
  [ -e "$PH/pm2.pid" ] && PM2_HOME=$PH timeout 60 "$PM2" kill >/dev/null 2>&1
  sweep
  sleep 0.3
  sweep
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "$*"; }
m() { MUSTER_HOME=$MH timeout 300 "$BIN/muster" "$@"; }
p2() { PM2_HOME=$PH timeout 300 "$PM2" "$@"; }
# ratio A B: A/B with two decimals, or n/a.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
yesno() { awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? "yes" : "no" }'; }

# ---------------------------------------------------------------------------------------------
# The binaries: built from this tree (release profile, as the README installs them), then copied
# so that a rebuild mid-run cannot swap them.

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
NOTE="$(cd "$ROOT" && git rev-parse --short HEAD)"
[ -n "$(cd "$ROOT" && git status --porcelain -- crates Cargo.toml Cargo.lock bench/footprint/floor scripts 2>/dev/null)" ] &&
  NOTE+=" + uncommitted changes"
if [ -n "${MUSTER_BIN:-}" ]; then
  NOTE="prebuilt: $MUSTER_BIN"
  cp "$MUSTER_BIN"/muster "$BIN/"
  for b in muster-daemon muster-supervisor; do
    [ -x "$MUSTER_BIN/$b" ] && cp "$MUSTER_BIN/$b" "$BIN/"
  done
else
  # As ./install.sh builds them: statically linked, non-PIE (scripts/build-static.sh).
  [ "$BUILD" = 1 ] && "$ROOT/scripts/build-static.sh" >&2
  cp "$TARGET/static/muster" "$TARGET/static/muster-daemon" "$TARGET/static/muster-supervisor" "$BIN/"
fi
# The floors are linked as muster-supervisor is.
[ "$BUILD" = 1 ] && "$ROOT/scripts/build-static.sh" -p footprint-floor floor-empty floor-tokio >&2
cp "$TARGET/static/floor-empty" "$TARGET/static/floor-tokio" "$BIN/"

if [ ! -x "$PM2_DIR/node_modules/.bin/pm2" ]; then
  mkdir -p "$PM2_DIR"
  timeout 600 npm install pm2@latest --prefix "$PM2_DIR" --no-audit --no-fund --loglevel=error >&2
fi
PM2=$PM2_DIR/node_modules/.bin/pm2
PM2_VERSION=$(node -p "require('$PM2_DIR/node_modules/pm2/package.json').version")

say "# bench/footprint/run.sh"
say "command:  $CMDLINE"
say "muster:   $NOTE"
say "pm2:      $PM2_VERSION, node $(node --version)"
say "machine:  $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
say "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
say "uptime:   $(uptime)"
say "binaries: $(for b in muster muster-daemon muster-supervisor; do [ -x "$BIN/$b" ] && printf '%s %s kB (%s), ' "$b" "$(du -k "$BIN/$b" | cut -f1)" "$(file -b "$BIN/$b" | grep -o -m1 -e 'statically linked' -e 'dynamically linked')"; done)"
say

# ---------------------------------------------------------------------------------------------
# Measuring.

# field PID KEY: a kB figure of /proc/PID/smaps_rollup (KEY Pss, Rss, Private_Dirty, ...) or of
# /proc/PID/status (VmPTE, VmRSS).
field() {
  awk -v k="$2:" '$1 == k { print $2; found = 1; exit } END { if (!found) print 0 }' \
    "/proc/$1/$([ "${2#Vm}" != "$2" ] && echo status || echo smaps_rollup)" 2>/dev/null || echo 0
}
threads() { awk '$1 == "Threads:" { print $2 }' "/proc/$1/status"; }

# own_pids TOOL: the tool's own processes (not its apps): muster's daemon and supervisors (run
# from $BIN), pm2's node processes (its God daemon).
own_pids() {
  local d pid exe home
  [ "$1" = muster ] && home="MUSTER_HOME=$MH" || home="PM2_HOME=$PH"
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    grep -qasF "$home" "$d/environ" 2>/dev/null || continue
    exe=$(readlink "$d/exe" 2>/dev/null) || continue
    case $1:$exe in
      muster:$BIN/muster | muster:$BIN/muster-daemon | muster:$BIN/muster-supervisor) echo "$pid" ;;
      pm2:*/node) echo "$pid" ;;
    esac
  done
}

# sum_mem PIDS...: "PSS PTE RSS" summed, kB.
sum_mem() {
  local pss=0 pte=0 rss=0 p
  for p in "$@"; do
    pss=$((pss + $(field "$p" Pss)))
    pte=$((pte + $(field "$p" VmPTE)))
    rss=$((rss + $(field "$p" Rss)))
  done
  echo "$pss $pte $rss"
}

# breakdown PID TITLE: the smaps of one process summed by kind of mapping.
breakdown() {
  local pid=$1 exe
  exe=$(readlink "/proc/$pid/exe")
  say "$2 (pid $pid, $(threads "$pid") threads, VmPTE $(field "$pid" VmPTE) kB):"
  awk -v exe="$exe" '
    /^[0-9a-f]+-[0-9a-f]+ / {
      perms = $2; path = $6
      if (path == exe) kind = (perms ~ /x/) ? "binary: text" : (perms ~ /w/ ? "binary: data, relro, bss" : "binary: read-only")
      else if (path ~ /\/ld-linux/) kind = "ld.so"
      else if (path ~ /\.so/) kind = (perms ~ /x/) ? "shared libs: text" : "shared libs: data"
      else if (path == "[heap]") kind = "[heap]"
      else if (path == "[stack]") kind = "[stack] (main thread)"
      else if (path == "[vdso]" || path == "[vvar]" || path == "[vsyscall]" || path == "[vvar_vclock]") kind = "vdso, vvar"
      else if (path == "") kind = "anonymous (thread stacks, arenas, buffers)"
      else kind = "other: " path
      if (!(kind in seen)) { seen[kind] = 1; order[++n] = kind }
      next
    }
    $1 == "Rss:" { rss[kind] += $2 }
    $1 == "Pss:" { pss[kind] += $2 }
    $1 == "Private_Dirty:" { pd[kind] += $2 }
    END {
      printf "  %-44s %8s %8s %14s\n", "mapping", "RSS kB", "PSS kB", "priv.dirty kB"
      for (i = 1; i <= n; i++) {
        k = order[i]
        if (rss[k] == 0) continue
        printf "  %-44s %8d %8d %14d\n", k, rss[k], pss[k], pd[k]
        tr += rss[k]; tp += pss[k]; td += pd[k]
      }
      printf "  %-44s %8d %8d %14d\n", "total", tr, tp, td
    }' "/proc/$pid/smaps"
}

# ---------------------------------------------------------------------------------------------
# 1. Floors.

say "## Floors: PSS per copy (kB), page tables included, copies running at once"
printf '%-34s %8s %10s %10s %10s %8s\n' program copies "PSS+PTE" PSS priv.dirty threads
floor() {
  local prog=$1 copies=$2 i pids=() pss pte rss pd=0 p
  for ((i = 0; i < copies; i++)); do
    if [ "$prog" = /bin/sleep ]; then /bin/sleep 100000 & else "$BIN/$prog" & fi
    pids+=($!)
    FLOOR_PIDS+=($!)
  done
  sleep 1.5
  read -r pss pte rss < <(sum_mem "${pids[@]}")
  for p in "${pids[@]}"; do pd=$((pd + $(field "$p" Private_Dirty))); done
  printf '%-34s %8d %10d %10d %10d %8d\n' "$prog" "$copies" $(((pss + pte) / copies)) $((pss / copies)) \
    $((pd / copies)) "$(threads "${pids[0]}")"
  eval "FLOOR_${prog//[^a-z]/_}_$copies=$(((pss + pte) / copies))"
  kill -KILL "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null || true
  FLOOR_PIDS=()
}
for copies in 20 100; do
  floor floor-empty "$copies"
  floor floor-tokio "$copies"
  floor /bin/sleep "$copies"
done
say

# ---------------------------------------------------------------------------------------------
# 2, 3. muster and pm2 at 1, 10 and 100 idle apps. One ecosystem file per step holds the apps
# added at that step (pm2's format, which muster reads too).

eco() {
  local from=$1 to=$2 f=$WORK/eco-$1-$2.json i sep=
  {
    echo '{"apps": ['
    for ((i = from; i <= to; i++)); do
      printf '%s{"name": "s%d", "script": "/bin/sleep", "args": "100000", "interpreter": "none", "autorestart": true}\n' "$sep" "$i"
      sep=,
    done
    echo ']}'
  } >"$f"
  echo "$f"
}

declare -A MEM
ladder() {
  local t=$1 prev=0 n pids pss pte rss f
  for n in $COUNTS; do
    f=$(eco $((prev + 1)) "$n")
    if [ "$t" = muster ]; then m start "$f" >/dev/null; else p2 start "$f" >/dev/null; fi
    prev=$n
    sleep 5 # settle: every app up, the start commands' work done
    pids=$(own_pids "$t" | tr '\n' ' ')
    read -r pss pte rss < <(sum_mem $pids)
    MEM[$t.$n]=$((pss + pte))
    MEM[$t.$n.procs]=$(wc -w <<<"$pids")
    MEM[$t.$n.pss]=$pss MEM[$t.$n.pte]=$pte MEM[$t.$n.rss]=$rss
  done
}

# The idle daemon, before any app.
m ping >/dev/null
sleep 2
DAEMON_PID=$(own_pids muster | head -1)
DAEMON_RSS=$(field "$DAEMON_PID" VmRSS)
say "## The idle daemon ($(readlink "/proc/$DAEMON_PID/exe" | xargs basename)), no apps: RSS $DAEMON_RSS kB" \
  "(anonymous $(field "$DAEMON_PID" Anonymous) kB, the rest the executable's pages), PSS $(field "$DAEMON_PID" Pss) kB, $(threads "$DAEMON_PID") threads"
say

ladder muster
TOP=${COUNTS##* }
say "## smaps by kind of mapping, $TOP idle apps running"
SUP_PID=
for p in $(own_pids muster); do
  [ "$p" != "$DAEMON_PID" ] && { SUP_PID=$p; break; }
done
breakdown "$SUP_PID" "one supervisor ($(readlink "/proc/$SUP_PID/exe" | xargs basename))"
say
breakdown "$DAEMON_PID" "the daemon"
say
# Per supervisor at the top count: every supervisor's PSS + page tables, averaged.
SUPS=$(own_pids muster | grep -vx "$DAEMON_PID" | tr '\n' ' ')
read -r sp st _ < <(sum_mem $SUPS)
NSUP=$(wc -w <<<"$SUPS")
SUP_EACH=$(((sp + st) / NSUP))
SUP_PSS_EACH=$((sp / NSUP))
DAEMON_AT_TOP=$(($(field "$DAEMON_PID" Pss) + $(field "$DAEMON_PID" VmPTE)))
m kill >/dev/null 2>&1 || true
sweep

ladder pm2
p2 kill >/dev/null 2>&1 || true
sweep

say "## All of each tool's own processes: PSS + page tables (kB), idle /bin/sleep apps"
printf '%-6s %16s %16s %16s %14s\n' apps "muster" "pm2" "muster/pm2" "muster lighter"
for n in $COUNTS; do
  printf '%-6s %16s %16s %16s %14s\n' "$n" \
    "${MEM[muster.$n]} (${MEM[muster.$n.procs]} procs)" "${MEM[pm2.$n]} (${MEM[pm2.$n.procs]} procs)" \
    "$(ratio "${MEM[muster.$n]}" "${MEM[pm2.$n]}")" "$(yesno "${MEM[muster.$n]}" "${MEM[pm2.$n]}")"
done
say
say "## Against the targets (issue 10)"
say "one supervisor at $TOP apps: $SUP_PSS_EACH kB PSS (mean of $NSUP; target 300: $(yesno "$SUP_PSS_EACH" 300)), $SUP_EACH kB PSS+PTE (300: $(yesno "$SUP_EACH" 300));" \
  "floor-tokio $FLOOR_floor_tokio_100 kB, floor-empty $FLOOR_floor_empty_100 kB, /bin/sleep $FLOOR__bin_sleep_100 kB (100 copies);" \
  "supervisor/floor-tokio $(ratio "$SUP_EACH" "$FLOOR_floor_tokio_100")"
say "the daemon at $TOP apps: $DAEMON_AT_TOP kB PSS+PTE"
say "all muster processes at $TOP apps: ${MEM[muster.$TOP]} kB (target 35000: $(yesno "${MEM[muster.$TOP]}" 35000));" \
  "floor of $TOP supervisors on the runtime alone: $((FLOOR_floor_tokio_100 * TOP)) kB"
say "idle daemon RSS: $DAEMON_RSS kB (target 3072: $(yesno "$DAEMON_RSS" 3072))"
say

# ---------------------------------------------------------------------------------------------
# 4. The log burst.

if [ "$DO_BURST" = 1 ]; then
  MUSTER_BIN_DIR=$BIN PM2=$PM2 BURST=$BURST ROUNDS=$BURST_ROUNDS WORK=$WORK/burst MH=$MH PH=$PH \
    "$HERE/logs.sh"
fi
say "uptime after: $(uptime)"
