#!/usr/bin/env bash
# The self-destruct handover: a worker that hits a bug asks for its replacement first, then
# drains. A slow request in flight completes; a long poll holds the old worker until its grace
# period (4/5 of --kill-timeout) ends and muster sends it the stop signal (SIGTERM, which ends a
# Node program without a handler); SIGKILL would follow at --kill-timeout.
source "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# exit_of PID: the exit event of that worker, if there is one yet.
exit_of() { events exit | grep "\"pid\": $1,"; }
has_exit() { exit_of "$1" >/dev/null; }
# The --json log as "event:pid" words (workers' own lines left out).
sequence() { grep '^{' "$LOG" | python3 -c '
import json, sys
for l in sys.stdin:
    e = json.loads(l)
    print(e["event"] + (":%s" % e["pid"] if e.get("pid") else ""), end=" ")'; }
# index_of WORD: where "event:pid" WORD first comes in the sequence.
index_of() {
  local i=0 w
  for w in $(sequence); do
    i=$((i + 1))
    if [[ $w == "$1" ]]; then echo $i; return; fi
  done
  echo 0
}

export PORT=$(free_port) SLOW_MS=1000
start_muster --json -i 1 --kill-timeout 2000 -- server.js
wait_for 10 "the first worker" at_least 1 ready
A=$(events ready pid | tail -n 1)
say "worker: $A"

say "--- 1. a slow request in flight, then a request that throws"
# (a subshell: its own exit code goes to a file; `set -e` must not end it early)
(rc=0; http "$PORT" /slow >"$WORK/slow.out" 2>&1 || rc=$?; echo $rc >"$WORK/slow.rc") &
sleep 0.3
say "$(http "$PORT" /boom)"
# The old worker no longer accepts; this one waits for the replacement.
after=$(http "$PORT" /) || fail "the request right after the crash failed"
say "$after"
wait_for 10 "the slow request" test -s "$WORK/slow.rc"
say "$(cat "$WORK/slow.out")"
(($(cat "$WORK/slow.rc") == 0)) || fail "the slow request failed"
[[ $(cat "$WORK/slow.out") == "slow done by $A" ]] || fail "the slow request was not finished by $A"
wait_for 10 "worker $A to exit" has_exit "$A"
B=$(events ready pid | tail -n 1)
[[ $B != "$A" && $after == "hello from $B" ]] || fail "the request after the crash was not served by the replacement"
[[ $(exit_of "$A") == *'"code": 1, "signal": null'* ]] || fail "worker $A did not exit by itself: $(exit_of "$A")"
say "events: $(sequence)"
s=$(index_of "message:$A") r=$(index_of "ready:$B") x=$(index_of "exit:$A")
((s > 0 && s < r && r < x)) || fail "expected suicide message < replacement ready < old exit"
say "replacement $B was ready before $A exited; the slow request completed"

say "--- 2. a long poll open, then a request that throws"
(rc=0; HTTP_TIMEOUT=15 http "$PORT" /long >"$WORK/long.out" 2>/dev/null || rc=$?; echo $rc >"$WORK/long.rc") &
sleep 0.3
t0=$(now_ms)
say "$(http "$PORT" /boom)"
wait_for 10 "worker $B to exit" has_exit "$B"
held=$(($(now_ms) - t0))
say "$(exit_of "$B")"
say "worker $B held on for $held ms"
[[ $(exit_of "$B") == *'"signal": "SIGTERM"'* ]] || fail "worker $B did not end by its stop signal"
# The stop signal, not exit code 1: the grace period (1600 ms of the 2 s kill timeout) came
# before the worker's own 5 s timer.
((held >= 1600)) || fail "signalled after $held ms, before the 1600 ms grace period"
wait_for 5 "the long poll to end" test -s "$WORK/long.rc"
say "long poll got: $(cat "$WORK/long.out") (curl exit $(cat "$WORK/long.rc"))"
[[ $(cat "$WORK/long.out") == "long poll held by $B" ]] || fail "the long poll was not held by $B"
C=$(events ready pid | tail -n 1)
[[ $(http "$PORT" /) == "hello from $C" ]] || fail "the third worker $C does not serve"
say "the third worker $C serves"

stop_muster 10
((MRC == 0)) || fail "muster exited $MRC after SIGTERM, expected 0"
say "OK"
