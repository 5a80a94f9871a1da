#!/usr/bin/env bash
# bench/footprint/logs.sh: the log burst of bench/footprint/run.sh (which runs it, with its
# homes, binaries and clean-up): one fork-mode app (bench/daemon/apps/burst.js) prints BURST
# lines as fast as console.log goes; for each tool, the CPU its own processes spend meanwhile
# (muster: daemon + supervisor; pm2: its node processes) and the read and write system calls
# they make (/proc/PID/io: how large the batches are), and in the out log: lines kept, lost,
# torn (not one whole line as printed) and out of order.
#
# ROUNDS bursts per tool (default 3), alternating which goes first; the target is judged on the
# medians, and each round's ratio is printed.
#
# Needs: MUSTER_BIN_DIR, PM2, BURST, WORK, MH (MUSTER_HOME), PH (PM2_HOME), all set by run.sh.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APP=$HERE/../daemon/apps/burst.js
: "${MUSTER_BIN_DIR:?run by bench/footprint/run.sh}" "${PM2:?}" "${BURST:?}" "${WORK:?}" "${MH:?}" "${PH:?}"
ROUNDS=${ROUNDS:-3}
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || { echo "logs.sh: the burst rounds must be 1 to 99, not '$ROUNDS'" >&2; exit 2; }
mkdir -p "$WORK"
CLK_TCK=$(getconf CLK_TCK)
m() { MUSTER_HOME=$MH timeout 300 "$MUSTER_BIN_DIR/muster" "$@"; }
p2() { PM2_HOME=$PH timeout 300 "$PM2" "$@"; }

own_pids() {
  local d pid exe home
  [ "$1" = muster ] && home="MUSTER_HOME=$MH" || home="PM2_HOME=$PH"
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    grep -qasF "$home" "$d/environ" 2>/dev/null || continue
    exe=$(readlink "$d/exe" 2>/dev/null) || continue
    case $1:$exe in
      muster:$MUSTER_BIN_DIR/muster | muster:$MUSTER_BIN_DIR/muster-daemon | muster:$MUSTER_BIN_DIR/muster-supervisor) echo "$pid" ;;
      # pm2's own node processes; the app is node too, told apart by its pid.
      pm2:*/node) [ "$pid" != "${APP_PID:-}" ] && echo "$pid" ;;
    esac
  done
}

# cpu_ms PIDS...: user + system CPU of the processes (all their threads, dead ones included).
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

# thread_ns PIDS...: "TID NS CS NAME" per live thread of the processes: its time on a CPU in ns
# (/proc/PID/task/TID/schedstat, first field), exact where /proc/PID/stat counts 10 ms ticks;
# its context switches, voluntary and not (how often it slept and woke); its name.
thread_ns() {
  local p f v rest dir cs name
  for p in "$@"; do
    for f in /proc/"$p"/task/*/schedstat; do
      read -r v rest <"$f" 2>/dev/null || continue
      dir=${f%/schedstat}
      cs=$(awk '/^(non)?voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }' "$dir/status" 2>/dev/null) || continue
      name=$(tr ' ' '_' <"$dir/comm" 2>/dev/null) || continue
      echo "${dir##*/} $v $cs $name"
    done
  done
}

# per_thread BEFORE AFTER: what each thread spent between two thread_ns lists, busiest first:
# "name (tid): CPU ms, context switches" (threads under 0.1 ms left out).
per_thread() {
  awk 'NR == FNR { s[$1] = $2; c[$1] = $3; next }
    { d = ($2 - (($1 in s) ? s[$1] : 0)) / 1e6
      if (d >= 0.1) printf "%.1f %s (%s): %.1f ms, %d switches\n", d, $4, $1, d, $3 - (($1 in c) ? c[$1] : 0) }' "$1" "$2" |
    sort -rn | cut -d' ' -f2- | sed 's/^/        /'
}

# ns_ms BEFORE AFTER: "MS GONE", the CPU time (ms, 0.1 precision) the threads spent between two
# thread_ns lists (a thread new since BEFORE counts from 0), and how many threads of BEFORE
# were gone by AFTER (their time after BEFORE is missing from MS: the tick count has it).
ns_ms() {
  awk 'NR == FNR { s[$1] = $2; next }
    { d += $2 - (($1 in s) ? s[$1] : 0); seen[$1] = 1 }
    END { g = 0; for (t in s) if (!(t in seen)) g++; printf "%.1f %d\n", d / 1e6, g }' "$1" "$2"
}

# syscalls PIDS...: "reads writes", the read and write system calls the processes made (all
# their threads, dead ones included: /proc/PID/io's syscr and syscw).
syscalls() {
  local r=0 w=0 p k v
  for p in "$@"; do
    while read -r k v; do
      case $k in syscr:) r=$((r + v)) ;; syscw:) w=$((w + v)) ;; esac
    done <"/proc/$p/io" 2>/dev/null || continue
  done
  echo "$r $w"
}

# check FILE: "kept lost torn disorder" for the burst's lines in FILE.
check() {
  awk -v n="$BURST" '
    match($0, /^burst line [0-9]+ of [0-9]+$/) && $5 == n {
      i = $3 + 0
      if (!(i in seen)) { seen[i] = 1; kept++ }
      if (i != last + 1) disorder++
      last = i
      next
    }
    { torn++ }
    END { printf "%d %d %d %d\n", kept, n - kept, torn, disorder }' "$1"
}

# median N1 N2 ...: the middle value (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "## Log burst: $BURST lines from one fork-mode app (console.log), one tool at a time, $ROUNDS round(s)"
printf '%-5s %-7s %10s %12s %10s %9s %9s %10s %8s %8s %10s %10s\n' round tool "CPU ms" "CPU ms (ns)" "drain ms" reads writes kept lost torn disorder "app pid"
declare -A CPU
# burst ROUND TOOL: one burst through TOOL, its row, and its figures in CPU[TOOL.ROUND.*].
burst() {
  local r=$1 t=$2 go out pids c0 c1 r0 w0 r1 w1 t0 last_size last_change lines size drain ns gone kept lost torn disorder
  go=$WORK/go-$t-$r
  if [ "$t" = muster ]; then
    m start "$APP" --name burst -- "$BURST" "$go" >/dev/null
    out=$MH/logs/burst-out.log
    APP_PID=- # node, not one of muster's executables
  else
    p2 start "$APP" --name burst -- "$BURST" "$go" >/dev/null
    out=$PH/logs/burst-out.log
    APP_PID=$(p2 pid burst | tail -1)
  fi
  sleep 2
  pids=$(own_pids "$t" | tr '\n' ' ')
  c0=$(cpu_ms $pids)
  thread_ns $pids >"$WORK/ns0-$t"
  read -r r0 w0 < <(syscalls $pids)
  t0=$EPOCHREALTIME
  : >"$go"
  # Until every line is in the file, or it stops growing for 10 s, or 300 s.
  last_size=-1 last_change=$EPOCHREALTIME lines=0
  while :; do
    size=$(stat -c %s "$out" 2>/dev/null || echo 0)
    if [ "$size" != "$last_size" ]; then
      last_size=$size last_change=$EPOCHREALTIME
      lines=$(wc -l <"$out")
      [ "$lines" -ge "$BURST" ] && break
    fi
    awk -v a="$EPOCHREALTIME" -v b="$last_change" -v c="$t0" 'BEGIN { exit !((a - b) > 10 || (a - c) > 300) }' && break
    sleep 0.1
  done
  drain=$(awk -v a="$last_change" -v b="$t0" 'BEGIN { printf "%d", (a - b) * 1000 }')
  sleep 1 # what the tool does right after the last line counts too
  c1=$(cpu_ms $pids)
  thread_ns $pids >"$WORK/ns1-$t"
  read -r r1 w1 < <(syscalls $pids)
  read -r ns gone < <(ns_ms "$WORK/ns0-$t" "$WORK/ns1-$t")
  read -r kept lost torn disorder < <(check "$out")
  CPU[$t.$r]=$((c1 - c0)) CPU[$t.$r.ns]=$ns CPU[$t.$r.gone]=$gone CPU[$t.$r.lost]=$lost CPU[$t.$r.torn]=$torn
  printf '%-5s %-7s %10d %12s %10d %9d %9d %10d %8d %8d %10d %10s\n' "$r" "$t" "${CPU[$t.$r]}" "$ns" "$drain" $((r1 - r0)) $((w1 - w0)) \
    "$kept" "$lost" "$torn" "$disorder" "$APP_PID"
  per_thread "$WORK/ns0-$t" "$WORK/ns1-$t"
  # The app and its log go, so that the next round starts from an empty file.
  if [ "$t" = muster ]; then
    m delete burst >/dev/null
    rm -f "$MH/logs/burst-out.log" "$MH/logs/burst-err.log"
  else
    p2 delete burst >/dev/null
    rm -f "$PH/logs/burst-out.log" "$PH/logs/burst-err.log"
  fi
}
# Rounds alternate which tool goes first: neither always meets the machine as the other left it.
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then burst "$r" muster; burst "$r" pm2; else burst "$r" pm2; burst "$r" muster; fi
done
# A plain copy: the same burst through a pipe into `dd`, which copies it to a file in 1 MiB
# blocks (iflag=fullblock: it reads until a block is full, then writes it) and does nothing
# else: no lines, no event loop, no second process. It is not a floor: dd waits in `read`, so
# every line the app writes while dd keeps up wakes it (results-2026-12-06-02ee04f.txt: 141 ms
# with 64 KiB blocks), where muster lets lines gather for 10 ms between reads.
copy_out=$WORK/copy-out.log
mkfifo "$WORK/fifo"
# dd's CPU as its parent shell's `times` reports it once dd has exited (after the app's EOF).
bash -c 'dd if="$1" of="$2" bs=1M iflag=fullblock status=none; times' _ "$WORK/fifo" "$copy_out" \
  >"$WORK/dd-times" &
DD_PID=$!
# The lines burst.js prints, from a script that exits when they are out (dd then gets EOF).
timeout 300 node -e 'const n = Number(process.argv[1]);
  for (let i = 1; i <= n; i++) console.log(`burst line ${String(i).padStart(7, "0")} of ${n}`);' \
  "$BURST" >"$WORK/fifo"
wait "$DD_PID"
COPY=$(awk 'NR == 2 {
    split($1, u, /[ms]/); split($2, s, /[ms]/)
    printf "%d", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1000 }' "$WORK/dd-times")
read -r kept lost torn disorder < <(check "$copy_out")
printf '%-5s %-7s %10d %12s %10s %9s %9s %10d %8d %8d %10d %10s\n' - "dd" "$COPY" "-" "-" "-" "-" "$kept" "$lost" "$torn" "$disorder" "-"
echo "(dd: the same lines through a plain pipe copied into a file by dd in 1 MiB blocks, nothing else;"
echo " its CPU from the shell's times (getrusage), to the ms)"
echo "(CPU ms: user + system from /proc/PID/stat, in 10 ms ticks per process; CPU ms (ns): time on a"
echo " CPU from /proc/PID/task/TID/schedstat, to 0.1 ms)"
gone=0 lost=0 torn=0 met_rounds=0 ratios=() mus=() pms=() ticks=()
for r in $(seq 1 "$ROUNDS"); do
  gone=$((gone + CPU[muster.$r.gone] + CPU[pm2.$r.gone]))
  lost=$((lost + CPU[muster.$r.lost])) torn=$((torn + CPU[muster.$r.torn]))
  ratio=$(awk -v a="${CPU[muster.$r.ns]}" -v b="${CPU[pm2.$r.ns]}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "n/a" }')
  ratios+=("$ratio") mus+=("${CPU[muster.$r.ns]}") pms+=("${CPU[pm2.$r.ns]}")
  ticks+=("$(awk -v a="${CPU[muster.$r]}" -v b="${CPU[pm2.$r]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }')")
  awk -v x="$ratio" 'BEGIN { exit !(x != "n/a" && x <= 0.2) }' && met_rounds=$((met_rounds + 1))
done
echo "threads that exited during the bursts, whose time the ns column misses: $gone"
echo "muster/pm2 CPU (ns) per round: ${ratios[*]}; in 10 ms ticks: ${ticks[*]}"
med_m=$(median "${mus[@]}") med_p=$(median "${pms[@]}")
ratio=$(awk -v a="$med_m" -v b="$med_p" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "n/a" }')
met=$(awk -v x="$ratio" -v l="$lost" -v t="$torn" -v g="$gone" \
  'BEGIN { print (g > 0) ? "n/a, threads exited" : (x != "n/a" && x <= 0.2 && l == 0 && t == 0) ? "yes" : "no" }')
echo "median CPU (ns): muster $med_m ms, pm2 $med_p ms; muster/pm2: $ratio (target ≤ 0.20 with 0 lost and 0 torn: $met; ≤ 0.20 in $met_rounds of $ROUNDS rounds)"
echo "dd/pm2 (median): $(awk -v a="$COPY" -v b="$med_p" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "n/a" }'); muster/dd (median): $(awk -v a="$med_m" -v b="$COPY" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }')"
echo
