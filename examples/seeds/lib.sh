# Helpers shared by the check.sh scripts. Sourced, never run on its own.
#
# Every wait is bounded, muster runs in a session of its own (so its workers can be found
# and killed even if it dies), and the EXIT trap takes that session down.
set -euo pipefail

SEEDS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SEEDS/../.." && pwd)
MUSTER=${MUSTER:-$ROOT/target/debug/muster}
[[ $MUSTER == /* ]] || MUSTER=$PWD/$MUSTER # the checks cd to their own folder
if [[ ! -x $MUSTER ]]; then
  (cd "$ROOT" && cargo build -q -p muster)
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/muster-seeds.XXXXXX")
LOG=$WORK/muster.log
MPID=
MRC=

say() { printf '%s\n' "$*"; }

fail() {
  say "FAIL: $*"
  if [[ -s $LOG ]]; then
    say "--- muster output ($LOG):"
    cat "$LOG"
  fi
  exit 1
}

# A free TCP port on 127.0.0.1, at least 20000.
free_port() {
  python3 -c '
import socket
while True:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if port >= 20000:
        print(port)
        break'
}

# start_muster ARGS...: `muster cluster ARGS` in the background, in a new session, all its
# output (events and the workers' own output) in $LOG.
start_muster() {
  : >"$LOG"
  setsid "$MUSTER" cluster "$@" >"$LOG" 2>&1 &
  MPID=$!
  # check-all.sh kills what is left of these sessions should this script itself be killed.
  if [[ -n ${SEEDS_SESSIONS:-} ]]; then echo "$MPID" >>"$SEEDS_SESSIONS"; fi
}

# wait_for SECONDS WHAT COMMAND...: run COMMAND every 0.1 s until it succeeds; fail after
# SECONDS, or as soon as muster has exited if it was not muster's exit that was awaited.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local end=$(($(date +%s%N) / 1000000 + secs * 1000))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $MPID && $1 != muster_gone ]] && muster_gone; then
      "$@" >/dev/null 2>&1 && return
      fail "muster exited while waiting for $what"
    fi
    (($(date +%s%N) / 1000000 < end)) || fail "timed out after ${secs}s waiting for $what"
    sleep 0.1
  done
}

# events NAME [FIELD]: from a --json log, one line per event NAME: the event, or its FIELD.
events() {
  python3 - "$LOG" "$@" <<'PY'
import json, sys
log, name = sys.argv[1], sys.argv[2]
field = sys.argv[3] if len(sys.argv) > 3 else None
for line in open(log, errors="replace"):
    line = line.strip()
    if not line.startswith("{"):
        continue  # a line the workers printed
    try:
        ev = json.loads(line)
    except ValueError:
        continue
    if ev.get("event") == name:
        print(json.dumps(ev) if field is None else ev.get(field))
PY
}

count_events() { events "$1" | wc -l; }

# at_least N NAME: the --json log has at least N events NAME.
at_least() { (($(count_events "$2") >= $1)); }

muster_gone() { ! kill -0 "$MPID" 2>/dev/null; }

# wait_exit SECONDS: wait for muster to end by itself; its exit code goes to $MRC.
wait_exit() {
  wait_for "$1" "muster to exit" muster_gone
  MRC=0
  wait "$MPID" || MRC=$?
}

# stop_muster [SECONDS]: SIGTERM (graceful stop), then wait_exit.
stop_muster() {
  kill -TERM "$MPID" 2>/dev/null || true
  wait_exit "${1:-10}"
}

# kill_session SID: every process left in that session (muster and its workers), by pid.
kill_session() {
  local p
  for p in $(ps -o pid= -s "$1" 2>/dev/null || true); do kill -KILL "$p" 2>/dev/null || true; done
}

# The EXIT trap: whatever is left of muster's session is killed.
cleanup() {
  local rc=$?
  if [[ -n $MPID ]]; then kill_session "$MPID"; fi
  [[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

# http PORT PATH: one request on a fresh connection, the body on stdout.
http() { curl -sS --max-time "${HTTP_TIMEOUT:-5}" "http://127.0.0.1:$1$2"; }
