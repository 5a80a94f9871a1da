#!/usr/bin/env bash
# kill -9 one worker: muster forks a replacement, which serves on the same port.
source "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"

export PORT=$(free_port)
start_muster --json -i 2 -- server.js
wait_for 10 "2 ready workers" at_least 2 ready
mapfile -t BEFORE < <(events ready pid)
say "before: ${BEFORE[*]}"

victim=${BEFORE[0]}
say "kill -9 $victim"
kill -9 "$victim"
wait_for 10 "a replacement to be ready" at_least 3 ready
new=$(events ready pid | tail -n 1)
AFTER=("${BEFORE[1]}" "$new")
say "after:  ${AFTER[*]}"
[[ $new != "$victim" ]] || fail "the replacement has the old pid"
[[ $(events exit) == *"\"pid\": $victim, "*"\"signal\": \"SIGKILL\""* ]] || fail "no exit event for $victim"

# Both current workers answer; the killed one never does.
declare -A count=()
for i in $(seq 1 10); do
  body=$(http "$PORT" /) || fail "request $i failed"
  say "$body"
  count[${body#served by }]=1
done
for pid in "${AFTER[@]}"; do
  [[ -n ${count[$pid]:-} ]] || fail "worker $pid answered none of 10 requests"
done
[[ -z ${count[$victim]:-} ]] || fail "the killed worker $victim answered"

stop_muster 10
((MRC == 0)) || fail "muster exited $MRC after SIGTERM, expected 0"
say "OK"
