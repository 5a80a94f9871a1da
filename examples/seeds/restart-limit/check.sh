#!/usr/bin/env bash
# A worker that always crashes at start-up: 10 restarts, then muster gives up and exits 1.
source "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"

start=$(date +%s%N)
start_muster --json -i 1 --max-restarts 10 --restart-window 60000 \
  --backoff-base 10 --backoff-cap 50 -- crash.js
wait_exit 30
ms=$((($(date +%s%N) - start) / 1000000))

forks=$(count_events fork)
restarts=$(count_events restart)
say "forks: $forks, restarts: $restarts, muster exit code: $MRC, after $ms ms"
events giveup
((MRC == 1)) || fail "muster exited $MRC, expected 1"
((forks == 11)) || fail "expected 11 forks (the first + 10 restarts), saw $forks"
((restarts == 10)) || fail "expected 10 restart events, saw $restarts"
(($(count_events giveup) == 1)) || fail "no giveup event"
# The giveup comes after the 11th exit, and is followed only by the stop.
tail_events=$(grep '^{' "$LOG" | tail -n 3 | python3 -c '
import json, sys
print(" ".join(json.loads(l)["event"] for l in sys.stdin))')
[[ $tail_events == "exit giveup stopped" ]] || fail "the log ends with: $tail_events"
say "OK"
